"""Budget-first search: ``--budget 10m`` is the whole search's wall clock.

A budgeted search plans each trial's schedule length (its fidelity) from the time left
and the epoch times it has measured, instead of judging long schedules on their first
epochs:

1. **explore** (the first ``EXPLORE`` of the budget): complete short schedules of
   ``short`` epochs: the learning-rate schedule spans those epochs, so every trial is
   judged after its annealing, never in its warm-up;
2. **promote** (until ``PROMOTE``): the best explored configurations not yet promoted
   train again with a 3x longer schedule, each only when it can finish in time;
3. **final** (the rest, at least half of the budget): the best configuration, ranked
   at the longest schedule it ran, trains once more with the time left, its schedule
   paced by the clock (``search.core.deadline.Pace``); with ``capped`` (``--epochs``) and
   more time than ``max_epochs`` need, a plain schedule of ``max_epochs`` instead.

Exploring is worth its time only when the final run still gets a long schedule.
Before the first trial a few timed training steps of the recipe (``probe``) tell how
many of its epochs the budget buys: under ``RICH`` (60) nothing is explored and the
first trial is the final one, the recipe with every epoch the budget allows (on one CPU
core, 10 minutes buy about 15 epochs of the CIFAR-10 recipe).  From RICH epochs on, the
explore trials are long (RUNG_SHARE of what the budget buys) and keep their weights;
with the prior sampler, the recipe's explore trial is the trunk, each change to it a
**branch** (the trunk's weights continued with the change, beside them continued
unchanged) where branches get BRANCH_MIN epochs, and the final run continues the best.

The trial running at the deadline is stopped there (``search.core.deadline``); one whose second
epoch shows it cannot finish in time is pruned with the reason.  This module loads no TensorFlow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.study.ranking import epoch_seconds, epochs_run, final_source, rank_trials, trial_epochs
from search.study.record import TrialRecord, attrs

__all__ = ["BudgetPlan", "TrialPlan", "epoch_seconds", "epochs_run", "trial_epochs", "rank_trials"]

EXPLORE = 0.35  # share of the budget for short complete schedules
PROMOTE = 0.50  # promotions end here; the final run gets the rest
SHORT_EPOCHS = 3
PROMOTE_FACTOR = 3
PROMOTE_TOP = 2  # explored configurations promoted at most
RICH = 60  # epochs of the recipe the budget must buy before any of it goes to exploring
# At a rich budget, explore trials are judged at a length that decides: a configuration that wins at 3
# epochs (smaller, less regularized nets learn fastest early) is not the one that wins at 50.  Each gets
# RUNG_SHARE of the epochs the budget buys (15 of 100), and one starts only while it should end, at the
# pace measured so far, by RICH_EXPLORE of the budget; the final run continues the winner's weights with
# the rest, so the recipe's explore trial is not spent, and its model is as good as the 15-epoch recipe's
# within about a quarter of the budget (at 15% and 40% with the final run from scratch, Fashion-MNIST 10k at
# 1200 s tried no change at all: the recipe's explore trial took 310 s, 17 s an epoch against the probe's 10).
RUNG_SHARE = 0.15
RICH_EXPLORE = 0.5
# With the prior sampler, the changes it tries at a rich budget keep the weights' shapes (augmentation,
# dropout, ...), so each is judged by continuing the recipe's explore trial (the trunk) for BRANCH_SHARE
# of the affordable epochs (5 of 100): a branch, as freeze-thaw methods continue a run instead of starting
# it again.  The recipe itself continued as long is the control (every change is compared at the same
# length); the final run continues the best branch.  A losing branch costs its few epochs, not a whole
# explore trial (on the CIFAR-10 subset at 2400 s, cutout 0.5 from scratch took 17% of the budget and lost).
BRANCH_SHARE = 0.05
# A branch restarts its schedule's warm-up from the trunk's weights, so a short one judges its change in the
# dip of that restart: on Fashion-MNIST 6-epoch branches all ended below the trunk itself; at a widened budget
# (CIFAR-10 subset, 2400 s, 96 filters: 3-4 epoch branches) no change beat the control by the noise on two
# seeds, and the branches took 14-19% of the budget.  Under BRANCH_MIN the trunk continues as the final run.
BRANCH_MIN = 8
# Under a minute, each trial's building, tracing and bookkeeping (5-15 s on this CPU) eat the share a
# second trial would have: a 45 s digits search tried one change, its recipe trial ended past half the
# budget and no final run fitted.  Such a budget trains the recipe (an early answer, then the final run)
# however short its epochs are.
RICH_MIN_SECONDS = 60.0
# Under RICH, a budget that buys at least EARLY_MIN epochs first trains the recipe over EARLY of it,
# paced: an answer early (a model to use if the run is stopped, and the best a user sees within a quarter
# of the budget), which costs the final run a fifth of its epochs.  Below EARLY_MIN the early run gets
# under 6 epochs by the probe (fewer still by the clock: sustained epochs run slower): on the CIFAR-10
# benchmark (24 by the probe) it reached 0.42 in 3 epochs and cost the final run 3 of its 16.
EARLY = 0.2
EARLY_MIN = 30
SETUP_EPOCHS = 1.5  # a run's building, tracing and last validation, in epochs of its own
# The final run is paced (``search.core.deadline.Pace``): its learning-rate schedule runs on the clock and ends
# FINISH_EPOCHS of an epoch plus FINISH_SECONDS before the deadline, which leaves time for the trial's bookkeeping
# (curves, model summary, storage); Pace itself stops training a validation pass (measured) before that, so the pass
# after the stop ends in time.  With a quarter epoch alone, benchmark runs finished 2 s (Fashion-MNIST, 2.7 s left)
# and 2-5 s (CIFAR, 10 s left) past their budget; with 10 s more but the validation pass unmeasured, a CIFAR final run
# under load (4-5) still ended 7 s past 2400. Its epochs only size the schedule: sustained epochs can take longer than
# the probe measured (on one CPU core the CIFAR recipe's took 1.4-1.7x, until the input pipelines stopped waiting for
# tf.data's autotuner: docs/benchmarks/epoch-time.md), and a schedule planned in epochs from the probe was cut by the
# deadline before it annealed.
FINISH_EPOCHS = 0.25
FINISH_SECONDS = 10.0


@dataclass(frozen=True)
class TrialPlan:
    """What the sampler gives one trial: where it came from and how long it trains."""

    phase: str  # early, explore, branch (continues ``source``'s weights), promote, final
    epochs: int
    source: int | None = None  # the trial whose configuration this one trains again
    note: str = ""
    until: float | None = None  # time.time() at which a paced run's schedule ends (final runs)
    keep: bool = False  # a rich budget's explore trial before its final run: its weights are kept to continue from

    def attrs(self, budget_start: float | None) -> dict[str, object]:
        """The user attributes a sampler stores for this plan (the objective and the summaries read them)."""
        out = attrs(phase=self.phase, budget_start=budget_start)
        if self.source is not None:
            out.update(attrs(source=self.source))
        if self.until is not None:
            out.update(attrs(pace_until=self.until))
        if self.keep:
            out.update(attrs(keep_weights=True))  # the final run may continue from this trial's weights
        return out


@dataclass
class BudgetPlan:
    """The phases of a budgeted search; shared by every trial of one run (one process).

    ``max_epochs`` bounds the ``epochs`` param (a paced final run's is only nominal: it
    trains as many as the clock allows unless ``capped``).  ``probe``: seconds an epoch of the
    recipe takes (``search.core.training.probe_epoch_seconds``), of its wider net where a
    ``widening`` was planned (``search.study.widen``); None until measured."""

    seconds: float
    start: float = field(default_factory=time.time)
    max_epochs: int = 100
    short_epochs: int = SHORT_EPOCHS
    probe: float | None = None
    capped: bool = False  # --epochs set max_epochs: a final run with time for more trains that many, unpaced
    sampler: str = "prior"  # what draws the explore trials: the prior sampler moves the recipe's levers first
    val_images: int | None = None  # an accuracy monitor's validation images: a branch must beat their noise
    widening: Any = None  # a rich budget's wider net than the recipe's: search.study.widen.Widening

    @property
    def deadline(self) -> float:
        return self.start + self.seconds

    @property
    def short(self) -> int:
        """Epochs of an explore trial: ``short_epochs``, or at a rich budget (by the probe) RUNG_SHARE
        of the epochs the budget buys, at most half of ``max_epochs`` (so the final run can be longer)."""
        base = max(1, min(self.short_epochs, self.max_epochs))
        affordable = self.affordable_epochs()
        if affordable is not None and affordable >= RICH:
            return max(base, min(self.max_epochs // 2, round(affordable * RUNG_SHARE)))
        return base

    @property
    def branch_epochs(self) -> int:
        """Epochs a branch continues the trunk for: BRANCH_SHARE of the epochs the budget buys, at least 2
        (a warm-up and an annealing), at most that share of ``short`` (capped by ``max_epochs``)."""
        affordable = self.affordable_epochs() or 0.0
        return max(2, min(round(self.short * BRANCH_SHARE / RUNG_SHARE), round(affordable * BRANCH_SHARE)))

    @property
    def trunked(self) -> bool:
        """Whether a rich budget continues a trunk (the recipe's explore trial): with the prior sampler, whose
        changes keep the weights' shapes (another sampler's change the net: each trains from scratch)."""
        return self.rich and self.sampler == "prior"

    @property
    def branching(self) -> bool:
        """Whether the trunk's changes are judged as its branches: of BRANCH_MIN epochs or more (else it continues)."""
        return self.trunked and self.branch_epochs >= BRANCH_MIN

    @property
    def rich(self) -> bool:
        """Whether the probe says the budget buys RICH epochs or more, in RICH_MIN_SECONDS or more."""
        affordable = self.affordable_epochs()
        return affordable is not None and affordable >= RICH and self.seconds >= RICH_MIN_SECONDS

    @property
    def promoted_epochs(self) -> int:
        return min(self.short * PROMOTE_FACTOR, self.max_epochs)

    def finish(self, per_epoch: float) -> float:
        """Seconds a paced run ends before the deadline: its last validation, its bookkeeping."""
        return FINISH_EPOCHS * per_epoch + FINISH_SECONDS

    def left(self, now: float | None = None) -> float:
        return self.deadline - (time.time() if now is None else now)

    def affordable_epochs(self, done: list[FrozenTrial] = ()) -> float | None:
        """Epochs of the recipe the whole budget buys: from the probe, else the first completed trial."""
        per_epoch = self.probe
        if per_epoch is None and done:
            per_epoch = epoch_seconds(min(done, key=lambda t: t.number))
        return self.seconds / per_epoch if per_epoch else None

    def explores(self, done: list[FrozenTrial] = ()) -> bool:
        affordable = self.affordable_epochs(done)
        return affordable is None or (affordable >= RICH and self.seconds >= RICH_MIN_SECONDS)

    def finished(self, study: optuna.Study, now: float | None = None) -> bool:
        """True once this budget's final run is done and the time left would not finish a
        short schedule: a search stops there instead of starting a trial the deadline cuts."""
        finals = self._finals(study.get_trials(deepcopy=False), (TrialState.COMPLETE,))
        if not finals:
            return False
        per_epoch = epoch_seconds(finals[0]) or self.probe or 0.0
        return self.left(now) < (self.short + SETUP_EPOCHS) * per_epoch

    def next_trial(self, study: optuna.Study, now: float | None = None, branches_left: bool = True) -> TrialPlan:
        """Decide the next (sampled, not queued) trial from the study's trials and the clock.
        ``branches_left``: False when the sampler has no change left to branch with (the final run is next)."""
        now = time.time() if now is None else now
        spent = (now - self.start) / self.seconds
        trials = study.get_trials(deepcopy=False)
        done = [
            t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and t.datetime_start is not None
        ]
        final_done = bool(self._finals(trials, (TrialState.COMPLETE, TrialState.RUNNING)))
        if not self.explores(done):
            mine = [t for t in trials if TrialRecord.of(t).budget_start == self.start]
            if not mine and spent < EARLY / 2 and (self.affordable_epochs(done) or 0) >= EARLY_MIN:
                per_epoch = self.probe or epoch_seconds(min(done, key=lambda t: t.number))
                end = self.start + EARLY * self.seconds
                epochs = max(1, min(self.max_epochs, int((end - now) / per_epoch)))
                return TrialPlan(
                    "early", epochs, note=f"the recipe over the first {EARLY:.0%} of the budget", until=end
                )
            if not final_done:
                plan = self._final(study, done, now)
                if plan is not None:
                    return plan
            return TrialPlan(
                "explore", self.short, note="the final run is done or does not fit; exploring with the time left"
            )
        promoted = {TrialRecord.of(t).source for t in trials if TrialRecord.of(t).source is not None}
        if self.rich:
            trunk = self.trunk(study, done) if self.trunked else None
            if not final_done and trunk is not None:
                if self.branching and branches_left and self._explore_fits(done, now, self.branch_epochs):
                    return TrialPlan(
                        "branch",
                        self.branch_epochs,
                        trunk.number,
                        f"trial {trunk.number}'s weights, {self.branch_epochs} more epochs",
                        keep=True,
                    )
            elif not final_done and (not done or self._explore_fits(done, now, self.short)):
                return TrialPlan("explore", self.short, keep=True)
            if not final_done:
                plan = self._final(study, done, now)
                if plan is not None:
                    return plan
            return TrialPlan("explore", self.short, note="the final run is done; exploring with the time left")
        if spent < EXPLORE or not done:
            return TrialPlan("explore", self.short)
        if spent < PROMOTE:
            plan = self._promotion(study, done, promoted, now)
            if plan is not None:
                return plan
        if not final_done:
            plan = self._final(study, done, now)
            if plan is not None:
                return plan
        return TrialPlan("explore", self.short, note="the final run is done; exploring with the time left")

    def _finals(self, trials: list[FrozenTrial], states: tuple[TrialState, ...]) -> list[FrozenTrial]:
        """This budget's final runs (not an earlier run's of a resumed study) in ``states``,
        with the trials claiming one (``plan_for``)."""
        return [
            t
            for t in trials
            if t.state in states
            and (
                (TrialRecord.of(t).phase == "final" and TrialRecord.of(t).budget_start == self.start)
                or TrialRecord.of(t).final_claim == self.start
            )
        ]

    def trunk(self, study: optuna.Study, done: list[FrozenTrial]) -> FrozenTrial | None:
        """The explore trial of this budget that branches continue: the best completed one
        that kept its weights (the recipe, unless another worker's explore trial beat it)."""
        kept = [
            t
            for t in done
            if TrialRecord.of(t).budget_start == self.start
            and TrialRecord.of(t).phase == "explore"
            and TrialRecord.of(t).checkpoint
        ]
        return rank_trials(study, kept)[0] if kept else None

    def _explore_fits(self, done: list[FrozenTrial], now: float, epochs: int) -> bool:
        """At a rich budget: a trial of ``epochs`` ends by RICH_EXPLORE of the budget, at the slowest pace a
        trial of this budget took from start to end per epoch it ran (sustained, with building, tracing)."""
        paces = [
            (t.datetime_complete - t.datetime_start).total_seconds() / ran
            for t in done
            if TrialRecord.of(t).budget_start == self.start and t.datetime_complete and (ran := epochs_run(t))
        ]
        per_epoch = max(paces) if paces else (self.probe or 0.0) * (1 + SETUP_EPOCHS / epochs)
        return now + epochs * per_epoch <= self.start + RICH_EXPLORE * self.seconds

    def _promotion(self, study: optuna.Study, done: list[FrozenTrial], promoted: set, now: float) -> TrialPlan | None:
        short = [t for t in done if trial_epochs(t) == self.short]
        sign = 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1
        short.sort(key=lambda t: sign * t.value, reverse=True)
        final_reserve = (1 - PROMOTE) * self.seconds
        for t in short[:PROMOTE_TOP]:
            if t.number in promoted:
                continue
            per_epoch = epoch_seconds(t)
            if per_epoch is None or per_epoch * self.promoted_epochs > self.left(now) - final_reserve:
                continue  # would eat into the final run's time
            return TrialPlan(
                "promote", self.promoted_epochs, t.number, f"trial {t.number} again with {self.promoted_epochs} epochs"
            )
        return None

    def _final(self, study: optuna.Study, done: list[FrozenTrial], now: float) -> TrialPlan | None:
        """The best trial again (or, with nothing done yet, the prior: the recipe) with the time left."""
        best = final_source(study, done, self.val_images) if done else None
        per_epoch = epoch_seconds(best) if best is not None else self.probe
        if not per_epoch:
            return None
        fits = int((self.left(now) - self.finish(per_epoch) - SETUP_EPOCHS * per_epoch) // per_epoch)
        epochs = min(self.max_epochs, fits)
        # no longer schedule than it already had fits in the time left (a run that continues
        # the trial's kept weights trains longer than it with any epoch more)
        had = 0 if best is None or TrialRecord.of(best).checkpoint else trial_epochs(best) or 0
        if epochs <= had:
            return None
        what = f"trial {best.number}" if best is not None else "the recipe"
        if fits > self.max_epochs and self.capped:  # --epochs caps it: a plain schedule of that many epochs
            return TrialPlan("final", epochs, best.number if best is not None else None, f"{what} with {epochs} epochs")
        return TrialPlan(
            "final",
            epochs,
            best.number if best is not None else None,
            f"{what} with the time left (about {epochs} epochs)",
            until=self.deadline - self.finish(per_epoch),
        )
