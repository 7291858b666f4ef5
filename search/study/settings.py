"""What a study was created with, and the rules for resuming it.

A study records its base run config (dataset, split, epochs, monitored metric, seed and
the recipe for the data) and its own settings (space, objectives, sampler, pruner,
heartbeat) as a study user attribute.  Resuming with different data or a different
space is refused: their trials would not be comparable.  Settings that do not change
what a value means (epochs, sampler, pruner, the data folder's location) may change
between runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from search.core.config import CustomModelConfig, RunConfig, is_loss
from search.core.spaces import Space
from search.errors import StorageError
from search.study.objectives import DEFAULT_OBJECTIVES, objective_directions, objective_metric_names, objective_names
from search.study.samplers import DEFAULT_PRUNER, DEFAULT_SAMPLER

__all__ = ["RUN_OPTIONS", "StudySettings", "resolve_settings", "check_same_study"]


# Options of a study that live in its base run config, by the name the command line and
# studies made before this layout use for them (see ``StudySettings.with_options``).
RUN_OPTIONS = ("dataset", "data_dir", "val_split", "limit_train", "epochs", "seed", "monitor", "model")


@dataclass(frozen=True)
class StudySettings:
    """What a study was created with; stored on the study and checked on resume.

    ``config`` is the run config every trial starts from (data and its split, epochs,
    monitored metric, seed, and the default recipe for the data): the one carrier of a
    training run.  The other fields are the study's own.  ``dataset``, ``epochs``,
    ``monitor``, ... read the config; ``with_options`` and ``of`` set them in it.
    """

    config: RunConfig = field(default_factory=RunConfig)
    space: dict[str, Any] = field(default_factory=dict)  # Space.to_dict(): what the space samples
    direction: str = "maximize"
    sampler: str = DEFAULT_SAMPLER
    pruner: str = DEFAULT_PRUNER
    heartbeat: int = 10  # seconds between a running trial's heartbeats; the same for every worker
    objectives: str = DEFAULT_OBJECTIVES  # "accuracy" (the monitor alone) or e.g. "accuracy,params" (see objectives)
    baseline: bool = False  # True: a new study's first trial trains the base config (Space.baseline)
    max_params: int | None = None  # a trial whose model has more parameters fails (None: no limit)

    # Changing any of these changes what a trial's value means.
    IDENTITY = ("dataset", "val_split", "limit_train", "monitor", "direction", "seed", "objectives", "model")

    @classmethod
    def of(
        cls,
        dataset: str = "digits",
        space: dict[str, Any] | None = None,
        base_config: dict[str, Any] | None = None,
        **options: Any,
    ) -> StudySettings:
        """Settings from command-line style options (``dataset``, ``epochs``, ``seed``, ...)
        over ``base_config`` (a ``RunConfig.to_dict()``; None: ``RunConfig()``)."""
        base = (
            RunConfig.from_dict(base_config, where="the study's base config")
            if base_config is not None
            else RunConfig()
        )
        return cls(config=base, space=space or {}).with_options(dataset=dataset, **options)

    def with_options(self, **options: Any) -> StudySettings:
        """These settings with command-line style options changed: the run options
        (``RUN_OPTIONS``) go into the base config, the rest replace study fields.  The
        seed seeds both the validation split and the trials; a monitor that is a loss
        makes the study minimize, unless ``direction`` is given."""
        run = {k: options.pop(k) for k in RUN_OPTIONS if k in options}
        config = self.config
        data = {k: run[k] for k in ("dataset", "data_dir", "val_split", "limit_train") if k in run}
        if "seed" in run:
            data["split_seed"] = run["seed"]
            config = config.replace(seed=run["seed"])
        if run.get("model") is not None:  # a model function of the user's own (search.core.custom)
            config = config.replace(model=CustomModelConfig(build=run["model"]))
        train = {k: run[k] for k in ("epochs", "monitor") if k in run}
        if "monitor" in run and "direction" not in options:
            options["direction"] = "minimize" if is_loss(run["monitor"]) else "maximize"
        config = config.replace(
            data=dataclasses.replace(config.data, **data), train=dataclasses.replace(config.train, **train)
        )
        return dataclasses.replace(self, config=config, **options)

    dataset = property(lambda self: self.config.data.dataset)
    data_dir = property(lambda self: self.config.data.data_dir)
    val_split = property(lambda self: self.config.data.val_split)
    limit_train = property(lambda self: self.config.data.limit_train)
    epochs = property(lambda self: self.config.train.epochs)
    monitor = property(lambda self: self.config.train.monitor)
    seed = property(lambda self: self.config.seed)

    @property
    def model(self) -> str | None:
        """The user's model function (``FILE.py:NAME``), or None for a built-in model."""
        return self.config.model.build if isinstance(self.config.model, CustomModelConfig) else None

    @property
    def space_obj(self) -> Space:
        return Space.from_dict(self.space)

    @property
    def multi_objective(self) -> bool:
        return len(objective_names(self.objectives)) > 1

    @property
    def directions(self) -> list[str]:
        return objective_directions(self.objectives, self.direction)

    @property
    def metric_names(self) -> list[str]:
        return objective_metric_names(self.objectives, self.monitor)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["config"] = self.config.to_dict()
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StudySettings:
        """Read what a study recorded: this layout (``config``), or the flat one of studies
        made before it (dataset, val_split, ..., seed and ``base_config``)."""
        known = {f.name for f in dataclasses.fields(cls)}
        if isinstance(raw.get("config"), dict):
            rest = {k: v for k, v in raw.items() if k in known and k != "config"}
            return cls(config=RunConfig.from_dict(raw["config"], where="the study's base config"), **rest)
        flat = {k: v for k, v in raw.items() if k in known or k in RUN_OPTIONS or k == "base_config"}
        direction = flat.pop("direction", None)  # recorded, not derived again from the monitor
        settings = cls.of(**flat)
        return dataclasses.replace(settings, direction=direction) if direction else settings


def resolve_settings(
    name: str, requested: dict[str, Any], recorded: StudySettings | None, defaults: StudySettings
) -> StudySettings:
    """Merge what the user asked for with what the study recorded (or the defaults).

    On resume, identity settings and the space must match what the study recorded.
    """
    if recorded is None:
        return defaults.with_options(**requested)
    for key in StudySettings.IDENTITY:
        if key in requested and requested[key] != getattr(recorded, key):
            raise StorageError(
                f"study '{name}' was created with {key}={getattr(recorded, key)!r}, not {requested[key]!r}; "
                "drop that option to resume it, or start a new --study"
            )
    if "space" in requested and Space.from_dict(requested["space"]).fingerprint != recorded.space_obj.fingerprint:
        raise StorageError(
            f"study '{name}' was created with space '{recorded.space['name']}' and this space samples "
            "something else; drop --space to resume it, or start a new --study"
        )
    changeable = {k: v for k, v in requested.items() if k not in StudySettings.IDENTITY}
    # The same space (same fingerprint) may move its priors: the file as given now is used.
    return recorded.with_options(**changeable)


def check_same_study(name: str, recorded: Any, settings: StudySettings) -> None:
    """Refuse to run under ``settings`` a study that records other identity settings."""
    if not isinstance(recorded, dict):
        return
    other = StudySettings.from_dict(recorded)
    for key in StudySettings.IDENTITY:
        if getattr(other, key) != getattr(settings, key):
            raise StorageError(
                f"study '{name}' was created at the same moment by another command with {key}={getattr(other, key)!r}, "
                f"not {getattr(settings, key)!r}; nothing was run; rerun to "
                "resume it with its settings, or choose another --study"
            )
    if other.space_obj.fingerprint != settings.space_obj.fingerprint:
        raise StorageError(
            f"study '{name}' was created at the same moment by another command with another space; "
            "nothing was run; rerun to resume it, or choose another --study"
        )
