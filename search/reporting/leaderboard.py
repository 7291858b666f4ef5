"""The best trials of a study, ranked, with the parameters that matter; as rows or text.

Completed trials rank first, by value.  When fewer completed trials than asked exist,
pruned trials follow, ranked by the best value they reported before being stopped
(they ran fewer epochs, so their values are not comparable with the completed ones:
the state column says so).  Parameter columns are those that differ between the rows,
most important first (Optuna's importance evaluator, when the study allows it).

A multi-objective study has no single ranking: its rows are the Pareto front, ordered
by the monitored metric, with a column per objective.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.study.objectives import format_objective, is_multi_objective, pareto_front, study_metric_names
from search.study.record import TrialRecord

__all__ = ["Row", "Leaderboard", "leaderboard", "param_importances", "format_value", "table_cells", "format_table"]


@dataclass(frozen=True)
class Row:
    rank: int
    number: int
    state: str
    value: float | None  # the trial's value; for a pruned trial its best reported value
    epochs: int
    params: dict[str, Any]
    diagnosis: tuple[str, ...] = ()  # labels from search.core.diagnose
    values: tuple[float, ...] = ()  # every objective's value, in a multi-objective study


@dataclass(frozen=True)
class Leaderboard:
    rows: list[Row]
    columns: list[str]  # parameters that differ between rows, most important first
    constant: dict[str, Any]  # parameters every row shares
    counts: dict[str, int] = field(default_factory=dict)  # trials by state name
    objectives: tuple[str, ...] = ()  # a multi-objective study's value names: the rows are its Pareto front
    front_size: int = 0  # trials on that front (rows may show fewer)


def _best_reported(trial: FrozenTrial, maximize: bool) -> float | None:
    values = [v for v in trial.intermediate_values.values() if math.isfinite(v)]
    if not values:
        return None
    return max(values) if maximize else min(values)


def _epochs(trial: FrozenTrial) -> int:
    history = TrialRecord.of(trial).history
    if isinstance(history, dict) and history:
        return max(len(v) for v in history.values() if isinstance(v, list))
    return len(trial.intermediate_values)


def param_importances(study: optuna.Study) -> dict[str, float]:
    """Optuna's parameter importances, or {} when the study has too few completed trials."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if len(complete) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(study))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}


def leaderboard(study: optuna.Study, top: int = 10, importances: dict[str, float] | None = None) -> Leaderboard:
    """The ``top`` best trials of ``study``: completed ones first, then pruned ones (for
    several objectives: the Pareto front, by the monitored metric)."""
    trials = study.get_trials(deepcopy=False)
    objectives: tuple[str, ...] = ()
    if is_multi_objective(study):
        front = pareto_front(study)
        objectives = tuple(study_metric_names(study))
        chosen = [(t, t.values[0]) for t in front]
    else:
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        sign = -1.0 if maximize else 1.0
        complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: sign * t.value)
        pruned = [(t, _best_reported(t, maximize)) for t in trials if t.state == TrialState.PRUNED]
        pruned.sort(key=lambda tv: math.inf if tv[1] is None else sign * tv[1])
        chosen = [(t, t.value) for t in complete] + pruned
    rows = [
        Row(
            rank,
            t.number,
            t.state.name,
            value,
            _epochs(t),
            dict(t.params),
            tuple(TrialRecord.of(t).diagnosis or []),
            tuple(t.values) if objectives else (),
        )
        for rank, (t, value) in enumerate(chosen[:top], start=1)
    ]
    if importances is None:
        importances = param_importances(study)
    names: list[str] = []
    for row in rows:
        names += [n for n in row.params if n not in names]
    order = {n: i for i, n in enumerate(names)}
    names.sort(key=lambda n: (-importances.get(n, -1.0), order[n]))
    differ = [n for n in names if len({repr(r.params.get(n)) for r in rows}) > 1]
    constant = {n: rows[0].params.get(n) for n in names if n not in differ} if rows else {}
    counts = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    return Leaderboard(
        rows,
        differ if len(rows) > 1 else names,
        constant if len(rows) > 1 else {},
        counts,
        objectives,
        len(chosen) if objectives else 0,
    )


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table_cells(board: Leaderboard, max_columns: int) -> tuple[list[str], list[list[str]]]:
    """Header and rows as text: rank, trial, value (one per objective), state, epochs,
    diagnosis, parameters."""
    columns = board.columns[:max_columns]
    header = ["rank", "trial", *(board.objectives or ["value"]), "state", "epochs", "diagnosis", *columns]

    def values(r: Row) -> list[str]:
        if board.objectives:
            return [format_objective(n, v) for n, v in zip(board.objectives, r.values)]
        return ["-" if r.value is None else f"{r.value:.4f}"]

    body = [
        [
            str(r.rank),
            str(r.number),
            *values(r),
            r.state,
            str(r.epochs),
            ",".join(r.diagnosis) or "-",
            *(format_value(r.params.get(c)) for c in columns),
        ]
        for r in board.rows
    ]
    return header, body


def format_table(board: Leaderboard, max_columns: int = 8) -> str:
    """A plain-text table of ``table_cells``."""
    header, body = table_cells(board, max_columns)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
