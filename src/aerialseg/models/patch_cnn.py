"""Patch-based CNN (PB) of Kampffmeyer et al. (2016), with fast dense inference.

Architecture (methods.md §1): a 65x65 input patch passes four valid 5x5 convolutions
(32, 64, 96, 128 kernels), each conv -> ReLU -> BatchNorm -> 3x3 max-pool with stride 1
(the paper's order, ReLU before BN), so 65 -> 41 px. The fully connected layers are
convolutions: fc1 is a 41x41 convolution to ``fc_width`` channels, fc2 and the classifier
are 1x1 convolutions. Each fc layer is fc -> ReLU -> Dropout(p) (element-wise); the paper
lists BatchNorm for the conv layers only, so the fc layers have none. He initialisation.

The receptive field is exactly ``patch_size`` px and every layer has stride 1, so the
network is translation-equivariant: an (H, W) input gives (H - 64, W - 64) logits, the
logit at (i, j) being the classification of the patch whose top-left corner is (i, j).
A 65x65 patch gives 1x1 logits.

Dense inference cost is almost all fc1 (41*41*128*128 = 27.5 M multiply-adds per output
pixel). In eval mode :class:`FFTConv2d` computes it by FFT overlap-save in blocks: each
64x64 block of output needs a (64 + 40)-point 2-D FFT of its input window, and for every
frequency the product over input channels of all blocks is one complex matrix product
(blocks x Cin) @ (Cin x Cout). The kernel spectrum is cached per module (about 0.7 GB for
the default widths, complex64) and recomputed when the weights change.

In training (65x65 patches, 1x1 output) fc1 is a plain matrix product and runs directly.
Against the direct dense fc1 the FFT result differs by < 1e-4 (float32; it is in fact
closer to a float64 reference than the direct convolution is).

MC dropout: :meth:`PatchCNN.mc_split` returns ``(trunk, head)`` with the trunk (convs, fc1,
ReLU) free of randomness, so T samples cost one trunk pass plus T cheap 1x1 heads (see
:mod:`aerialseg.models.mc`). To keep those heads cheap on CPU the dropouts are
:class:`FastDropout` (an ``nn.Dropout`` with a faster mask draw) and the head runs in row
chunks that stay in cache.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aerialseg.models.registry import register_model

FC1Mode = Literal["auto", "direct", "fft"]
_MODES = ("auto", "direct", "fft")


class FFTConv2d(nn.Conv2d):
    """Valid, stride-1, square-kernel convolution that can run as a block FFT.

    Behaves exactly like ``nn.Conv2d(in_channels, out_channels, kernel_size)`` (same
    parameters, same state dict). ``mode`` picks the algorithm:

    - ``"direct"``: ``F.conv2d``.
    - ``"fft"``: overlap-save with ``block`` x ``block`` output blocks (FFT size
      ``block + kernel_size - 1``).
    - ``"auto"`` (default): FFT when the module is in eval mode, no gradient w.r.t. the
      weight is needed, and the estimated FFT cost is below the direct cost (so a single
      patch, 1x1 output, still runs directly); otherwise direct.

    When no weight gradient is needed the kernel spectrum is cached and reused while the
    weight is unchanged (same storage, version counter, dtype, device and checksum; the
    checksum catches in-place edits through ``.data``, which bypass the version counter,
    and costs ~10 ms for the default fc1). With a weight
    gradient (forced ``"fft"`` during training) the spectrum is recomputed each call and
    is differentiable.

    Args:
        in_channels, out_channels, kernel_size: as for ``nn.Conv2d``.
        block: output block side of the overlap-save scheme.
        mode: ``"auto"``, ``"direct"`` or ``"fft"``.
        chunk_bytes: upper bound on the block-spectrum memory per step; blocks are processed
            in groups of rows to stay under it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 block: int = 64, mode: FC1Mode = "auto", chunk_bytes: int = 2**28) -> None:
        super().__init__(in_channels, out_channels, kernel_size)
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        self.block = block
        self.mode = mode
        self.chunk_bytes = chunk_bytes
        self._spectrum_cache: tuple[tuple[Any, ...], Tensor] | None = None

    @property
    def mode(self) -> FC1Mode:
        """Algorithm: ``"auto"``, ``"direct"`` or ``"fft"``."""
        return self._mode

    @mode.setter
    def mode(self, value: FC1Mode) -> None:
        if value not in _MODES:
            raise ValueError(f"fc1 mode must be one of {_MODES}, got {value!r}")
        self._mode = value

    @property
    def fft_size(self) -> int:
        """FFT length per block side: ``block + kernel_size - 1``."""
        return self.block + self.kernel_size[0] - 1

    def __getstate__(self) -> dict[str, Any]:
        # The cached spectrum can be ~1 GB: never pickle it (torch.save(model), DDP spawn).
        state = super().__getstate__()
        state = dict(state)
        state["_spectrum_cache"] = None
        return state

    def clear_cache(self) -> None:
        """Drop the cached kernel spectrum (frees its memory)."""
        self._spectrum_cache = None

    def _needs_weight_grad(self) -> bool:
        return torch.is_grad_enabled() and self.weight.requires_grad

    def _use_fft(self, x: Tensor) -> bool:
        if self.mode != "auto":
            return self.mode == "fft"
        if self.training or self._needs_weight_grad():
            return False
        k = self.kernel_size[0]
        ho, wo = x.shape[-2] - k + 1, x.shape[-1] - k + 1
        if ho < 1 or wo < 1:
            return False
        s, n = self.block, self.fft_size
        n_blocks = math.ceil(ho / s) * math.ceil(wo / s)
        # Per (Cin, Cout) pair: direct k^2 MACs per output pixel; FFT 4 real MACs per
        # frequency and block, doubled for the transforms and copies.
        return n_blocks * n * (n // 2 + 1) * 8 < ho * wo * k * k

    def forward(self, x: Tensor) -> Tensor:
        """Valid convolution of ``x`` (B, Cin, H, W) -> (B, Cout, H - k + 1, W - k + 1)."""
        if self._use_fft(x):
            return self.fft_forward(x)
        return super().forward(x)

    def spectrum(self, cached: bool = True) -> Tensor:
        """Conjugated kernel spectrum (n * (n//2 + 1), Cin, Cout), n = :attr:`fft_size`.

        Args:
            cached: reuse/store the detached spectrum; False computes it with autograd.
        """
        w = self.weight
        n = self.fft_size
        cout, cin, k, _ = w.shape
        if not cached:
            spec = torch.fft.rfft2(w.permute(2, 3, 1, 0), s=(n, n), dim=(0, 1)).conj()
            return spec.reshape(n * (n // 2 + 1), cin, cout)
        key = (n, w.data_ptr(), w._version, w.dtype, w.device, _checksum(w))
        if self._spectrum_cache is not None and self._spectrum_cache[0] == key:
            return self._spectrum_cache[1]
        self._spectrum_cache = None  # free the stale one before allocating
        ctype = torch.complex128 if w.dtype == torch.float64 else torch.complex64
        spec = torch.empty((n, n // 2 + 1, cin, cout), dtype=ctype, device=w.device)
        wd = w.detach()
        step = max(1, cout // 8)  # chunks keep the peak near one spectrum
        with torch.no_grad():
            for c0 in range(0, cout, step):
                # FFT over the contiguous last dims (fastest), then move frequencies first.
                part = torch.fft.rfft2(wd[c0:c0 + step], s=(n, n)).conj()
                spec[..., c0:c0 + step] = part.permute(2, 3, 1, 0)
        spec = spec.reshape(n * (n // 2 + 1), cin, cout)
        self._spectrum_cache = (key, spec)
        return spec

    def fft_forward(self, x: Tensor) -> Tensor:
        """The convolution by overlap-save block FFT (same result as the direct one).

        Half-precision input (e.g. under autocast) is computed in float32 and cast back:
        FFTs of non-power-of-two sizes need it, and float32 keeps the 1e-4 agreement.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        dtype = x.dtype
        if dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._fft_forward(x.to(self.weight.dtype)).to(dtype)

    def _fft_forward(self, x: Tensor) -> Tensor:
        k = self.kernel_size[0]
        s, n = self.block, self.fft_size
        nr = n // 2 + 1
        b, cin, h, w = x.shape
        ho, wo = h - k + 1, w - k + 1
        if ho < 1 or wo < 1:
            raise ValueError(f"input {h}x{w} px is smaller than the {k}x{k} kernel")
        spec = self.spectrum(cached=not self._needs_weight_grad())
        nh, nw = math.ceil(ho / s), math.ceil(wo / s)
        x = F.pad(x, (0, nw * s + k - 1 - w, 0, nh * s + k - 1 - h))
        windows = x.unfold(2, n, s).unfold(3, n, s)  # B Cin nh nw n n (a view)
        cout = self.out_channels
        out = x.new_empty((b, cout, nh, s, nw, s))
        itemsize = 16 if x.dtype == torch.float64 else 8
        row_bytes = n * nr * nw * b * max(cin, cout) * itemsize
        rows = max(1, self.chunk_bytes // row_bytes)
        for r0 in range(0, nh, rows):
            r1 = min(nh, r0 + rows)
            m = b * (r1 - r0) * nw
            xf = torch.fft.rfft2(windows[:, :, r0:r1])  # B Cin rows nw n nr
            # One (blocks x Cin) @ (Cin x Cout) complex product per frequency.
            # contiguous(): the permuted view has frequency stride 1, which sends bmm down a
            # path that is 10-100x slower with several threads.
            xf = xf.permute(4, 5, 0, 2, 3, 1).reshape(n * nr, m, cin).contiguous()
            yf = torch.bmm(xf, spec).reshape(n, nr, m * cout)
            del xf
            # Inverse in the frequency-leading layout (no permute of the spectrum): complex
            # FFT over rows, keep the s valid rows, then real inverse FFT over columns.
            yf = torch.fft.ifft(yf, dim=0)[:s]
            y = torch.fft.irfft(yf, n=n, dim=1)[:, :s]  # s s (B rows nw Cout)
            del yf
            out[:, :, r0:r1] = y.reshape(s, s, b, r1 - r0, nw, cout).permute(2, 5, 3, 0, 4, 1)
        y = out.reshape(b, cout, nh * s, nw * s)[:, :, :ho, :wo]
        if self.bias is not None:
            y = y + self.bias.to(y.dtype).view(1, -1, 1, 1)
        return y


def _checksum(w: Tensor) -> tuple[float, float]:
    """Cheap fingerprint of a weight: edits through ``.data`` skip the version counter."""
    with torch.no_grad():
        flat = w.detach().reshape(-1)
        sample = flat[::997]
        pos = torch.arange(1, len(sample) + 1, dtype=sample.dtype, device=w.device)
        # float32 sums (~10 ms for fc1); a float64 sum would cost 10x more on CPU.
        return float(flat.sum()), float((sample * pos).sum())


class FastDropout(nn.Dropout):
    """Element-wise dropout whose CPU masks come from packed random integers.

    Same distribution as ``nn.Dropout`` (keep with probability 1 - p, scale 1 / (1 - p)),
    except that p is quantised to 1/256 when p * 256 is an integer (p = 0.5 is exact) and
    to 1/65536 otherwise. On CPU, ``nn.Dropout``'s Bernoulli draw costs about 15 ns per
    element, which made the MC head (two dropouts over T x 128 channels per pixel) dearer
    than the whole deterministic trunk; one 64-bit draw here serves 8 (or 4) elements. On
    other devices it is ``nn.Dropout``. It is an ``nn.Dropout``, so
    :func:`aerialseg.models.mc.enable_mc_dropout` switches it like any dropout.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Drop elements of ``x`` in train mode; identity in eval mode."""
        if not self.training or self.p == 0.0 or x.device.type != "cpu" or self.p >= 1.0:
            return super().forward(x)
        n = x.numel()
        if float(self.p * 256).is_integer():
            per, dtype, thr = 8, torch.uint8, int(self.p * 256)
        else:
            per, dtype, thr = 4, torch.int16, int(round(self.p * 65536)) - 32768
        r = torch.randint(-2**63, 2**63 - 1, (-(-n // per),), dtype=torch.int64)
        keep = r.view(dtype)[:n].view(x.shape) >= thr
        # x * bool is ~4x faster than torch.where(keep, x, 0) on CPU.
        return x.mul(keep).mul_(1.0 / (1.0 - self.p))


class PatchCNN(nn.Module):
    """Kampffmeyer et al. (2016) patch classifier, usable densely (see module docstring).

    Attributes:
        patch_size: receptive field and training patch side (odd).
        halo: ``patch_size // 2``, the border lost on each side in dense mode.
        fc1_mode: ``"auto"`` | ``"direct"`` | ``"fft"`` (see :class:`FFTConv2d`).
        head_chunk_bytes: the head (dropout, fc2, dropout, classifier) runs over row chunks
            of about this size (cache-friendly MC sampling); results do not depend on it
            except through the order of dropout draws.
    """

    def __init__(self, *, in_channels: int, num_classes: int, patch_size: int = 65,
                 conv_widths: Sequence[int] = (32, 64, 96, 128), conv_kernel: int = 5,
                 pool_kernel: int = 3, fc_width: int = 128, dropout_p: float = 0.5) -> None:
        super().__init__()
        if patch_size % 2 != 1:
            raise ValueError(f"patch_size must be odd (a patch is labelled by its centre "
                             f"pixel), got {patch_size}")
        shrink = len(conv_widths) * (conv_kernel - 1 + pool_kernel - 1)
        fc_kernel = patch_size - shrink
        if fc_kernel < 1:
            raise ValueError(f"patch_size {patch_size} is too small: the {len(conv_widths)} "
                             f"conv/pool layers remove {shrink} px; use patch_size > {shrink}")
        if not 0.0 <= dropout_p < 1.0:
            raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
        self.patch_size = patch_size
        self.halo = patch_size // 2
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        c = in_channels
        for width in conv_widths:
            layers += [nn.Conv2d(c, width, conv_kernel), nn.ReLU(inplace=True),
                       nn.BatchNorm2d(width), nn.MaxPool2d(pool_kernel, stride=1)]
            c = width
        self.features = nn.Sequential(*layers)
        self.fc1 = FFTConv2d(c, fc_width, fc_kernel)
        self.relu1 = nn.ReLU(inplace=True)
        self.drop1 = FastDropout(dropout_p)
        self.fc2 = nn.Conv2d(fc_width, fc_width, 1)
        self.relu2 = nn.ReLU(inplace=True)
        self.drop2 = FastDropout(dropout_p)
        self.out = nn.Conv2d(fc_width, num_classes, 1)
        self.head_chunk_bytes = 2**22
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    @property
    def fc1_mode(self) -> FC1Mode:
        """fc1 algorithm: ``"auto"`` (FFT in eval for large outputs), ``"direct"``, ``"fft"``."""
        return self.fc1.mode

    @fc1_mode.setter
    def fc1_mode(self, value: FC1Mode) -> None:
        self.fc1.mode = value

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[-1] < self.patch_size or x.shape[-2] < self.patch_size:
            raise ValueError(f"PatchCNN needs input (B, C, H, W) with H, W >= patch_size "
                             f"{self.patch_size}, got {tuple(x.shape)}; pad the image (e.g. "
                             f"predict_dense(border_mode='reflect')) or use larger tiles")

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes, H - patch_size + 1, W - patch_size + 1)."""
        self._check(x)
        return self._head(self._trunk(x))

    def _trunk(self, x: Tensor) -> Tensor:
        return self.relu1(self.fc1(self.features(x)))

    def _head(self, z: Tensor) -> Tensor:
        return _run_head(self, z, self.head_chunk_bytes)

    def mc_split(self) -> tuple[nn.Module, nn.Module]:
        """``(trunk, head)`` with ``head(trunk(x)) == self(x)``.

        trunk = convs, fc1, ReLU (no randomness, FFT fc1 in eval mode); head = dropout, fc2,
        ReLU, dropout, classifier (1x1 convs), which accepts the trunk output repeated along
        dim 0. Both share this model's modules (``head.train()`` touches only the head's).
        """
        trunk = nn.Sequential(self.features, self.fc1, self.relu1)
        return trunk, _Head(self)


class _Head(nn.Module):
    """The layers of a :class:`PatchCNN` from the first dropout on (shared modules)."""

    def __init__(self, model: PatchCNN) -> None:
        super().__init__()
        self.drop1, self.fc2, self.relu2 = model.drop1, model.fc2, model.relu2
        self.drop2, self.out = model.drop2, model.out
        self.head_chunk_bytes = model.head_chunk_bytes

    def forward(self, z: Tensor) -> Tensor:
        """Logits from the trunk output ``z``."""
        return _run_head(self, z, self.head_chunk_bytes)


def _run_head(m: PatchCNN | _Head, z: Tensor, chunk_bytes: int) -> Tensor:
    # Row chunks of about chunk_bytes keep the head's element-wise work (dropout, ReLU) in
    # cache: with T MC copies it is otherwise memory bound. The chunking depends only on the
    # input shape, so the split and the stacked MC paths draw the same masks.
    n, c, h, w = z.shape
    rows = max(1, chunk_bytes // max(1, n * c * w * z.element_size()))

    def run(t: Tensor) -> Tensor:
        return m.out(m.drop2(m.relu2(m.fc2(m.drop1(t)))))

    if rows >= h:
        return run(z)
    return torch.cat([run(z[:, :, r:r + rows]) for r in range(0, h, rows)], 2)


@register_model("patch_cnn")
def build_patch_cnn(*, in_channels: int, num_classes: int, patch_size: int = 65,
                    conv_widths: Sequence[int] = (32, 64, 96, 128), conv_kernel: int = 5,
                    pool_kernel: int = 3, fc_width: int = 128,
                    dropout_p: float = 0.5) -> PatchCNN:
    """Build the Kampffmeyer 2016 patch CNN (≈ 28.1 M parameters with the defaults).

    Args:
        in_channels: input bands (5 for IR, R, G, DSM, nDSM).
        num_classes: output classes.
        patch_size: input patch side = receptive field (odd).
        conv_widths: kernels of the conv layers.
        conv_kernel: conv kernel side (valid convolution).
        pool_kernel: stride-1 max-pool side (valid).
        fc_width: width of fc1 and fc2 (fc1 dominates the dense cost).
        dropout_p: element-wise dropout after fc1 and fc2.
    """
    return PatchCNN(in_channels=in_channels, num_classes=num_classes, patch_size=patch_size,
                    conv_widths=tuple(conv_widths), conv_kernel=conv_kernel,
                    pool_kernel=pool_kernel, fc_width=fc_width, dropout_p=dropout_p)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def predict_dense(model: PatchCNN, image: Tensor, *,
                  border_mode: Literal["reflect", "omit"] = "reflect",
                  tile: int = 256) -> Tensor:
    """Class probabilities for every pixel of an image, tile by tile.

    Runs the model in eval mode (flags restored afterwards), without gradients. Each tile
    of ``tile`` x ``tile`` output pixels reads its input with a ``halo``-px margin
    (``model.patch_size // 2``); since the network is stride-1 and translation-equivariant,
    the result equals one untiled pass (up to float rounding), while memory stays bounded
    by the tile size.

    Args:
        model: a :class:`PatchCNN` (anything with ``patch_size`` and the same geometry).
        image: (C, H, W) or (B, C, H, W), already normalised like the training patches.
        border_mode: ``"reflect"`` reflect-pads the image by the halo so every pixel is
            classified; ``"omit"`` leaves the halo-wide border as NaN (the paper's protocol:
            the caller treats NaN as unclassified).
        tile: output tile side in pixels.

    Returns:
        Probabilities (B, num_classes, H, W), float32, on the image's device.
    """
    if border_mode not in ("reflect", "omit"):
        raise ValueError(f"border_mode must be 'reflect' or 'omit', got {border_mode!r}")
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    image = torch.as_tensor(image)
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4:
        raise ValueError(f"image must be (C, H, W) or (B, C, H, W), got {tuple(image.shape)}")
    halo = model.patch_size // 2
    b, _, h, w = image.shape
    param = next(model.parameters())
    x = image.to(device=param.device, dtype=param.dtype)
    if border_mode == "reflect":
        if min(h, w) <= halo:
            raise ValueError(f"image {h}x{w} px is too small to reflect-pad by {halo} px; "
                             f"it needs more than {halo} px per side")
        x = F.pad(x, (halo, halo, halo, halo), mode="reflect")
        off = 0
    else:
        off = halo
    ho, wo = x.shape[-2] - 2 * halo, x.shape[-1] - 2 * halo
    probs: Tensor | None = None
    with _eval_mode(model), torch.no_grad():
        for i in range(0, max(ho, 0), tile):
            for j in range(0, max(wo, 0), tile):
                th, tw = min(tile, ho - i), min(tile, wo - j)
                logits = model(x[:, :, i:i + th + 2 * halo, j:j + tw + 2 * halo])
                p = torch.softmax(logits.float(), dim=1).to(image.device)
                if probs is None:
                    probs = torch.full((b, p.shape[1], h, w), float("nan"),
                                       dtype=torch.float32, device=image.device)
                probs[:, :, off + i:off + i + th, off + j:off + j + tw] = p
    if probs is None:  # "omit" on an image no larger than one patch: nothing classified
        k = getattr(model, "num_classes", None)
        if k is None:
            raise ValueError(f"image {h}x{w} px is too small for border_mode='omit'")
        probs = torch.full((b, k, h, w), float("nan"), dtype=torch.float32, device=image.device)
    return probs
