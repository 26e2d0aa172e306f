"""CSE-UNet (Wang & Xie 2020) and its plain-UNet ablation, per methods.md §7.

CSE-UNet is a UNet with (i) a dual-path encoder: an auxiliary chain of strided multi-kernel
convs (kernels 7, 5, 3, 2) whose outputs are added to the max-pooled main features, and (ii)
RFB-style skip pathways: a per-level stack of small convs followed by a dilated 3x3 conv.
Widths 64..1024 and the 1x1 head are reconstructed (the paper does not state them).

Mazur's 2026 replication layout is available through ``rfb_mode="parallel_concat"`` and
``aux_mode="from_fused"``; :data:`MAZUR_2026` holds all of his settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aerialseg.models.registry import register_model

RFBMode = Literal["sequential", "parallel_concat"]
AuxMode = Literal["chain", "from_fused"]

#: Keyword arguments reproducing Mazur's (2026) implementation; use with 7 output classes.
MAZUR_2026: dict[str, Any] = {
    "rfb_mode": "parallel_concat",
    "aux_mode": "from_fused",
    "rfb_stack_kernels": (3, 3, 1, 1),  # his level-3 stack is 1x1 where the paper says 3x3
    "dropout2d": 0.2,
}


def _cbr(in_ch: int, out_ch: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    """Conv (same padding, no bias: BN follows) -> BN -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=dilation * (kernel - 1) // 2,
                  dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class DoubleConv(nn.Sequential):
    """CBR(3) -> CBR(3), optionally followed by channel dropout (Mazur's placement)."""

    def __init__(self, in_ch: int, out_ch: int, dropout2d: float = 0.0) -> None:
        layers: list[nn.Module] = [_cbr(in_ch, out_ch), _cbr(out_ch, out_ch)]
        if dropout2d > 0:
            layers.append(nn.Dropout2d(dropout2d))
        super().__init__(*layers)


class RFBSkip(nn.Module):
    """RFB skip pathway: ``n_stack`` CBR(k) then CBR(3, dilation), channels preserved.

    ``mode="sequential"`` chains the stack into the dilated conv (paper, Figure 2);
    ``mode="parallel_concat"`` runs both on the input and concatenates (Mazur), so the
    output has ``2 * channels`` channels (see :attr:`out_channels`).
    """

    def __init__(self, channels: int, n_stack: int, stack_kernel: int, dilation: int,
                 mode: RFBMode = "sequential") -> None:
        super().__init__()
        self.mode = mode
        self.stack = nn.Sequential(*[_cbr(channels, channels, stack_kernel)
                                     for _ in range(n_stack)])
        self.dilated = _cbr(channels, channels, 3, dilation)
        self.out_channels = channels * (2 if mode == "parallel_concat" else 1)

    def forward(self, x: Tensor) -> Tensor:
        """Return the skip features for ``x`` (B, C, H, W)."""
        if self.mode == "sequential":
            return self.dilated(self.stack(x))
        return torch.cat([self.stack(x), self.dilated(x)], dim=1)


def _per_level(name: str, values: Sequence[int], depth: int) -> tuple[int, ...]:
    values = tuple(int(v) for v in values)
    if len(values) != depth:
        raise ValueError(f"{name} has {len(values)} entries but depth={depth}; "
                         f"pass one value per encoder level, e.g. {name}={values[:1] * depth}")
    return values


class CSEUNet(nn.Module):
    """CSE-UNet with ablation switches (methods.md §7).

    Args:
        in_channels: input bands.
        num_classes: output logits per pixel.
        base_width: C1; widths double per level up to the bridge (64 -> 1024 at depth 4).
        depth: number of encoder levels (poolings); input sides are reflect-padded
            internally to a multiple of ``2**depth`` and the logits cropped back.
        use_rfb: RFB skip pathways; if False the skip is the raw encoder feature.
        use_aux_path: auxiliary strided multi-kernel encoder path.
        rfb_mode: ``"sequential"`` (paper) or ``"parallel_concat"`` (Mazur).
        aux_mode: ``"chain"`` (paper: a1 from e1, a_k from ReLU(a_{k-1})) or
            ``"from_fused"`` (Mazur: a1 from the raw input, a_k from the fused f_{k-1}).
        rfb_dilations: dilation of the RFB's 3x3 conv per level.
        rfb_stack: number of stacked convs per level.
        rfb_stack_kernels: kernel size (odd) of the stacked convs per level.
        aux_kernels: kernel of the stride-2 aux conv per level.
        dropout2d: channel-dropout rate at the end of every double conv (0 = none).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        base_width: int = 64,
        depth: int = 4,
        use_rfb: bool = True,
        use_aux_path: bool = True,
        rfb_mode: RFBMode = "sequential",
        aux_mode: AuxMode = "chain",
        rfb_dilations: Sequence[int] = (7, 5, 3, 1),
        rfb_stack: Sequence[int] = (3, 2, 1, 1),
        rfb_stack_kernels: Sequence[int] = (3, 3, 3, 1),
        aux_kernels: Sequence[int] = (7, 5, 3, 2),
        dropout2d: float = 0.0,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if rfb_mode not in ("sequential", "parallel_concat"):
            raise ValueError(
                f"rfb_mode must be 'sequential' or 'parallel_concat', got {rfb_mode!r}")
        if aux_mode not in ("chain", "from_fused"):
            raise ValueError(f"aux_mode must be 'chain' or 'from_fused', got {aux_mode!r}")
        if not 0.0 <= dropout2d < 1.0:
            raise ValueError(f"dropout2d must be in [0, 1), got {dropout2d}")
        dil = _per_level("rfb_dilations", rfb_dilations, depth)
        stack = _per_level("rfb_stack", rfb_stack, depth)
        stack_k = _per_level("rfb_stack_kernels", rfb_stack_kernels, depth)
        aux_k = _per_level("aux_kernels", aux_kernels, depth)
        if any(k % 2 == 0 for k in stack_k):
            raise ValueError(f"rfb_stack_kernels must be odd for same padding, got {stack_k}")

        self.in_channels = in_channels
        self.num_classes = num_classes
        self.depth = depth
        self.aux_mode = aux_mode
        self.widths = tuple(base_width * 2**k for k in range(depth + 1))
        w = self.widths

        # encoders[k] produces e_{k+1}; encoders[depth] is the bridge.
        self.encoders = nn.ModuleList(
            [DoubleConv(in_channels, w[0], dropout2d)]
            + [DoubleConv(w[k], w[k + 1], dropout2d) for k in range(depth)]
        )
        self.pool = nn.MaxPool2d(2)
        self.aux: nn.ModuleList | None = None
        if use_aux_path:
            first_in = in_channels if aux_mode == "from_fused" else w[0]
            # padding (k-1)//2 halves any even side exactly, for odd and even k alike.
            self.aux = nn.ModuleList(
                nn.Sequential(
                    nn.Conv2d(first_in if k == 0 else w[k - 1], w[k], aux_k[k], stride=2,
                              padding=(aux_k[k] - 1) // 2, bias=False),
                    nn.BatchNorm2d(w[k]),
                )
                for k in range(depth)
            )
        skips: list[nn.Module] = []
        skip_ch: list[int] = []
        for k in range(depth):
            if use_rfb:
                rfb = RFBSkip(w[k], stack[k], stack_k[k], dil[k], rfb_mode)
                skips.append(rfb)
                skip_ch.append(rfb.out_channels)
            else:
                skips.append(nn.Identity())
                skip_ch.append(w[k])
        self.skips = nn.ModuleList(skips)
        # 1x1 before the bilinear x2: they commute and the 1x1 is cheaper at low resolution.
        self.up_proj = nn.ModuleList(nn.Conv2d(w[k + 1], w[k], 1) for k in range(depth))
        self.decoders = nn.ModuleList(
            DoubleConv(w[k] + skip_ch[k], w[k], dropout2d) for k in range(depth)
        )
        self.head = nn.Conv2d(w[0], num_classes, 1)

    def _pad(self, x: Tensor) -> Tensor:
        m = 2**self.depth
        h, w = x.shape[-2:]
        ph, pw = (-h) % m, (-w) % m
        if ph == 0 and pw == 0:
            return x
        # reflect needs pad < side; tiny inputs fall back to edge replication.
        mode = "reflect" if ph < h and pw < w else "replicate"
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    def forward(self, x: Tensor) -> Tensor:
        """Map (B, in_channels, H, W) to logits (B, num_classes, H, W), any H, W."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, H, W), got "
                             f"{tuple(x.shape)}; check in_channels or the band stack")
        h, w = x.shape[-2:]
        x = self._pad(x)
        e = self.encoders[0](x)
        enc_feats: list[Tensor] = []
        a = f_prev = x  # placeholders; overwritten before first use
        for k in range(self.depth):
            enc_feats.append(e)
            f = self.pool(e)
            if self.aux is not None:
                if self.aux_mode == "chain":
                    src = e if k == 0 else F.relu(a)  # ReLU between chain links
                else:
                    src = x if k == 0 else f_prev
                a = self.aux[k](src)
                f = F.relu(f + a)
            f_prev = f
            e = self.encoders[k + 1](f)
        d = e  # bridge output
        for k in reversed(range(self.depth)):
            s = self.skips[k](enc_feats[k])
            u = F.interpolate(self.up_proj[k](d), size=s.shape[-2:], mode="bilinear",
                              align_corners=False)
            d = self.decoders[k](torch.cat([u, s], dim=1))
        return self.head(d)[..., :h, :w]


@register_model("cse_unet")
def build_cse_unet(*, in_channels: int, num_classes: int, **kw: Any) -> CSEUNet:
    """Build CSE-UNet; ``kw`` are :class:`CSEUNet` options (e.g. ``**MAZUR_2026``)."""
    return CSEUNet(in_channels, num_classes, **kw)


@register_model("unet_plain")
def build_plain_unet(*, in_channels: int, num_classes: int, **kw: Any) -> CSEUNet:
    """Build the Table 1 "UNet" row: CSE-UNet without RFB skips and auxiliary path."""
    for key in ("use_rfb", "use_aux_path"):
        if kw.pop(key, False):
            raise ValueError(f"build_plain_unet fixes {key}=False; use build_cse_unet instead")
    return CSEUNet(in_channels, num_classes, use_rfb=False, use_aux_path=False, **kw)
