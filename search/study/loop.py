"""One worker's trial loop: run trials one at a time while slots remain, the deadline is
ahead, the budget plan has time for another and no stop was asked for.

Slots count the trials started, here (``LocalSlots``) or across worker processes
(``SharedSlots``): a worker claims a slot *before* it starts a trial, so exactly
``--trials`` trials run, however the workers race.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import optuna

from search.core.memory import MemoryWatch
from search.errors import SearchInterrupted
from search.study.budgets import describe_plan
from search.study.recovery import StopRequest
from search.study.storage import GRACE_FACTOR
from search.study.widen import WAIT_FOR_FIRST, plan_widening

if TYPE_CHECKING:
    from search.study.budget import BudgetPlan
    from search.study.workers import SearchJob

__all__ = ["LocalSlots", "SharedSlots", "run_trials", "probe_budget", "plan_budget", "interrupted_message"]


class LocalSlots:
    def __init__(self, total: int) -> None:
        self.total, self.used, self.stopped = total, 0, False

    def claim(self) -> bool:
        if self.used >= self.total:
            return False
        self.used += 1
        return True


class SharedSlots:
    """The trial budget shared by the workers: a counter and a stop flag in shared memory."""

    def __init__(self, used: Any, stop_flag: Any, total: int) -> None:
        self._used, self._stop, self.total = used, stop_flag, total

    @property
    def stopped(self) -> bool:
        return bool(self._stop.value)

    def claim(self) -> bool:
        with self._used.get_lock():
            if self._stop.value or self._used.value >= self.total:
                return False
            self._used.value += 1
            return True


def run_trials(
    job: SearchJob,
    study: optuna.Study,
    objective: Callable,
    slots: Any,
    stop: StopRequest,
    watch: MemoryWatch | None = None,
) -> bool:
    """Run trials one at a time while slots remain, the deadline is ahead and no stop came.

    True when it stopped early because ``watch`` says this process grew too much: the
    caller hands the remaining trials to a fresh process.
    """
    from search.study.trial import TrialRunner

    on_done = [job.printer()] if job.printer is not None else []
    runner = TrialRunner(objective, stop, on_done=on_done, grace=GRACE_FACTOR * job.settings.heartbeat)
    while not stop.requested and (job.deadline is None or time.time() < job.deadline):
        if watch is not None and watch.exceeded():
            return True
        if job.budget is not None and job.budget.finished(study):
            break  # the final run is done and no short schedule fits in the time left
        if not slots.claim():
            break
        runner.run_one(study)
        if watch is not None:
            watch.trial_done()
    if stop.requested or slots.stopped:
        if runner.interrupted:
            raise SearchInterrupted(interrupted_message(runner.interrupted), tuple(runner.interrupted))
        raise SearchInterrupted("stopped between trials, nothing lost; run the same command to resume")
    return False


def probe_budget(job: SearchJob, objective: Any, study: optuna.Study, quiet: bool = False) -> None:
    """``plan_budget`` for a search's worker (``quiet``: one after the first)."""
    if job.budget is not None:
        plan_budget(job.budget, objective, study, quiet)


def plan_budget(budget: BudgetPlan, objective: Any, study: optuna.Study, quiet: bool = False) -> None:
    """A budgeted search times a few steps of its base config (the recipe) before the
    first trial, to plan how much of the budget goes to exploring, and a rich one a wider
    net and, on few images, stronger augmentation (``search.study.widen``: the first worker
    decides, a ``quiet`` one waits for that);
    it says the plan."""
    if budget.probe is not None:
        return
    from search.core.training import probe_epoch_seconds
    from search.errors import ResourceError

    budget.probe = probe_epoch_seconds(objective.base, objective.data)

    def measure(config) -> float:
        try:
            return probe_epoch_seconds(config, objective.data, max_params=objective.max_params)
        except ResourceError:  # over --max-params, or out of memory: that net does not fit
            return math.inf

    wait = WAIT_FOR_FIRST if quiet else 0.0
    plan_widening(study, budget, objective.space, objective.base, measure, wait, len(objective.data.x_train))
    if not quiet:
        print(describe_plan(budget), flush=True)


def interrupted_message(numbers: Sequence[int]) -> str:
    which = f"trial {numbers[0]}" if len(numbers) == 1 else "trials " + ", ".join(map(str, numbers))
    return f"{which} stopped, marked failed and queued to run again; run the same command to resume"
