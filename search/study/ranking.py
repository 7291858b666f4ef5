"""Reading a trial's schedule length and pace, and ranking trials by them: what the
budget plan, the samplers and the summaries share (re-exported by ``search.study.budget``)."""

from __future__ import annotations

import statistics

import optuna
from optuna.trial import FrozenTrial

from search.study.record import TrialRecord

__all__ = ["trial_epochs", "epochs_run", "epoch_seconds", "rank_trials"]


def trial_epochs(trial: FrozenTrial) -> int | None:
    """The schedule length a trial was given (its ``epochs`` param or stored config); for a
    run the deadline stopped, or one paced by the clock, the epochs it ran (with those of
    the trial it continued from, ``continued_epochs``)."""
    if (TrialRecord.of(trial).stopped or TrialRecord.of(trial).paced) and TrialRecord.of(trial).epoch_seconds:
        return len(TrialRecord.of(trial).epoch_seconds) + int(TrialRecord.of(trial).continued_epochs or 0)
    if "epochs" in trial.params:  # a branch's: the epochs it continued for, after its source's
        return int(trial.params["epochs"]) + int(TrialRecord.of(trial).continued_epochs or 0)
    config = TrialRecord.of(trial).config
    try:
        return int(config["train"]["epochs"])
    except (TypeError, KeyError, ValueError):
        return None


def epochs_run(trial: FrozenTrial) -> int | None:
    """The epochs a trial itself trained (not those of the trial it continued from)."""
    total = trial_epochs(trial)
    return None if total is None else total - int(TrialRecord.of(trial).continued_epochs or 0)


def epoch_seconds(trial: FrozenTrial) -> float | None:
    """A trial's typical epoch time: the median, so the first epoch's tracing is not counted."""
    seconds = TrialRecord.of(trial).epoch_seconds
    if not seconds:
        return None
    return float(statistics.median(seconds))


def rank_trials(study: optuna.Study, done: list[FrozenTrial]) -> list[FrozenTrial]:
    """Completed trials best first: a longer schedule outranks a shorter one, then the value."""
    sign = 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1
    return sorted(done, key=lambda t: (trial_epochs(t) or 0, sign * t.value), reverse=True)
