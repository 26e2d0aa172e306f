from aerialseg.models.registry import model_names
from aerialseg.perf import CHANNELS_LAST_SPEEDUP, prefers_channels_last


def test_prefers_channels_last_follows_the_measurements():
    assert set(CHANNELS_LAST_SPEEDUP) <= set(model_names())  # registry names only
    for name, speedup in CHANNELS_LAST_SPEEDUP.items():
        assert prefers_channels_last(name) == (speedup > 1.05)
        assert not prefers_channels_last(name, "cuda")  # not measured there
    assert not prefers_channels_last("unet_plain")  # not measured: default layout
