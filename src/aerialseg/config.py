"""Profiles, training settings and method definitions.

A chapter's parameters cell uses the names defined here. A value of ``None`` in a chapter
means "the profile's default"; any other value overrides it. Resolution order:
dataclass default < method default < method's profile default < explicit value.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

PROFILES = ("smoke", "default", "full")


def check_profile(profile: str) -> str:
    """Return ``profile`` or raise a clear error listing the valid ones."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    return profile


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (everything but the model and the loss).

    Attributes:
        epochs: passes over ``samples_per_epoch`` samples.
        batch_size: samples per optimiser step.
        samples_per_epoch: patches drawn per epoch (None: every grid patch x D4 variant).
        sampler: ``"grid"`` (overlapping grid + D4 variants) or ``"random_crop"``.
        crop_size: side of a training patch.
        tile_overlap: overlap of grid patches (0.5 = stride of half a patch).
        dihedral_aug: use the 8 flips/rotations of every grid patch (random crops: random D4).
        scale_range: random rescaling of random crops, e.g. (0.5, 2.0); None: off.
        optimizer: ``"sgd"`` or ``"adamw"``.
        lr, momentum, weight_decay: optimiser settings.
        decoder_lr_mult: lr multiplier of non-encoder parameters (models with ``param_groups``).
        schedule: ``"poly"``, ``"step"``, ``"cosine"`` or ``"constant"`` (per iteration).
        poly_power: exponent of the poly schedule.
        step_milestones: fractions of training where a step schedule multiplies lr by 0.1.
        grad_clip: max gradient norm (None: off).
        ema_decay: EMA of weights used for evaluation (None: off).
        amp: mixed precision (bf16) when on CUDA.
        ignore_unevaluated: train non-evaluated classes (ISPRS clutter) as ignore.
        seed: seed of initialisation, sampling and dropout.
    """

    epochs: int = 10
    batch_size: int = 8
    samples_per_epoch: int | None = None
    sampler: str = "grid"
    crop_size: int = 256
    tile_overlap: float = 0.5
    dihedral_aug: bool = True
    scale_range: tuple[float, float] | None = None
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    decoder_lr_mult: float = 1.0
    schedule: str = "poly"
    poly_power: float = 0.9
    step_milestones: tuple[float, ...] = (0.5, 0.75)
    grad_clip: float | None = None
    ema_decay: float | None = None
    amp: bool = True
    ignore_unevaluated: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        """Coerce string values (papermill, ``--set``) and check every field.

        Raises:
            ValueError: each bad field named with the value received and its valid range
                (see :mod:`aerialseg.validation`).
        """
        from aerialseg.validation import validate_train_values

        values = validate_train_values({f.name: getattr(self, f.name) for f in fields(self)})
        for name, value in values.items():
            object.__setattr__(self, name, value)


TRAIN_FIELDS = frozenset(f.name for f in fields(TrainConfig))


@dataclass(frozen=True)
class MethodSpec:
    """A method of the study: model and loss by registry name, and its defaults.

    ``params`` maps every method parameter to its default; ``model_params`` and
    ``loss_params`` say which of them go to the model and the loss builders; the rest must
    be :class:`TrainConfig` fields. ``profiles`` holds per-profile overrides. ``samples``
    names the training-sample builder (a key of ``aerialseg.runs.DATASET_BUILDERS`` or a
    ``"module:function"`` called as ``f(cfg, data, stats) -> Dataset``); ``setup`` is an
    optional ``"module:function"`` called as ``setup(ctx: aerialseg.runs.RunContext)`` before
    training, returning the method's callbacks (e.g. EFM refresh, U-CE uncertainty).
    """

    name: str
    title: str
    model: str
    loss: str
    params: dict[str, Any]
    model_params: tuple[str, ...] = ()
    loss_params: tuple[str, ...] = ()
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""
    samples: str = "patches"
    setup: str | None = None


@dataclass(frozen=True)
class RunConfig:
    """A fully resolved run: what the run store hashes."""

    method: str
    model: str
    loss: str
    model_kwargs: dict[str, Any]
    loss_kwargs: dict[str, Any]
    train: TrainConfig
    in_bands: tuple[str, ...]
    data: dict[str, Any]
    profile: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (the run store's key material)."""
        d = asdict(self)
        d["train"] = asdict(self.train)
        return json.loads(json.dumps(d, default=list))


def _registry() -> dict[str, MethodSpec]:
    from aerialseg.methods import all_methods

    return all_methods()


def coerce(value: Any) -> Any:
    """Turn ``"(32, 64)"`` or ``"[0, 1]"`` (as papermill ``-p`` passes them) into tuples."""
    if isinstance(value, str) and value.strip()[:1] in "([":
        import ast

        value = ast.literal_eval(value)
    if isinstance(value, list):
        value = tuple(value)
    return value


def get_method(name: str) -> MethodSpec:
    """The registered method ``name``; a clear error lists the valid names."""
    methods = _registry()
    if name not in methods:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(methods)}")
    return methods[name]


def method_parameter_names(name: str) -> list[str]:
    """Every parameter a chapter may set for method ``name``."""
    return sorted(set(get_method(name).params) | TRAIN_FIELDS)


def resolve_run(method: str, *, profile: str, in_bands: tuple[str, ...], data: dict[str, Any],
                **overrides: Any) -> RunConfig:
    """Resolve a method's parameters for ``profile`` with explicit (non-None) overrides.

    Raises:
        ValueError: unknown method, profile or parameter name (valid names are listed), or
            an out-of-range value.
    """
    spec = get_method(method)
    check_profile(profile)
    valid = set(spec.params) | TRAIN_FIELDS
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for method {method!r}; "
                         f"valid: {sorted(valid)}")
    values: dict[str, Any] = dict(spec.params)
    values.update(spec.profiles.get(profile, {}))
    values.update({k: coerce(v) for k, v in overrides.items() if v is not None})
    model_kwargs = {k: values.pop(k) for k in spec.model_params if k in values}
    loss_kwargs = {k: values.pop(k) for k in spec.loss_params if k in values}
    leftover = set(values) - TRAIN_FIELDS
    if leftover:
        raise ValueError(f"method {method!r} declares parameters {sorted(leftover)} that are "
                         "neither model, loss nor training parameters")
    train = TrainConfig(**{k: (tuple(v) if isinstance(v, list) else v)
                           for k, v in values.items()})
    return RunConfig(method=method, model=spec.model, loss=spec.loss,
                     model_kwargs=model_kwargs, loss_kwargs=loss_kwargs, train=train,
                     in_bands=tuple(in_bands), data=dict(data), profile=profile)
