"""segmentation_models_pytorch (smp) models with optional MC-dropout sites in the encoder.

Builders: :func:`build_smp_unet`, :func:`build_smp_fpn`, :func:`build_smp_pspnet`,
:func:`build_smp_deeplabv3plus`. Each returns an :class:`SmpSegmenter` holding smp's
``encoder``, ``decoder`` and ``segmentation_head`` (same state-dict prefixes as smp) that

- reflect-pads inputs to a multiple of the encoder's output stride and crops the logits
  back, so whole scenes of any size work;
- with ``encoder_dropout=p > 0`` applies element-wise ``nn.Dropout(p)`` after each ResNet
  stage ``layer1..layer4`` that the model uses, as U-CE's MC-dropout DeepLabV3+ does
  (p = 0.2 there). The dropped features are also the ones passed to the decoder as skips,
  as in U-CE's code. Implemented by replacing ``encoder.layerK`` with
  ``nn.Sequential(layerK, nn.Dropout(p))`` (state-dict keys become ``layerK.0.*``);
- keeps smp's own decoder dropouts: FPN ``Dropout2d(0.2)``, PSPNet ``Dropout2d(0.2)``,
  DeepLabV3+ ASPP ``Dropout(0.5)`` (U-CE's model has the latter too); ``decoder_dropout``
  overrides their rate. smp's Unet has none. MC sampling activates all of them;
- drops the ResNet stages a shallow encoder never runs (smp keeps them; PSPNet's default
  depth 3 leaves layer3/layer4 idle), so parameter counts are honest and DDP works;
- exposes ``mc_split()`` (see :mod:`aerialseg.models.mc`): with encoder dropout on a ResNet
  encoder the trunk is the stem + ``layer1`` (before its dropout); without encoder dropout
  the trunk is the whole encoder and the head the decoder.

``encoder_weights=None`` (default) builds offline. ``encoder_weights="imagenet"`` is
optional: smp then fetches the weights from the Hugging Face hub (or its local cache),
which fails under ``HF_HUB_OFFLINE=1`` without a cache; with ``in_channels != 3`` smp adapts
the first conv of the pretrained weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch.encoders.resnet import ResNetEncoder
from torch import nn

from aerialseg.models._pad import crop_to, pad_to_multiple
from aerialseg.models.mc import has_dropout
from aerialseg.models.registry import register_model

_FORBIDDEN_KWARGS = ("aux_params", "activation", "encoder_name", "classes")


class SmpSegmenter(nn.Module):
    """An smp model's parts behind the library's model interface (logits, any H, W).

    Attributes:
        encoder, decoder, segmentation_head: the smp modules.
        output_stride: inputs are padded to a multiple of this.
        encoder_dropout: the encoder MC-dropout rate (0 = none).
        name: smp's model name, e.g. ``"deeplabv3plus-resnet18"``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        segmentation_head: nn.Module,
        *,
        name: str,
        encoder_dropout: float,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.segmentation_head = segmentation_head
        self.output_stride = int(encoder.output_stride)
        self.encoder_dropout = encoder_dropout
        self.name = name

    def param_groups(self, lr: float, decoder_lr_mult: float = 1.0) -> list[dict[str, Any]]:
        """Optimiser groups: encoder at ``lr``, the rest at ``lr * decoder_lr_mult``.

        :func:`aerialseg.training.build_optimizer` uses this (U-CE's 10x decoder lr).
        """
        return param_groups(self, lr, decoder_lr_mult)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes, H, W) for input (B, in_channels, H, W)."""
        xp, size = pad_to_multiple(x, self.output_stride)
        y = self.segmentation_head(self.decoder(self.encoder(xp)))
        return crop_to(y, size)

    def _decode(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        return crop_to(self.segmentation_head(self.decoder(features)), size)

    def mc_split(
        self,
    ) -> tuple[Callable[[torch.Tensor], Any], Callable[[Any], torch.Tensor]]:
        """Split into ``(trunk, head)`` with ``head(trunk(x)) == self(x)``.

        Raises:
            NotImplementedError: the encoder has dropout but is not an smp ResNet encoder.
        """
        enc = self.encoder
        if not has_dropout(enc):

            def trunk(x: torch.Tensor) -> tuple[list[torch.Tensor], tuple[int, int]]:
                xp, size = pad_to_multiple(x, self.output_stride)
                return list(enc(xp)), size

            def head(state: tuple[list[torch.Tensor], tuple[int, int]]) -> torch.Tensor:
                return self._decode(*state)

            return trunk, head

        if not (isinstance(enc, ResNetEncoder) and _is_wrapped(enc.layer1)):
            raise NotImplementedError("mc_split needs an smp ResNet encoder with encoder_dropout")
        later = [getattr(enc, f"layer{k}") for k in range(2, enc._depth)]

        # Mirrors ResNetEncoder.forward, cut inside layer1 before its dropout.
        def res_trunk(x: torch.Tensor) -> tuple[list[torch.Tensor], tuple[int, int]]:
            xp, size = pad_to_multiple(x, self.output_stride)
            f1 = enc.relu(enc.bn1(enc.conv1(xp)))
            pre = enc.layer1[0](enc.maxpool(f1))
            return [xp, f1, pre], size

        def res_head(state: tuple[list[torch.Tensor], tuple[int, int]]) -> torch.Tensor:
            (xp, f1, pre), size = state
            feats = [xp, f1, enc.layer1[1](pre)]
            for layer in later:
                feats.append(layer(feats[-1]))
            return self._decode(feats, size)

        return res_trunk, res_head


def _is_wrapped(layer: nn.Module) -> bool:
    return (
        isinstance(layer, nn.Sequential)
        and len(layer) == 2
        and isinstance(layer[1], nn.Dropout)
    )


def _check_rate(name: str, p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {p}")


def _build(
    arch: type[nn.Module],
    *,
    in_channels: int,
    num_classes: int,
    encoder: str,
    encoder_weights: str | None,
    encoder_dropout: float,
    decoder_kwargs: dict[str, Any],
    smp_kwargs: dict[str, Any],
) -> SmpSegmenter:
    _check_rate("encoder_dropout", encoder_dropout)
    bad = [k for k in _FORBIDDEN_KWARGS if k in smp_kwargs]
    if bad:
        raise ValueError(
            f"{bad} cannot be passed: use encoder=..., num_classes=...; the model always "
            "returns raw logits and has no classification head"
        )
    net = arch(
        encoder_name=encoder,
        encoder_weights=encoder_weights,
        in_channels=in_channels,
        classes=num_classes,
        **decoder_kwargs,
        **smp_kwargs,
    )
    enc = net.encoder
    if isinstance(enc, ResNetEncoder):
        # smp keeps the ResNet stages a shallow encoder never runs (PSPNet's default depth 3
        # leaves layer3/layer4 idle): drop them so the parameter count is honest and DDP
        # does not stop on parameters without gradients.
        for k in range(max(enc._depth, 1), 5):
            if hasattr(enc, f"layer{k}"):
                delattr(enc, f"layer{k}")
    if encoder_dropout > 0:
        if not isinstance(enc, ResNetEncoder):
            raise ValueError(
                f"encoder_dropout needs a ResNet-family encoder (resnet18/34/50/101/152, "
                f"resnext...), got {encoder!r}; use encoder_dropout=0 with this encoder"
            )
        # Only the stages the model runs: PSPNet's default depth 3 uses layer1, layer2.
        for k in range(1, min(enc._depth - 1, 4) + 1):
            name = f"layer{k}"
            setattr(enc, name, nn.Sequential(getattr(enc, name), nn.Dropout(encoder_dropout)))
    return SmpSegmenter(
        enc, net.decoder, net.segmentation_head, name=net.name, encoder_dropout=encoder_dropout
    )


def _decoder_dropout(key: str, p: float | None) -> dict[str, Any]:
    if p is None:
        return {}
    _check_rate("decoder_dropout", p)
    return {key: p}


@register_model("smp_unet")
def build_smp_unet(
    *,
    in_channels: int,
    num_classes: int,
    encoder: str = "resnet34",
    encoder_weights: str | None = None,
    encoder_dropout: float = 0.0,
    decoder_dropout: float | None = None,
    **smp_kwargs: Any,
) -> SmpSegmenter:
    """Build smp's ``Unet``; extra keywords (e.g. ``decoder_channels``) go to smp.

    smp's Unet has no decoder dropout, so ``decoder_dropout`` must be None or 0.
    """
    if decoder_dropout:
        raise ValueError(
            "smp Unet has no decoder dropout; use encoder_dropout for MC-dropout sites"
        )
    return _build(
        smp.Unet, in_channels=in_channels, num_classes=num_classes, encoder=encoder,
        encoder_weights=encoder_weights, encoder_dropout=encoder_dropout, decoder_kwargs={},
        smp_kwargs=smp_kwargs,
    )


@register_model("smp_fpn")
def build_smp_fpn(
    *,
    in_channels: int,
    num_classes: int,
    encoder: str = "resnet34",
    encoder_weights: str | None = None,
    encoder_dropout: float = 0.0,
    decoder_dropout: float | None = None,
    **smp_kwargs: Any,
) -> SmpSegmenter:
    """Build smp's ``FPN`` (EFM's first model, ResNet-34); extra keywords go to smp.

    ``decoder_dropout`` sets smp's ``Dropout2d`` after the pyramid merge (None = smp's 0.2).
    """
    return _build(
        smp.FPN, in_channels=in_channels, num_classes=num_classes, encoder=encoder,
        encoder_weights=encoder_weights, encoder_dropout=encoder_dropout,
        decoder_kwargs=_decoder_dropout("decoder_dropout", decoder_dropout),
        smp_kwargs=smp_kwargs,
    )


@register_model("smp_pspnet")
def build_smp_pspnet(
    *,
    in_channels: int,
    num_classes: int,
    encoder: str = "resnet34",
    encoder_weights: str | None = None,
    encoder_dropout: float = 0.0,
    decoder_dropout: float | None = None,
    **smp_kwargs: Any,
) -> SmpSegmenter:
    """Build smp's ``PSPNet`` (EFM's second model; smp defaults: depth 3, output stride 8).

    With depth 3 only ``layer1`` and ``layer2`` run, so ``encoder_dropout`` adds 2 dropout
    sites. ``decoder_dropout`` sets smp's ``psp_dropout`` (None = smp's 0.2, a Dropout2d).
    """
    return _build(
        smp.PSPNet, in_channels=in_channels, num_classes=num_classes, encoder=encoder,
        encoder_weights=encoder_weights, encoder_dropout=encoder_dropout,
        decoder_kwargs=_decoder_dropout("psp_dropout", decoder_dropout),
        smp_kwargs=smp_kwargs,
    )


@register_model("smp_deeplabv3plus")
def build_smp_deeplabv3plus(
    *,
    in_channels: int,
    num_classes: int,
    encoder: str = "resnet18",
    encoder_weights: str | None = None,
    encoder_dropout: float = 0.0,
    decoder_dropout: float | None = None,
    encoder_output_stride: int = 16,
    decoder_atrous_rates: tuple[int, int, int] = (12, 24, 36),
    decoder_channels: int = 256,
    **smp_kwargs: Any,
) -> SmpSegmenter:
    """Build smp's ``DeepLabV3Plus`` as in U-CE (ResNet-18, output stride 16, ASPP 12/24/36).

    U-CE's MC-dropout model is ``encoder_dropout=0.2``. ``decoder_dropout`` sets the ASPP
    projection's ``nn.Dropout`` (None = smp's 0.5, which U-CE's model also has).
    """
    if encoder_output_stride not in (8, 16):
        raise ValueError(f"encoder_output_stride must be 8 or 16, got {encoder_output_stride}")
    kwargs = _decoder_dropout("decoder_aspp_dropout", decoder_dropout)
    kwargs |= {
        "encoder_output_stride": encoder_output_stride,
        "decoder_atrous_rates": tuple(decoder_atrous_rates),
        "decoder_channels": decoder_channels,
    }
    return _build(
        smp.DeepLabV3Plus, in_channels=in_channels, num_classes=num_classes, encoder=encoder,
        encoder_weights=encoder_weights, encoder_dropout=encoder_dropout,
        decoder_kwargs=kwargs, smp_kwargs=smp_kwargs,
    )


def param_groups(
    model: nn.Module, lr: float, decoder_lr_mult: float = 10.0
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: encoder at ``lr``, everything else at ``lr * mult``.

    U-CE trains the decoder and segmentation head at 10x the encoder's rate. Accepts a
    model with an ``encoder`` attribute, also wrapped in DDP (``model.module``).

    Returns:
        ``[{"name": "encoder", "params", "lr"}, {"name": "decoder", "params", "lr"}]``.
    """
    inner = getattr(model, "module", model)
    encoder = getattr(inner, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise ValueError(
            f"{type(inner).__name__} has no `encoder` submodule; param_groups needs an smp "
            "model (build_smp_*); use model.parameters() for other models"
        )
    enc_params = list(encoder.parameters())
    enc_ids = {id(p) for p in enc_params}
    rest = [p for p in inner.parameters() if id(p) not in enc_ids]
    return [
        {"name": "encoder", "params": enc_params, "lr": lr},
        {"name": "decoder", "params": rest, "lr": lr * decoder_lr_mult},
    ]
