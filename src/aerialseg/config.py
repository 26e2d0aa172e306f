"""The study's configuration dataclasses (and nothing else).

:class:`TrainConfig` is one training run's settings; :class:`MethodSpec` defines a method
(model, loss, defaults, profile values and hooks); :class:`RunConfig` is a fully resolved
run, the run store's key; :class:`ChapterDefaults` and :class:`Paper` are what a paper
package (``aerialseg.papers.<paper>``) declares. Resolution (profile defaults, overrides)
lives in :mod:`aerialseg.registry` and :mod:`aerialseg.chapter`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from aerialseg.utils import coerce


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
"""Names of the :class:`TrainConfig` fields (every method accepts them)."""


@dataclass(frozen=True)
class MethodSpec:
    """A method of the study: model and loss by registry name, and its defaults.

    ``params`` maps every method parameter to its default; ``model_params`` and
    ``loss_params`` say which of them go to the model and the loss builders; the rest must
    be :class:`TrainConfig` fields. ``profiles`` holds per-profile overrides, one entry per
    profile of :data:`aerialseg.profiles.PROFILES`. ``samples`` is the training-sample
    builder: a key of ``aerialseg.runs.DATASET_BUILDERS`` or a function
    ``f(cfg, data, stats) -> Dataset``; ``setup`` is an optional function
    ``setup(ctx: aerialseg.runs.RunContext) -> list[Callback]`` called before training
    (after the run store has seeded and built the model), returning the method's
    callbacks (e.g. EFM refresh, U-CE uncertainty).
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
    samples: str | Callable[..., Any] = "patches"
    setup: Callable[..., Any] | None = None
    label: str = ""
    """Short display name for tables and figures (``title`` if empty)."""

    @property
    def parameter_names(self) -> frozenset[str]:
        """Every parameter a chapter may set for this method."""
        return frozenset(self.params) | TRAIN_FIELDS

    def resolve(self, *, profile: str, in_bands: Sequence[str], data: dict[str, Any],
                **overrides: Any) -> RunConfig:
        """The method's run for ``profile`` with explicit (non-None) overrides.

        Resolution order: ``params`` < ``profiles[profile]`` < overrides. A profile may
        replace the paper's architecture (``"model"`` with its complete ``"model_kwargs"``,
        e.g. the shared CPU backbone of :data:`aerialseg.profiles.SHARED_BACKBONE`) or loss
        (``"loss"``); the paper's model parameters then do not apply.

        Raises:
            ValueError: unknown profile or parameter name (valid names are listed), a
                parameter of an architecture this profile does not train, or an
                out-of-range value.
        """
        if profile not in self.profiles:
            raise ValueError(f"unknown profile {profile!r}; choose one of "
                             f"{tuple(self.profiles)}")
        unknown = sorted(k for k, v in overrides.items()
                         if v is not None and k not in self.parameter_names)
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for method {self.name!r}; "
                             f"valid: {sorted(self.parameter_names)}")
        prof = dict(self.profiles[profile])
        model = prof.pop("model", self.model)
        swapped_kwargs = prof.pop("model_kwargs", None)
        loss = prof.pop("loss", self.loss)
        values: dict[str, Any] = dict(self.params)
        values.update(prof)
        values.update({k: coerce(v) for k, v in overrides.items() if v is not None})
        if model != self.model:
            # this profile trains another architecture: the paper's parameters do not apply
            given = sorted(k for k in self.model_params if overrides.get(k) is not None)
            if given:
                raise ValueError(
                    f"{given} set for method {self.name!r}: in profile {profile!r} it trains "
                    f"the model {model!r} instead of the paper's {self.model!r}, so these "
                    f"parameters do not apply; use the 'full' profile for the paper's "
                    f"architecture")
            for k in self.model_params:
                values.pop(k, None)
            model_kwargs = dict(swapped_kwargs or {})
        else:
            model_kwargs = {k: values.pop(k) for k in self.model_params if k in values}
        loss_kwargs = {k: values.pop(k) for k in self.loss_params if k in values}
        leftover = set(values) - TRAIN_FIELDS
        if leftover:
            raise ValueError(f"method {self.name!r} declares parameters {sorted(leftover)} "
                             "that are neither model, loss nor training parameters")
        train = TrainConfig(**{k: (tuple(v) if isinstance(v, list) else v)
                               for k, v in values.items()})
        return RunConfig(method=self.name, model=model, loss=loss,
                         model_kwargs=model_kwargs, loss_kwargs=loss_kwargs, train=train,
                         in_bands=tuple(in_bands), data=dict(data), profile=profile,
                         spec=self)


@dataclass(frozen=True)
class RunConfig:
    """A fully resolved run: what the run store hashes.

    ``spec`` is the method's definition (its hooks); it is not part of the key.
    """

    method: str
    model: str
    loss: str
    model_kwargs: dict[str, Any]
    loss_kwargs: dict[str, Any]
    train: TrainConfig
    in_bands: tuple[str, ...]
    data: dict[str, Any]
    profile: str
    spec: MethodSpec | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (the run store's key material)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "spec"}
        d["train"] = asdict(self.train)
        return json.loads(json.dumps(d, default=list))


@dataclass(frozen=True)
class ChapterDefaults:
    """A chapter's own settings per profile (the values its ``None`` parameters take).

    ``settings`` maps a setting (e.g. ``test_mc_samples``) to its value per profile;
    ``seeds`` replaces :data:`aerialseg.profiles.SEEDS` for this chapter where given.
    """

    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    seeds: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class PaperResult:
    """Numbers a source prints for one of our methods: {(class, metric): value in %}."""

    method: str
    source: str
    data: str
    values: dict[tuple[str, str], float] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    """A claim of a source paper, checked on our data: ``method`` beats ``baseline``.

    ``paper_delta`` is the paper's effect (points, method minus baseline); the claim's
    direction is ``+1`` (the method is higher) or ``-1`` (lower is better, e.g. ECE).
    ``chapter`` names the book chapter that runs both methods; ``protocol`` the ground truth
    the claim is judged on when it is not the primary one.
    """

    source: str
    text: str
    method: str
    baseline: str
    cls: str
    metric: str
    paper_delta: float | None = None
    direction: int = 1
    chapter: str = ""
    protocol: str | None = None
    """The ground truth the claim is judged on (``eroded`` or ``full``); None: the primary
    (eroded) protocol, or what the caller asks for."""


@dataclass(frozen=True)
class Paper:
    """What a paper package declares: its methods, reported numbers, claims, chapters."""

    key: str
    citation: str
    methods: Mapping[str, MethodSpec]
    results: tuple[PaperResult, ...] = ()
    claims: tuple[Claim, ...] = ()
    chapters: Mapping[str, ChapterDefaults] = field(default_factory=dict)
