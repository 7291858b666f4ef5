"""Export a trial's run config as plain JSON, with where it came from; read it back.

An export file is ``{"schema_version", "config", "source"}``: ``config`` is the
trial's complete ``RunConfig`` (``RunConfig.load`` reads it), ``source`` says which
study, trial, value, storage (password masked), package versions and seeds produced
it.  The config holds everything ``train`` needs, the seed of the validation split
(``data.split_seed``) and the monitored metric (``train.monitor``) included; exports
written before the config held those two give them in ``source.split_seed`` and
``source.monitor``, and reading one puts them back in its config.  A multi-objective study
has no best trial: export names a point of its Pareto front with ``--trial N``, and
``source`` adds ``objectives`` and every value by name (``value`` stays the monitored
metric's).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.core.config import RunConfig
from search.errors import ConfigError, UsageError
from search.study.objectives import is_multi_objective
from search.study.record import TrialRecord

if TYPE_CHECKING:  # reading and writing export files needs no Optuna
    import optuna
    from optuna.trial import FrozenTrial

__all__ = [
    "EXPORT_SCHEMA_VERSION",
    "Export",
    "choose_trial",
    "export_trial",
    "write_export",
    "read_export",
    "package_versions",
]

EXPORT_SCHEMA_VERSION = 1
EXPORTABLE = ("COMPLETE", "PRUNED")


@dataclass(frozen=True)
class Export:
    """A run config and its provenance (``source`` is empty for a bare config file)."""

    config: RunConfig
    source: dict[str, Any]
    defaulted: tuple[str, ...] = ()  # sections the file left out: they take their defaults
    split_recorded: bool = True  # False: the file says nothing of its split seed (a bare config): 0 is used

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": EXPORT_SCHEMA_VERSION, "config": self.config.to_dict(), "source": self.source}

    @property
    def split_seed(self) -> int | None:
        seed = self.source.get("split_seed")
        return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def package_versions() -> dict[str, str | None]:
    """Versions of the packages that decide what a config trains into."""
    from search import __version__

    versions: dict[str, str | None] = {"cnn-search": __version__}
    for name, dists in {
        "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos"),
        "keras": ("keras",),
        "optuna": ("optuna",),
        "numpy": ("numpy",),
    }.items():
        versions[name] = None
        for dist in dists:
            try:
                versions[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def choose_trial(study: optuna.Study, number: int | None = None) -> FrozenTrial:
    """The best completed trial, or trial ``number`` if it completed or was pruned."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if number is None and is_multi_objective(study):
        from search.study.objectives import pareto_front, study_metric_names

        front = [t.number for t in pareto_front(study)]
        if not front:
            raise UsageError(f"study '{study.study_name}' has no completed trial yet; run more trials")
        raise UsageError(
            f"study '{study.study_name}' optimizes {len(study.directions)} "
            f"objectives ({', '.join(study_metric_names(study))}), "
            f"so it has no single best trial; pick a point of its Pareto front with --trial N, N one of "
            f"{', '.join(map(str, front))} (python run_search.py best --study {study.study_name} shows them)"
        )
    if number is None:
        if not any(t.state == TrialState.COMPLETE for t in trials):
            counts = ", ".join(
                f"{sum(t.state == s for t in trials)} {s.name.lower()}"
                for s in TrialState
                if any(t.state == s for t in trials)
            )
            raise UsageError(
                f"study '{study.study_name}' has no completed trial yet ({counts or 'no trials'}); "
                "run more trials, or pick one with --trial N"
            )
        return study.best_trial
    by_number = {t.number: t for t in trials}
    if number not in by_number:
        raise UsageError(f"study '{study.study_name}' has no trial {number}; its trials are 0 to {len(trials) - 1}")
    trial = by_number[number]
    if trial.state.name not in EXPORTABLE:
        raise UsageError(f"trial {number} is {trial.state.name}; export a COMPLETE or PRUNED trial")
    return trial


def export_trial(study: optuna.Study, trial: FrozenTrial, storage_url: str) -> Export:
    """The export of ``trial``: its stored run config, checked, and where it came from."""
    from search.study.storage import recorded_settings, safe_url

    settings = recorded_settings(study, storage_url)
    raw = TrialRecord.of(trial).config
    if isinstance(raw, dict):  # what it trained, as stored when it started (and, paced, the epochs it ran)
        config = RunConfig.from_dict(raw, where=f"trial {trial.number} config")
        config = _with_legacy(config, raw, settings.seed, settings.monitor)  # stored before the config held them
    else:  # no stored config (a trial added by hand): its params replayed through the study's space
        config = replay(settings, trial)
    history = TrialRecord.of(trial).history or {}
    multi = is_multi_objective(study)
    values = list(trial.values) if multi and trial.values else None  # trial.value raises with several objectives
    source = {
        "study": study.study_name,
        "trial": trial.number,
        "state": trial.state.name,
        "value": (values[0] if values else None) if multi else trial.value,
        "monitor": settings.monitor,
        "direction": settings.direction,
        "epochs_run": len(history.get(settings.monitor, [])) or None,
        "params": trial.params,
        "storage": safe_url(storage_url),
        "seed": config.seed,
        "split_seed": config.data.split_seed,
        "packages": package_versions(),
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if multi:
        source["objectives"] = settings.objectives
        source["values"] = dict(zip(settings.metric_names, values)) if values else None
    return Export(config, source)


def replay(settings: Any, trial: FrozenTrial) -> RunConfig:
    """``trial``'s run config rebuilt from its params: the study's space sampled by a
    ``FixedTrial`` around the study's base config, as the trial itself was sampled."""
    import optuna

    from search.study.trial import trial_config

    try:
        return trial_config(settings.space_obj, settings.config, optuna.trial.FixedTrial(trial.params, trial.number))
    except ValueError as e:  # FixedTrial: a parameter the space samples that the trial never had
        raise UsageError(
            f"trial {trial.number} has no stored run config and its params do not fit the study's space "
            f"({e}); export another --trial"
        ) from e


def write_export(export: Export, path: str | Path) -> Path:
    """Write ``export`` as JSON, atomically (a crash leaves the old file or the new one)."""
    from search.core.outputs import atomic_write

    return atomic_write(path, json.dumps(export.to_dict(), indent=2) + "\n")


def read_export(path: str | Path) -> Export:
    """Read an export file (or a bare run config: then ``source`` is empty)."""
    from search.core.outputs import check_input_file

    check_input_file(path, "--config")  # a named pipe would hang the read
    config = RunConfig.load(path)
    raw = json.loads(Path(path).read_text())  # RunConfig.load has checked it is JSON
    source = raw.get("source") if isinstance(raw, dict) and "config" in raw else None
    if source is not None and not isinstance(source, dict):
        raise ConfigError(f"{path}: 'source' must be a JSON object, received {type(source).__name__}")
    if (
        isinstance(raw, dict)
        and "config" in raw
        and raw.get("schema_version", EXPORT_SCHEMA_VERSION) != EXPORT_SCHEMA_VERSION
    ):
        raise ConfigError(
            f"{path}.schema_version: expected {EXPORT_SCHEMA_VERSION}, received {raw['schema_version']!r}"
        )
    _check_source(source or {}, str(path))
    from search.core.config import SECTIONS

    body = raw["config"] if isinstance(raw, dict) and isinstance(raw.get("config"), dict) else raw
    defaulted = tuple(s for s in SECTIONS if isinstance(body, dict) and s not in body)
    source = source or {}
    config = _with_legacy(config, body, source.get("split_seed"), source.get("monitor"))
    recorded = "split_seed" in (body.get("data") or {}) or source.get("split_seed") is not None
    return Export(config, source, defaulted, split_recorded=recorded)


def _with_legacy(config: RunConfig, body: dict[str, Any], split_seed: int | None, monitor: str | None) -> RunConfig:
    """``config`` with the split seed and monitor that a config written before it held
    them gives elsewhere (an export's source, a study's settings)."""
    import dataclasses

    data, train = body.get("data") or {}, body.get("train") or {}
    if "split_seed" not in data and split_seed is not None:
        config = config.replace(data=dataclasses.replace(config.data, split_seed=split_seed))
    if "monitor" not in train and monitor is not None:
        config = config.replace(train=dataclasses.replace(config.train, monitor=monitor))
    return config


def _check_source(source: dict[str, Any], where: str) -> None:
    """The fields of ``source`` that ``train`` uses, checked before anything is trained or written."""
    from search.core.config import MAX_SEED, METRICS, TEXT_METRICS

    monitor = source.get("monitor")
    known = [*METRICS, *TEXT_METRICS]
    if monitor is not None and (not isinstance(monitor, str) or monitor.removeprefix("val_") not in known):
        raise ConfigError(
            f"{where}: source.monitor: expected one of {', '.join(known)} (optionally val_...), received {monitor!r}"
        )
    seed = source.get("split_seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED):
        raise ConfigError(f"{where}: source.split_seed: expected an integer from 0 to {MAX_SEED}, received {seed!r}")
    value = source.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{where}: source.value: expected a number, received {value!r}; restore it from 'export'")
