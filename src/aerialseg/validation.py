"""Parameter validation in one place.

Every :class:`aerialseg.config.TrainConfig` field has a typed spec here (integer, number,
switch, choice, tuple of numbers; optional or not; its valid range), and so do a chapter's
own parameters (``profile``, ``device``, ``seeds``). Values may arrive as strings, as
papermill ``-p`` and ``aerialseg train --set key=value`` pass them; they are coerced to the
field's type, and anything that does not fit fails with a message that names the parameter,
the value received and what is valid::

    >>> validate_train_values({"epochs": "3", "lr": "1e-3", "grad_clip": "None"})
    {'epochs': 3, 'lr': 0.001, 'grad_clip': None}
    >>> validate_train_values({"epochs": "1.5"})
    Traceback (most recent call last):
    ...
    ValueError: invalid training parameters: epochs must be an integer >= 1 (got '1.5')

``TrainConfig.__post_init__`` calls :func:`validate_train_values`, so a bad value fails when
the run is resolved (``resolve_run``), before the run store creates anything.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from aerialseg.profiles import check_profile

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null", "")
_MAX_SEED = 2**63 - 1


class _Invalid(Exception):
    """One field's problem (collected into one ValueError)."""


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class FieldSpec:
    """Type and valid range of one parameter.

    Attributes:
        kind: ``"int"``, ``"float"``, ``"bool"``, ``"choice"`` or ``"floats"`` (a tuple of
            numbers).
        lo, hi: bounds (None: unbounded); ``lo_open``/``hi_open`` exclude the bound itself.
        optional: None is valid (``none_means`` says what it means, for messages).
        choices: the valid strings of a ``"choice"``.
        length: exact number of items of a ``"floats"`` (None: any).
        ascending: items of a ``"floats"`` must not decrease.
    """

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    optional: bool = False
    none_means: str = ""
    choices: tuple[str, ...] = ()
    length: int | None = None
    ascending: bool = False

    def range_text(self) -> str:
        """The valid range in words, e.g. ``">= 1"`` or ``"in [0, 1)"`` (empty: any)."""
        if self.lo is not None and self.hi is not None:
            return (f"in {'(' if self.lo_open else '['}{_fmt(self.lo)}, {_fmt(self.hi)}"
                    f"{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_fmt(self.lo)}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {_fmt(self.hi)}"
        return ""

    def describe(self) -> str:
        """What a valid value is, in words (used in every message)."""
        rng = self.range_text()
        if self.kind == "int":
            text = "an integer" + (f" {rng}" if rng else "")
        elif self.kind == "float":
            text = "a finite number" + (f" {rng}" if rng else "")
        elif self.kind == "bool":
            text = "True or False"
        elif self.kind == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            count = {None: "a tuple of", 1: "a tuple of 1", 2: "a pair of"}.get(
                self.length, f"a tuple of {self.length}")
            text = f"{count} finite numbers" + (f" {rng}" if rng else "")
            if self.ascending:
                text += " in ascending order"
        if self.optional:
            text = f"None ({self.none_means}) or {text}" if self.none_means else \
                f"None or {text}"
        return text

    def _range_error(self, value: Any) -> _Invalid:
        rng = self.range_text()
        if self.optional:
            rng = f"None ({self.none_means}) or {rng}" if self.none_means else f"None or {rng}"
        return _Invalid(f"must be {rng} (got {value!r})")

    def _in_range(self, x: float) -> bool:
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        return not (self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi))

    def coerce(self, value: Any) -> Any:
        """``value`` converted to this field's type and checked.

        Raises:
            _Invalid: with the message's tail (``"must be ... (got ...)"``).
        """
        if value is None or (isinstance(value, str) and self.optional
                             and value.strip().lower() in _NONE):
            if self.optional:
                return None
            raise _Invalid(f"must be {self.describe()} (got None)")
        if self.kind == "int":
            x = _to_int(value)
            if x is None:
                raise _Invalid(f"must be {self.describe()} (got {value!r})")
            if not self._in_range(x):
                raise self._range_error(value)
            return x
        if self.kind == "float":
            f = _to_float(value)
            if f is None:
                raise _Invalid(f"must be {self.describe()} (got {value!r})")
            if not math.isfinite(f):
                raise _Invalid(f"must be {self.describe()} (got {value!r})")
            if not self._in_range(f):
                raise self._range_error(value)
            return f
        if self.kind == "bool":
            b = _to_bool(value)
            if b is None:
                raise _Invalid(f"must be {self.describe()} (got {value!r})")
            return b
        if self.kind == "choice":
            if isinstance(value, str) and value.strip().lower() in self.choices:
                return value.strip().lower()
            raise _Invalid(f"must be {self.describe()} (got {value!r})")
        return self._coerce_floats(value)

    def _coerce_floats(self, value: Any) -> tuple[float, ...]:
        items = value
        if isinstance(value, str):
            try:
                items = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                raise _Invalid(f"must be {self.describe()} (got {value!r})") from None
        if isinstance(items, int | float) and not isinstance(items, bool):
            items = (items,)
        if not isinstance(items, list | tuple | np.ndarray):
            raise _Invalid(f"must be {self.describe()} (got {value!r})")
        out = []
        for item in items:
            f = _to_float(item)
            if f is None or not math.isfinite(f):
                raise _Invalid(f"must be {self.describe()} (got {value!r})")
            out.append(f)
        if self.length is not None and len(out) != self.length:
            raise _Invalid(f"must be {self.describe()} (got {value!r}, {len(out)} items)")
        if not all(self._in_range(f) for f in out):
            raise _Invalid(f"must be {self.describe()} (got {value!r})")
        if self.ascending and out != sorted(out):
            raise _Invalid(f"must be {self.describe()} (got {value!r})")
        return tuple(out)


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return int(value) if math.isfinite(value) and float(value).is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                f = float(text)
            except ValueError:
                return None
            return int(f) if math.isfinite(f) and f.is_integer() else None
    return None


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


TRAIN_SPECS: dict[str, FieldSpec] = {
    "epochs": FieldSpec("int", lo=1),
    "batch_size": FieldSpec("int", lo=1),
    "samples_per_epoch": FieldSpec("int", lo=1, optional=True,
                                   none_means="every grid patch and D4 variant"),
    "sampler": FieldSpec("choice", choices=("grid", "random_crop")),
    "crop_size": FieldSpec("int", lo=8),
    "tile_overlap": FieldSpec("float", lo=0, hi=1, hi_open=True),
    "dihedral_aug": FieldSpec("bool"),
    "scale_range": FieldSpec("floats", lo=0, lo_open=True, length=2, ascending=True,
                             optional=True, none_means="no rescaling"),
    "optimizer": FieldSpec("choice", choices=("sgd", "adamw")),
    "lr": FieldSpec("float", lo=0, lo_open=True),
    "momentum": FieldSpec("float", lo=0, hi=1, hi_open=True),
    "weight_decay": FieldSpec("float", lo=0),
    "decoder_lr_mult": FieldSpec("float", lo=0, lo_open=True),
    "schedule": FieldSpec("choice", choices=("poly", "step", "cosine", "constant")),
    "poly_power": FieldSpec("float", lo=0, lo_open=True),
    "step_milestones": FieldSpec("floats", lo=0, hi=1, lo_open=True, ascending=True),
    "grad_clip": FieldSpec("float", lo=0, lo_open=True, optional=True, none_means="off"),
    "ema_decay": FieldSpec("float", lo=0, hi=1, lo_open=True, hi_open=True, optional=True,
                           none_means="off"),
    "amp": FieldSpec("bool"),
    "ignore_unevaluated": FieldSpec("bool"),
    "seed": FieldSpec("int", lo=0, hi=_MAX_SEED),
}
"""The spec of every :class:`aerialseg.config.TrainConfig` field (a test keeps them equal)."""


def validate_train_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Coerce and check training settings (any subset of the ``TrainConfig`` fields).

    Args:
        values: field name -> value; strings are converted as papermill ``-p`` and
            ``aerialseg train --set`` pass them (``"3"``, ``"1e-3"``, ``"None"``, ``"true"``,
            ``"(0.5, 2.0)"``).

    Returns:
        The same keys with values of the field's type (tuples for tuple fields).

    Raises:
        ValueError: every problem in one message, each naming the parameter, the value
            received and the valid range (also for an unknown name, listing the valid ones).
    """
    out: dict[str, Any] = {}
    problems = []
    for name, value in values.items():
        spec = TRAIN_SPECS.get(name)
        if spec is None:
            problems.append(f"unknown training parameter {name!r}; valid: "
                            f"{sorted(TRAIN_SPECS)}")
            continue
        try:
            out[name] = spec.coerce(value)
        except _Invalid as exc:
            problems.append(f"{name} {exc}")
    if problems:
        raise ValueError("invalid training parameters: " + "; ".join(problems))
    return out


_UNSET: Any = object()
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_seeds(seeds: Any) -> tuple[int, ...] | None:
    """A chapter's ``seeds``: None (the profile's seeds), one seed, or distinct seeds.

    A bare integer (``-p seeds 0``) is one seed; strings such as ``"[0, 1]"`` or ``"0, 1"``
    are parsed.

    Raises:
        ValueError: not integers >= 0, empty, or a seed given twice.
    """
    if seeds is None or (isinstance(seeds, str) and seeds.strip().lower() in _NONE):
        return None
    what = ("seeds must be None (the profile's seeds), a seed or a list of distinct "
            "integers >= 0, e.g. 0 or [0, 1, 2]")
    items = seeds
    if isinstance(seeds, str):
        try:
            items = ast.literal_eval(seeds.strip())
        except (ValueError, SyntaxError):
            raise ValueError(f"{what} (got {seeds!r})") from None
    if not isinstance(items, list | tuple | range | np.ndarray):
        items = [items]
    out = []
    for s in items:
        x = _to_int(s)
        if x is None or not 0 <= x <= _MAX_SEED:
            raise ValueError(f"{what} (got {seeds!r}; {s!r} is not)")
        out.append(x)
    if not out:
        raise ValueError(f"{what} (got {seeds!r}, no seed)")
    repeated = sorted({x for x in out if out.count(x) > 1})
    if repeated:
        raise ValueError(f"{what} (got {seeds!r}; {repeated} repeated: a seed twice would "
                         "train and count the same model twice)")
    return tuple(out)


def check_device(device: Any) -> str:
    """Return ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``) or raise.

    Whether the device exists here is checked later, by ``utils.resolve_device``.
    """
    text = str(device).strip() if device is not None else ""
    if not _DEVICE.match(text):
        raise ValueError("device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' "
                         f"(got {device!r})")
    return text


def validate_chapter_params(*, profile: Any = _UNSET, device: Any = _UNSET,
                            seeds: Any = _UNSET) -> dict[str, Any]:
    """Check a chapter's own parameters; only the ones passed are checked and returned.

    Args:
        profile: one of :data:`PROFILES`.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        seeds: see :func:`check_seeds` (returned as a tuple, or None).

    Returns:
        The coerced values by name.

    Raises:
        ValueError: every problem in one message.
    """
    checks = {"profile": (profile, check_profile), "device": (device, check_device),
              "seeds": (seeds, check_seeds)}
    out: dict[str, Any] = {}
    problems = []
    for name, (value, check) in checks.items():
        if value is _UNSET:
            continue
        try:
            out[name] = check(value)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("invalid chapter parameters: " + "; ".join(problems))
    return out
