"""Small shared helpers: seeding, device choice, hardware description, atomic writes."""

from __future__ import annotations

import os
import platform
import random
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) in one place."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here; "
                         "use device='auto' or 'cpu'")
    return dev


def hardware_description(device: torch.device | str = "cpu") -> str:
    """One line naming the accelerator or CPU that runs the computation."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu}, {torch.get_num_threads()} threads"


def git_commit() -> str:
    """The checkout's commit (with ``-dirty`` if modified), or ``"unknown"``."""
    from aerialseg.paths import repo_root

    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=repo_root(), capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return (sha or "unknown") + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` then rename tmp to ``path``, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``DistributedDataParallel`` (or similar) wrapper, else ``model``."""
    return model.module if hasattr(model, "module") else model


def coerce(value: object) -> object:
    """Turn ``"(32, 64)"`` or ``"[0, 1]"`` (as papermill ``-p`` passes them) into tuples."""
    import ast

    if isinstance(value, str) and value.strip()[:1] in "([":
        value = ast.literal_eval(value)
    if isinstance(value, list):
        value = tuple(value)
    return value


class NameRegistry:
    """Builders registered by name beside their definitions, found on the first lookup.

    ``register(name)`` is a decorator; the first ``build``/``names`` imports every module of
    ``package`` (except ``_private`` ones and ``registry``), so the decorators run, without
    any module importing another's dependencies early.
    """

    def __init__(self, kind: str, package: str) -> None:
        self.kind, self.package = kind, package
        self.entries: dict[str, Callable[..., object]] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[Callable[..., object]], Callable[..., object]]:
        """Decorator: register a builder under ``name`` (a second builder is an error)."""
        def wrap(fn: Callable[..., object]) -> Callable[..., object]:
            if name in self.entries and self.entries[name] is not fn:
                raise RuntimeError(f"{self.kind} {name!r} is registered twice")
            self.entries[name] = fn
            return fn
        return wrap

    def _discover(self) -> None:
        if self._discovered:
            return
        import importlib
        import pkgutil

        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_") and info.name != "registry":
                importlib.import_module(f"{self.package}.{info.name}")
        self._discovered = True

    def names(self) -> list[str]:
        """Every registered name."""
        self._discover()
        return sorted(self.entries)

    def build(self, name: str, **kwargs: object) -> object:
        """Call the builder registered as ``name``; an unknown name lists the valid ones."""
        self._discover()
        if name not in self.entries:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of "
                             f"{sorted(self.entries)}")
        return self.entries[name](**kwargs)
