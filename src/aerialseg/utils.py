"""Small shared helpers: seeding, device, hardware, atomic writes, data-only tensor files.

Files of the run store are written by :func:`save_tensors` and read by :func:`load_tensors`,
which refuses anything but tensors and plain data (it never runs pickled code).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import random
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

_DIGESTS: dict[tuple[str, int, int], str] = {}
"""File digests of this process, by (path, size, modification time)."""


def file_digest(path: str | Path) -> str:
    """BLAKE2b digest (16 bytes, hex) of a file's bytes, cached per process while unchanged."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.blake2b(digest_size=16)
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


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
    n = torch.get_num_threads()
    return f"CPU: {cpu}, {n} thread{'s' if n != 1 else ''}"


BOOK_OUTPUTS = ("results", "book/chapters", "book/_generated")
"""Folders the book run itself rewrites: their changes do not make the code "dirty" (a run
of the whole book rewrites chapter 01's results before chapter 02 starts)."""


def git_commit() -> str:
    """The checkout's commit (with ``-dirty`` if code is modified), or ``"unknown"``.

    Changes under :data:`BOOK_OUTPUTS` are ignored: they are what the code produced.
    """
    from aerialseg.paths import repo_root

    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", *(f":(exclude){p}" for p in BOOK_OUTPUTS)],
                               cwd=repo_root(), capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return (sha or "unknown") + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


STALE_TMP_SECONDS = 30 * 60
"""A temporary file of :func:`atomic_write` untouched this long belongs to a killed writer.

A writer in progress keeps touching its file, so a temp file this old is never one that is
still being written (even a 200 MiB checkpoint on a slow disk takes seconds)."""


def current_umask() -> int:
    """The process umask (read without changing it where Linux allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # not thread-safe for a moment; only where /proc is missing
    os.umask(mask)
    return mask


def is_tmp_file(path: Path) -> bool:
    """True for a temporary file of :func:`atomic_write` (``.<name>.<random>.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def remove_stale_tmp_files(folder: str | Path, older_than: float | None = STALE_TMP_SECONDS
                           ) -> list[Path]:
    """Delete temporary files of :func:`atomic_write` left in ``folder`` by killed writers.

    Args:
        folder: the folder to clean (not recursive).
        older_than: only files not modified for this many seconds; None: every temp file
            (for a caller holding the folder's lock, so no other writer can be active).

    Returns:
        The files removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for f in folder.iterdir():
        if not is_tmp_file(f):
            continue
        try:
            if older_than is None or now - f.stat().st_mtime > older_than:
                f.unlink()
                removed.append(f)
        except FileNotFoundError:  # another process cleaned it first
            pass
    return removed


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` then rename tmp to ``path``, so readers never see half a file.

    The file gets the permissions of a normally created file (``0o666`` minus the umask),
    not ``mkstemp``'s private ``0o600``, so a run store shared by a group stays readable.
    Temp files of killed writers older than :data:`STALE_TMP_SECONDS` in the same folder
    are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp_files(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~current_umask())
        write(tmp_path)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


class RunStoreWarning(UserWarning):
    """Something in the run store was discarded or repaired (a corrupt checkpoint, ...)."""


class RunFileError(RuntimeError):
    """A stored file (model, checkpoint) cannot be used."""


class CorruptFileError(RunFileError):
    """The file is truncated or otherwise unreadable (e.g. a write was killed midway)."""


class UnsafeFileError(RunFileError):
    """The file holds pickled objects other than tensors and plain data: it could run code."""


def to_plain(obj: Any) -> Any:
    """``obj`` as JSON types (NumPy scalars/arrays become numbers/lists, unknowns strings)."""
    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray | torch.Tensor):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        return str(o)

    return json.loads(json.dumps(obj, default=default, allow_nan=True))


def save_tensors(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists, dicts, None) atomically.

    The file is a ``torch.save`` archive that :func:`load_tensors` reads with
    ``weights_only=True``: it holds data, and loading it never runs code.
    """
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_tensors(path: str | Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a file written by :func:`save_tensors`, refusing anything that is not data.

    Raises:
        UnsafeFileError: the file contains pickled objects that could execute code (a file
            of an older store format, or a tampered one); it is never unpickled.
        CorruptFileError: truncated, empty or not a torch archive of a dict.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol warnings of foreign pickles
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower():
            lines = [ln.strip() for ln in str(exc).splitlines() if "GLOBAL" in ln]
            what = f" ({lines[0]})" if lines else ""
            raise UnsafeFileError(
                f"refusing to load {path}: it holds pickled Python objects{what}, not only "
                "tensors and plain data, and unpickling it could run arbitrary code. Run "
                "files of this version never contain such objects, so the file was written "
                "by an older store format or tampered with. Delete it (or its run folder) "
                "to train again; do not load it with weights_only=False unless you trust "
                "its origin.") from None
        raise CorruptFileError(f"{path} is unreadable ({exc})") from exc
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        first = (str(exc).splitlines() or ["empty file"])[0]
        first = first if len(first) <= 200 else first[:200].rstrip() + " ..."
        raise CorruptFileError(f"{path} is truncated or unreadable "
                               f"({type(exc).__name__}: {first})") from exc
    if not isinstance(obj, dict):
        raise CorruptFileError(f"{path} holds a {type(obj).__name__}, expected a dict")
    return obj


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
