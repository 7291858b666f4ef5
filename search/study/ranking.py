"""Reading a trial's schedule length and pace, and ranking trials by them: what the
budget plan, the samplers and the summaries share (re-exported by ``search.study.budget``)."""

from __future__ import annotations

import math
import statistics

import optuna
from optuna.trial import FrozenTrial

from search.study.record import TrialRecord

__all__ = [
    "trial_epochs",
    "epochs_run",
    "epoch_seconds",
    "rank_trials",
    "validation_noise",
    "clear_win",
    "final_source",
    "TIED_BRANCHES",
    "branching_settled",
]


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


def validation_noise(accuracy: float, images: int) -> float:
    """One standard error of the difference between two accuracies near ``accuracy``, each
    measured on ``images`` validation images: sqrt(2 p (1 - p) / n).  At 1,000 images and
    0.67 it is 2.1 points, at 2,000 and 0.91 0.9 points."""
    p = min(max(float(accuracy), 0.0), 1.0)
    return math.sqrt(2 * p * (1 - p) / images) if images > 0 else 0.0


def clear_win(study: optuna.Study, trial: FrozenTrial, control: FrozenTrial, images: int | None) -> bool:
    """Whether ``trial`` beat ``control`` by more than the validation noise between them
    (``images``: the validation images of an accuracy; None: by anything)."""
    sign = 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1
    margin = validation_noise(control.value, images) if images else 0.0
    return sign * (trial.value - control.value) > margin


# A rich budget's branches are each one change to the trunk, judged after a few epochs on the validation
# split against the trunk continued unchanged (the control).  On the CIFAR-10 subset (1,000 validation
# images, 2400 s, seeds 0 and 2) the final run took the branch that beat the control by 1.3 and 1.6
# points, inside the 2.1 of noise between two such accuracies, and the configuration then tested +0.15 and
# -1.50 against the recipe trained with the whole budget (docs/benchmarks-rich/summary.md): a pick within
# the noise costs as often as it pays.  So a branch must beat its control by more than that noise.
def final_source(study: optuna.Study, done: list[FrozenTrial], images: int | None = None) -> FrozenTrial:
    """The trial a budget's final run trains again: the best of ``done`` (``rank_trials``),
    unless it is a branch that did not beat its control by more than the validation noise
    (``clear_win``), when the control: the trunk continued unchanged."""
    ranked = rank_trials(study, done)
    best = TrialRecord.of(ranked[0])
    if best.phase != "branch" or best.control:
        return ranked[0]
    control = next(
        (
            t
            for t in ranked
            if TrialRecord.of(t).control
            and TrialRecord.of(t).source == best.source
            and trial_epochs(t) == trial_epochs(ranked[0])
        ),
        None,
    )
    return ranked[0] if control is None or clear_win(study, ranked[0], control, images) else control


# Each branch costs BRANCH_SHARE of the epochs the budget buys whether or not its change helps.  On
# Fashion-MNIST 10k at 1200 s (seed 0, e19e00b) none of four changes beat the control, and the four took
# 280 s, 23% of the budget, that the final run did not get (95 epochs against recipe-paced's 126;
# docs/benchmarks-rich-rerun.md).  So branching stops once TIED_BRANCHES changes in a row did not beat the
# control by more than the noise: the levers after them are the less likely ones, and the rest of the
# budget goes to the final run.
TIED_BRANCHES = 2


def branching_settled(study: optuna.Study, branches: list[FrozenTrial], images: int | None = None) -> bool:
    """Whether one trunk's ``branches`` (its control and its changes) end with TIED_BRANCHES
    completed changes in a row that did not beat the completed control (``clear_win``)."""
    done = [t for t in branches if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    control = next((t for t in done if TrialRecord.of(t).control), None)
    changes = sorted((t for t in done if TrialRecord.of(t).lever), key=lambda t: t.number)[-TIED_BRANCHES:]
    if control is None or len(changes) < TIED_BRANCHES:
        return False
    return not any(clear_win(study, t, control, images) for t in changes)
