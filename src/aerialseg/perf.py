"""Performance choices measured on the book's machine, for the training and inference code.

:func:`prefers_channels_last` says whether a model's CPU training step ran more than 5 % faster
with ``channels_last`` (model and input batch) than with the default layout, as measured by
``bench/bench_channels_last.py`` (1 thread, the book's setting; alternating steps, medians).
Use it as::

    if prefers_channels_last(cfg.model, device.type):
        model = model.to(memory_format=torch.channels_last)
        # and every input batch: x = x.contiguous(memory_format=torch.channels_last)

The layout changes the convolution kernels and so the float rounding of the results (not
their meaning): runs trained with and without it are not bit-identical.
"""

from __future__ import annotations

CHANNELS_LAST_THRESHOLD = 0.05
"""Minimum relative gain (default step time / channels_last step time - 1) to switch."""

CHANNELS_LAST_SPEEDUP: dict[str, float] = {
    # registry model name: default / channels_last CPU seconds of one training step (median
    # of 9 alternating steps), 1 thread, default-profile batch and crop, random weights;
    # bench/bench_channels_last.py on 2026-11-27, the shared 2-core machine: the lower of two
    # runs (one quiet, one loaded). Provisional until re-measured on a quiet machine.
    "fcn": 1.15,  # 8 x 256 px
    "smp_unet": 1.10,  # ResNet-18, 8 x 128 px
    "smp_fpn": 1.10,  # ResNet-18, 8 x 128 px
    "smp_deeplabv3plus": 1.04,  # ResNet-18, 8 x 128 px: within noise
    "smp_pspnet": 1.22,  # ResNet-18, 8 x 128 px
    "cse_unet": 1.18,  # base_width 16, 4 x 96 px
    "patch_cnn": 1.36,  # training on 32 patches of 65 px (not the dense FFT inference)
}
"""Measured speed-ups; models not listed (e.g. ``unet_plain``) were not measured."""


def prefers_channels_last(model_name: str, device_type: str = "cpu") -> bool:
    """Whether to train ``model_name`` on ``device_type`` with ``channels_last``.

    True where it was measured > 5 % faster on CPU. ``model_name`` is a key of
    :data:`aerialseg.models.registry.MODELS`; unmeasured models and devices (CUDA: not
    measured here) keep the default layout.
    """
    if device_type != "cpu":
        return False
    return CHANNELS_LAST_SPEEDUP.get(model_name, 1.0) > 1.0 + CHANNELS_LAST_THRESHOLD
