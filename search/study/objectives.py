"""What a study optimizes: the monitored metric alone, or against model size and speed.

``--objectives accuracy,params[,latency]`` turns a search into a multi-objective one:
``accuracy`` is the ``--monitor`` metric (maximized, or minimized for a loss),
``params`` the model's parameter count and ``latency`` its inference milliseconds per
image (both minimized).  The objectives are recorded by the study as one canonical
string ("accuracy,params"), always in that order: trial values follow it.

Optuna prunes single-objective studies only (``Trial.report`` and ``should_prune``
raise with several objectives), so a multi-objective study runs every trial to its last
epoch: its pruner is ``none``, and asking for another is refused.  CMA-ES cannot
sample several objectives; TPE, NSGA-II, random, QMC and GP can.

This module needs neither TensorFlow nor a study: ``search`` checks the option with it
before anything is created.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from search.errors import UsageError

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from search.study.settings import StudySettings

__all__ = [
    "is_multi_objective",
    "OBJECTIVES",
    "DEFAULT_OBJECTIVES",
    "MULTI_OBJECTIVE_SAMPLERS",
    "parse_objectives",
    "objective_names",
    "objective_directions",
    "objective_metric_names",
    "describe_objectives",
    "check_objective_settings",
    "format_objective",
    "study_metric_names",
    "pareto_front",
]

OBJECTIVES = ("accuracy", "params", "latency")  # the canonical order of a trial's values
DEFAULT_OBJECTIVES = "accuracy"  # the monitored metric alone: a single-objective study
MULTI_OBJECTIVE_SAMPLERS = ("tpe", "nsga2", "random", "qmc", "gp")
_METRIC = {"params": "params", "latency": "latency_ms"}  # how Optuna names the value (accuracy: the monitor)
_EXAMPLE = "e.g. --objectives accuracy,params or accuracy,params,latency"


def parse_objectives(text: str) -> str:
    """``"params, accuracy"`` -> ``"accuracy,params"``; a one-line ``UsageError`` otherwise."""
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise UsageError(f"--objectives {text!r} has an empty name; write names separated by commas, {_EXAMPLE}")
    for name in names:
        if name not in OBJECTIVES:
            hint = " ('accuracy' stands for the --monitor metric)" if "acc" in name or "loss" in name else ""
            raise UsageError(
                f"--objectives: unknown objective {name!r}{hint}; use accuracy, params and latency, {_EXAMPLE}"
            )
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice:
        raise UsageError(f"--objectives {text!r} names {twice!r} twice; name each objective once, {_EXAMPLE}")
    if "accuracy" not in names:
        raise UsageError(
            f"--objectives {text!r} leaves out accuracy (the --monitor metric): the smallest or fastest model "
            f"needs no search; write --objectives accuracy,{','.join(names)}"
        )
    return ",".join(n for n in OBJECTIVES if n in names)


def objective_names(objectives: str) -> tuple[str, ...]:
    return tuple(objectives.split(","))


def objective_directions(objectives: str, direction: str) -> list[str]:
    """Optuna's directions: the monitor's for accuracy, ``minimize`` for size and latency."""
    return [direction if n == "accuracy" else "minimize" for n in objective_names(objectives)]


def objective_metric_names(objectives: str, monitor: str) -> list[str]:
    """What the dashboard, plots and tables call each value: the monitor, params, latency_ms."""
    return [monitor if n == "accuracy" else _METRIC[n] for n in objective_names(objectives)]


def describe_objectives(settings: StudySettings) -> str:
    """``val_accuracy (maximize), params (minimize)``."""
    return ", ".join(f"{m} ({d})" for m, d in zip(settings.metric_names, settings.directions))


def check_objective_settings(settings: StudySettings, requested: dict) -> StudySettings:
    """A multi-objective study's sampler must support it, and it cannot prune: its pruner
    is ``none``; a pruner asked for explicitly is refused rather than silently dropped."""
    if not settings.multi_objective:
        return settings
    if settings.sampler == "prior" and "sampler" not in requested:
        # the default sampler ranks one value; a Pareto front needs a multi-objective sampler
        settings = dataclasses.replace(settings, sampler="tpe")
    if settings.sampler not in MULTI_OBJECTIVE_SAMPLERS:
        raise UsageError(
            f"sampler '{settings.sampler}' cannot optimize several objectives (--objectives {settings.objectives}); "
            f"use --sampler {', '.join(MULTI_OBJECTIVE_SAMPLERS)} (default: tpe)"
        )
    pruner = requested.get("pruner")
    if pruner not in (None, "none"):
        raise UsageError(
            f"--pruner {pruner} cannot be used with --objectives {settings.objectives}: Optuna prunes only "
            "single-objective studies, so every trial of this study runs all its epochs; drop --pruner"
        )
    return dataclasses.replace(settings, pruner="none")


def format_objective(metric: str, value: float | None) -> str:
    """A value as tables show it: a parameter count as an integer, latency in ms, metrics to 4 places."""
    if value is None:
        return "-"
    if metric == "params":
        return f"{int(round(value)):,}"
    if metric == "latency_ms":
        return f"{value:.3f}"
    return f"{value:.4f}"


def is_multi_objective(study: optuna.Study) -> bool:
    """Whether ``study`` optimizes several objectives (a Pareto front, no best trial)."""
    return len(study.directions) > 1


def study_metric_names(study: optuna.Study) -> list[str]:
    """The names of a study's values (cnn-search records them), or ``value0``, ``value1`` ..."""
    names = study.metric_names
    return list(names) if names else [f"value{i}" for i in range(len(study.directions))]


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The completed trials no other trial beats in every objective, best first value first."""
    from optuna.study import StudyDirection

    sign = -1.0 if study.directions[0] == StudyDirection.MAXIMIZE else 1.0
    return sorted(study.best_trials, key=lambda t: (sign * t.values[0], *t.values[1:], t.number))
