"""Shared fixtures: tiny scenes, isolated run store / results folders."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from aerialseg.data.classes import ISPRS
from aerialseg.data.scene import Scene

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# tiny tensors run faster on one thread, and the suite shares 2 cores with the kernels
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def registered_papers():
    """The papers' methods and display names, as in every chapter (the registry is loaded)."""
    from aerialseg.registry import papers

    papers()


@pytest.fixture(autouse=True)
def isolated_store(tmp_path, monkeypatch):
    """Every test gets its own run store and results folder."""
    monkeypatch.setenv("AERIALSEG_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("AERIALSEG_RESULTS", str(tmp_path / "results"))


@pytest.fixture
def scene_factory():
    """Function building small random scenes (see :func:`make_scene`)."""
    return make_scene


def make_scene(name: str = "s", size: int = 64, seed: int = 0, split: str = "train") -> Scene:
    """A small random scene whose labels depend on its bands (so a model can learn them)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), np.int64)
    labels[: size // 2] = 1
    labels[:, : size // 3] = 2
    labels[size // 4: size // 4 + 6, size // 2: size // 2 + 12] = 4
    labels[-size // 4:, -size // 4:] = 3
    bands = rng.normal(0, 0.1, (5, size, size)).astype(np.float32)
    for c in range(5):
        bands[c] += (labels == c) * 1.0
    return Scene(name, bands, ("ir", "r", "g", "dsm", "ndsm"), labels, ISPRS, split,
                 eval_mask=np.ones((size, size), bool))


@pytest.fixture(autouse=True)
def _generated_sections_in_tmp(tmp_path_factory, monkeypatch):
    """Tests that run the book runner never rewrite the checkout's ``book/_generated``."""
    import aerialseg.findings

    monkeypatch.setattr(aerialseg.findings, "GENERATED",
                        tmp_path_factory.mktemp("generated"))
