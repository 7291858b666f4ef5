"""The trial record: every key cnn-search stores on an Optuna trial or study, in one place.

Optuna keeps a trial's parameters, values, state and per-epoch intermediate values;
cnn-search adds user attributes.  Their names are the ones studies have always stored
(old studies in tests/data still read) and no other module spells them: code reads a
trial's record with ``TrialRecord.of(trial)`` and writes it with ``write(trial, ...)``
or ``attrs(...)``, which refuse a name that is not here.

Trial user attributes (all optional; None when a trial never got one):

========================  ================================================================
``config``                the complete run config the trial trained, as a dict (``export``)
``history``               per-epoch ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ...
``params_count``          the model's parameter count
``epoch_seconds``         seconds each epoch took
``rss_mb``                the process's memory (MiB) after the trial
``latency_ms``            inference ms per image (only with a ``latency`` objective)
``latency_measured``      how it was measured: batch, warm-up, repeats, device, threads
``prune_reason``          why the pruner or the deadline stopped it
``fail_reason``           why it failed (diverged, out of memory, interrupted, worker gone)
``diagnosis``             labels of ``search.core.diagnose``: diverged, stuck, overfitting, ...
``worker``                ``host:pid`` of the process that ran it
``baseline``              true: the trial trains the recipe (a new study's first trial)
``draw``                  how the prior sampler drew it: ``local``, ``global``, ``replay``, ...
``centre``                the trial (or the prior) a local draw changed, as words
``changed``               the parameters a local draw changed
``retry_of``              the trial this one runs again (its worker died or was interrupted)
``retry_history``         the trials before it in that chain
``phase``                 budgeted search: ``early``, ``explore``, ``branch``, ``promote``, ``final``
``budget_start``          the start (unix time) of the budget whose plan gave the phase
``source``                the trial whose configuration or weights this one trains again
``lever``                 a branch's one change, e.g. ``{"cutout": 0.25}``
``control``               true: the branch that continues its source unchanged
``keep_weights``          true: its weights are saved for the final run to continue
``checkpoint``            where they were saved
``continued_from``        the trial whose weights it started from
``continued_epochs``      how many epochs those weights had trained
``pace_until``            unix time at which a paced final run's schedule ends
``paced``                 what the clock-paced schedule ran, in words
``stopped``               why it ended before its planned epochs (the deadline)
``final_claim``           the budget (its start) whose single final run it claimed
``warm_start``            the earlier study's trial a warm start queued it from (``study#7``)
========================  ================================================================

Study user attributes: ``SETTINGS`` (the study's settings, ``search.study.settings``),
``BUDGET`` (the running budget, ``{"start", "seconds"}``) and ``WARM_START`` (what a warm
start read and queued).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import optuna

from search.study.optuna_access import set_trial_attr

__all__ = ["TrialRecord", "write", "write_to", "attrs", "SETTINGS", "BUDGET", "WARM_START"]

SETTINGS = "cnn_search"
BUDGET = "budget"
WARM_START = "warm_start"


@dataclass(frozen=True)
class TrialRecord:
    """A trial's cnn-search attributes, read once (see the module's table)."""

    config: dict[str, Any] | None = None
    history: dict[str, list[float]] | None = None
    params_count: int | None = None
    epoch_seconds: list[float] | None = None
    rss_mb: float | None = None
    latency_ms: float | None = None
    latency_measured: dict[str, Any] | None = None
    prune_reason: str | None = None
    fail_reason: str | None = None
    diagnosis: list[str] | None = None
    worker: str | None = None
    baseline: bool | None = None
    draw: str | None = None
    centre: str | None = None
    changed: list[str] | None = None
    retry_of: int | None = None
    retry_history: list[int] | None = None
    phase: str | None = None
    budget_start: float | None = None
    source: int | None = None
    lever: dict[str, Any] | None = None
    control: bool | None = None
    keep_weights: bool | None = None
    checkpoint: str | None = None
    continued_from: int | None = None
    continued_epochs: int | None = None
    pace_until: float | None = None
    paced: str | None = None
    stopped: str | None = None
    final_claim: float | None = None
    warm_start: str | None = None

    @classmethod
    def of(cls, trial: optuna.trial.FrozenTrial | optuna.trial.BaseTrial | dict[str, Any]) -> TrialRecord:
        """The record of a trial (or of its user attributes as a dict); other keys are ignored."""
        raw = trial if isinstance(trial, dict) else trial.user_attrs
        return cls(**{k: raw[k] for k in _KEYS if k in raw})


_KEYS = frozenset(f.name for f in dataclasses.fields(TrialRecord))


def attrs(**values: Any) -> dict[str, Any]:
    """User attributes to store (``enqueue_trial(user_attrs=...)``, a sampler's plan): a
    name that is not a field of ``TrialRecord`` is a bug, refused here."""
    unknown = sorted(set(values) - _KEYS)
    if unknown:
        raise KeyError(f"not keys of the trial record: {unknown}")
    return values


def write(trial: optuna.trial.BaseTrial, **values: Any) -> None:
    """Store ``values`` on a running trial (checked as ``attrs`` checks them)."""
    for key, value in attrs(**values).items():
        trial.set_user_attr(key, value)


def write_to(study: optuna.Study, trial: optuna.trial.BaseTrial | optuna.trial.FrozenTrial, **values: Any) -> None:
    """Store ``values`` on any trial of ``study``, also one the caller does not run (a
    sampler writing the plan of the trial it samples, a worker failing a dead one's)."""
    for key, value in attrs(**values).items():
        set_trial_attr(study, trial, key, value)
