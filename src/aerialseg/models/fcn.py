"""Pixel-to-pixel FCN of Kampffmeyer et al. (2016), methods.md §2.

Architecture (stated by the paper unless marked [reconstructed]):

- four sets of two 3x3 convolutions, widths ``(64, 128, 256, 512)`` [reconstructed];
- 2x2 max-pool (stride 2) between consecutive sets (3 pools);
- the very first conv has stride ``first_stride`` (2), so the output stride is 16;
- every conv is followed by ReLU *then* BatchNorm (the paper's order), He init;
- a 1x1 conv to ``num_classes`` and one learnable transposed conv upsampling x16
  (kernel 32, stride 16, padding 8, bilinear init) [reconstructed: FCN-style];
- element-wise ``nn.Dropout(p=0.5)`` after conv sets 3 and 4 [reconstructed]. A site
  ``"setK"`` sits after set K's max-pool (for set 4, which has none, after its last
  BatchNorm), as Bayesian SegNet places dropout after pooling.

Edge handling [ours]: the score map is edge-replicated by one pixel before the transposed
conv and the extra 16 output pixels per side are cropped, so the initialised layer equals
``F.interpolate(..., mode="bilinear", align_corners=False)`` everywhere, borders included
(with plain padding 8 the outer 8 px would fade towards zero). Inputs whose sides are not
multiples of 16 are reflect-padded at the bottom/right and the logits cropped back.

MC split: :meth:`FCN.mc_split` returns ``(trunk, head)`` with ``head(trunk(x)) == model(x)``;
the trunk is everything before the first dropout (deterministic, computed once per input)
and the head everything from it on. :func:`aerialseg.models.mc.mc_forward` uses it to run
only the head on T stacked copies.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from aerialseg.models._pad import crop_to, pad_to_multiple
from aerialseg.models.registry import register_model

DROPOUT_SITES = ("set1", "set2", "set3", "set4")
UPSAMPLE_MODES = ("transposed_bilinear_init", "bilinear")


def bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    """Weight (channels, channels, size, size) of a channel-wise bilinear transposed conv.

    Off-diagonal (cross-class) entries are zero, as in the original FCN initialisation.
    """
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    filt1d = 1 - (og - center).abs() / factor
    filt = (filt1d[:, None] * filt1d[None, :]).float()
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = filt
    return weight


class BilinearInitUpsample(nn.Module):
    """Learnable transposed conv upsampling by ``factor``, initialised to bilinear.

    Kernel ``2 * factor``, stride ``factor``, padding ``factor // 2``, no bias. The input is
    edge-replicated by one pixel and the output cropped by ``factor`` per side, so at
    initialisation the result equals bilinear interpolation (``align_corners=False``).
    """

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        if factor < 2 or factor % 2:
            raise ValueError(f"upsampling factor must be an even integer >= 2, got {factor}")
        self.factor = factor
        self.deconv = nn.ConvTranspose2d(
            channels, channels, kernel_size=2 * factor, stride=factor, padding=factor // 2,
            bias=False,
        )
        with torch.no_grad():
            self.deconv.weight.copy_(bilinear_kernel(channels, 2 * factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample (B, C, h, w) -> (B, C, factor*h, factor*w)."""
        f = self.factor
        y = self.deconv(F.pad(x, (1, 1, 1, 1), mode="replicate"))
        return y[..., f:-f, f:-f]


class BilinearUpsample(nn.Module):
    """Fixed (non-learned) bilinear upsampling by ``factor`` (the ``"bilinear"`` ablation)."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample (B, C, h, w) -> (B, C, factor*h, factor*w)."""
        return F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=False)


def _conv_set(cin: int, cout: int, first_stride: int) -> nn.Sequential:
    # ReLU before BatchNorm, as in the paper; the conv keeps its bias because the ReLU
    # between conv and BN makes it non-redundant.
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=first_stride, padding=1),
        nn.ReLU(inplace=True),
        nn.BatchNorm2d(cout),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.BatchNorm2d(cout),
    )


class FCN(nn.Module):
    """Kampffmeyer et al. (2016) FCN; see the module docstring and :func:`build_fcn`.

    Attributes:
        features: ``set1, pool1, [drop1], set2, pool2, [drop2], set3, pool3, [drop3], set4,
            [drop4]`` (named children).
        classifier: 1x1 conv to ``num_classes``.
        upsample: x ``output_stride`` upsampling back to the (padded) input size.
        output_stride: 8 * ``first_stride``; inputs are padded to a multiple of it.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: Sequence[int],
        first_stride: int,
        dropout_p: float,
        dropout_sites: Sequence[str],
        upsample: str,
    ) -> None:
        super().__init__()
        self.output_stride = 8 * first_stride
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        cin = in_channels
        for k, width in enumerate(widths, start=1):
            layers[f"set{k}"] = _conv_set(cin, width, first_stride if k == 1 else 1)
            if k < len(widths):
                layers[f"pool{k}"] = nn.MaxPool2d(2, 2)
            if f"set{k}" in dropout_sites and dropout_p > 0:
                layers[f"drop{k}"] = nn.Dropout(dropout_p)
            cin = width
        self.features = nn.Sequential(layers)
        self.classifier = nn.Conv2d(cin, num_classes, 1)
        if upsample == "transposed_bilinear_init":
            self.upsample: nn.Module = BilinearInitUpsample(num_classes, self.output_stride)
        else:
            self.upsample = BilinearUpsample(self.output_stride)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He init (ConvTranspose2d is not a Conv2d)
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes, H, W) for input (B, in_channels, H, W)."""
        xp, size = pad_to_multiple(x, self.output_stride)
        y = self.upsample(self.classifier(self.features(xp)))
        return crop_to(y, size)

    def _split_index(self) -> int:
        for i, m in enumerate(self.features):
            if isinstance(m, nn.Dropout):
                return i
        return len(self.features)

    def mc_split(
        self,
    ) -> tuple[Callable[[torch.Tensor], Any], Callable[[Any], torch.Tensor]]:
        """Split into ``(trunk, head)`` with ``head(trunk(x)) == self(x)``.

        The trunk pads ``x`` and runs every layer before the first dropout (no randomness);
        it returns ``(features, (H, W))``. The head runs the rest (dropout included) and
        crops back. The head accepts the trunk's feature batch repeated along dim 0.
        """
        i = self._split_index()
        pre, post = self.features[:i], self.features[i:]

        def trunk(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
            xp, size = pad_to_multiple(x, self.output_stride)
            return pre(xp), size

        def head(state: tuple[torch.Tensor, tuple[int, int]]) -> torch.Tensor:
            feats, size = state
            return crop_to(self.upsample(self.classifier(post(feats))), size)

        return trunk, head


@register_model("fcn")
def build_fcn(
    *,
    in_channels: int,
    num_classes: int,
    widths: Sequence[int] = (64, 128, 256, 512),
    first_stride: int = 2,
    dropout_p: float = 0.5,
    dropout_sites: Sequence[str] = ("set3", "set4"),
    upsample: str = "transposed_bilinear_init",
) -> nn.Module:
    """Build the Kampffmeyer et al. (2016) FCN (methods.md §2).

    Args:
        in_channels: input bands (5 for IR, R, G, DSM, nDSM).
        num_classes: output classes.
        widths: channels of the four conv sets [reconstructed].
        first_stride: stride of the very first conv (1 or 2); output stride is 8x this.
        dropout_p: element-wise dropout rate in [0, 1); 0 removes the dropout layers.
        dropout_sites: subset of ``("set1", "set2", "set3", "set4")``.
        upsample: ``"transposed_bilinear_init"`` (learnable) or ``"bilinear"`` (fixed).

    Returns:
        An :class:`FCN` giving logits (B, num_classes, H, W) for any H, W.
    """
    if in_channels < 1 or num_classes < 1:
        raise ValueError(
            f"in_channels and num_classes must be >= 1, got {in_channels} and {num_classes}"
        )
    widths = tuple(int(w) for w in widths)
    if len(widths) != 4 or min(widths) < 1:
        raise ValueError(f"widths must be 4 positive ints (one per conv set), got {widths}")
    if first_stride not in (1, 2):
        raise ValueError(f"first_stride must be 1 or 2, got {first_stride}")
    if not (0.0 <= dropout_p < 1.0) or math.isnan(dropout_p):
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if isinstance(dropout_sites, str):
        raise ValueError(
            f"dropout_sites must be a sequence of names, e.g. ({dropout_sites!r},), "
            "not a bare string"
        )
    unknown = [s for s in dropout_sites if s not in DROPOUT_SITES]
    if unknown:
        raise ValueError(f"unknown dropout_sites {unknown}; valid sites are {DROPOUT_SITES}")
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"unknown upsample {upsample!r}; choose one of {UPSAMPLE_MODES}")
    return FCN(
        in_channels, num_classes, widths, first_stride, float(dropout_p), tuple(dropout_sites),
        upsample,
    )
