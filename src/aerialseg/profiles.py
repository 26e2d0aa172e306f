"""The study's profiles and the defaults every chapter shares.

A profile fills every parameter a chapter leaves at ``None``: ``smoke`` (CI: proves every
code path runs), ``default`` (the committed book on a 2-core CPU), ``gpu`` (the same study
larger, for a short run on one GPU) and ``full`` (the papers' own settings, GPU).
"""

from __future__ import annotations

PROFILES: tuple[str, ...] = ("smoke", "default", "gpu", "full")

SEEDS: dict[str, tuple[int, ...]] = {
    "smoke": (0,), "default": (0, 1, 2), "gpu": (0, 1, 2), "full": (0, 1, 2)}
"""Seeds a chapter runs when its ``seeds`` parameter is None (a chapter may override)."""


def check_profile(profile: object) -> str:
    """Return ``profile`` or raise a clear error listing the valid ones."""
    name = profile.strip() if isinstance(profile, str) else profile
    if name not in PROFILES:
        raise ValueError(f"unknown profile: profile must be one of "
                         f"{', '.join(map(repr, PROFILES))} (got {profile!r})")
    return name
