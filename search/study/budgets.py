"""A search's budget around its plan: ``--budget`` read from the command line, the
running budget a study keeps, which every command on that study joins (another terminal,
another machine, the same command after a kill -9), and the one final run they share.  The plan itself, what each trial
of a budget trains, is ``search.study.budget``.  No TensorFlow here: the command line
checks ``--budget`` before anything heavy is imported."""

from __future__ import annotations

import math
import re
import time

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import UsageError
from search.study import record
from search.study.budget import (
    BRANCH_MIN,
    EARLY,
    EARLY_MIN,
    EXPLORE,
    PROMOTE,
    RICH,
    RICH_EXPLORE,
    RICH_MIN_SECONDS,
    BudgetPlan,
    TrialPlan,
)

__all__ = ["parse_budget", "study_budget", "plan_for", "describe_plan", "BUDGET_ATTR", "MIN_BUDGET", "MAX_BUDGET"]

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
MIN_BUDGET = 30.0  # the probe, a model's building and tracing, one epoch and its validation
MAX_BUDGET = 30 * 24 * 3600.0


def parse_budget(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``10m``, ``2h`` or ``1.5h``; a clear error otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text).lower())
    if not m:
        raise UsageError(f"--budget {text!r} is not a duration; write seconds (600), or 90s, 10m, 2h")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"--budget {text!r} must be more than 0 seconds; write e.g. 90s, 10m, 2h")
    if seconds < MIN_BUDGET:
        raise UsageError(
            f"--budget {text!r} is under {MIN_BUDGET:g}s: timing the recipe, building a model and one "
            f"epoch with its validation need about that on a CPU; write at least {MIN_BUDGET:g}s"
        )
    if seconds > MAX_BUDGET:
        raise UsageError(
            f"--budget {text!r} is over 30 days ({MAX_BUDGET:g}s); write a shorter budget "
            "(a stopped search resumes with the same command)"
        )
    return seconds


BUDGET_ATTR = record.BUDGET  # a study's running budget: {"start": time.time(), "seconds": ...}
JOIN_MIN_LEFT = 30.0  # a budget with less than this left is over: a new command starts its own


def study_budget(
    study: optuna.Study, seconds: float, now: float | None = None, **plan: object
) -> tuple[BudgetPlan, str | None]:
    """The budget plan of a command on ``study``: the study's running budget when it has
    one with time left (another terminal's or machine's command on the same study, or
    this command before a kill -9: they join it, with its deadline and its single final
    run), else a new budget of ``seconds`` from now, recorded in the study.  The second
    value says what was joined (None for a new budget)."""
    now = time.time() if now is None else now
    stored = study.user_attrs.get(BUDGET_ATTR)
    if isinstance(stored, dict):
        try:
            start, total = float(stored["start"]), float(stored["seconds"])
        except (KeyError, TypeError, ValueError):
            start, total = 0.0, 0.0
        left = start + total - now
        if left >= JOIN_MIN_LEFT and start <= now:
            note = (
                f"joining the study's running budget of {total:g}s, started {now - start:.0f}s ago: {left:.0f}s left"
                + (f" (this command's --budget {seconds:g}s is not used)" if abs(total - seconds) > 0.5 else "")
            )
            return BudgetPlan(total, start=start, **plan), note
    budget = BudgetPlan(seconds, start=now, **plan)
    study.set_user_attr(BUDGET_ATTR, {"start": budget.start, "seconds": seconds, "val_images": budget.val_images})
    return budget, None


def plan_for(budget: BudgetPlan, study: optuna.Study, trial: FrozenTrial, branches_left: bool = True) -> TrialPlan:
    """``budget.next_trial`` for ``trial``, which a sampler is about to draw.  Two commands
    or workers on one budget may decide its final run at the same moment: each marks its
    trial as claiming it (its ``final_claim``, which ``next_trial`` counts as a final run), and
    the lowest-numbered claim wins; the others are planned again (they explore, or
    branch, with the time left)."""
    plan = budget.next_trial(study, branches_left=branches_left)
    if plan.phase != "final":
        return plan
    record.write_to(study, trial, final_claim=budget.start)
    rivals = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE))
        if record.TrialRecord.of(t).final_claim == budget.start and t.number < trial.number
    ]
    if not rivals:
        return plan
    record.write_to(study, trial, final_claim=None)
    return budget.next_trial(study, branches_left=branches_left)


def describe_plan(plan: BudgetPlan) -> str:
    """What the budget buys and how it will be spent, in one line (the search prints it first)."""
    affordable = plan.affordable_epochs()
    if plan.branching:
        return (
            f"{_bought(plan)}: "
            f"the recipe trains {plan.short} epochs, then its "
            f"weights continue {plan.branch_epochs} more as they are "
            "and with one change at a time that long schedules reward (cutout, wider shifts, dropout), "
            f"until two in a row do not beat it or about {RICH_EXPLORE:.0%} of the budget; the best of them "
            "(the recipe unless a change beat it) continues with the time left"
        )
    if plan.trunked:  # branches would be under BRANCH_MIN epochs
        return (
            f"{_bought(plan)}: the recipe trains {plan.short} epochs, then its weights continue with the time "
            f"left (no branches: a branch would get {plan.branch_epochs} epochs, under the {BRANCH_MIN} "
            "that judge a change past its warm restart)"
        )
    if plan.rich:
        return (
            f"{_bought(plan)}: the recipe, then configurations the {plan.sampler} sampler draws, each trains "
            f"{plan.short} epochs until about {RICH_EXPLORE:.0%} of the budget; "
            "the best of them (the recipe unless another beat it) continues with the time left"
        )
    if affordable is not None and not plan.rich:
        head = f"{_bought(plan)}: " + (
            f"too few to spend on exploring (under {RICH}); "
            if affordable < RICH
            else f"too short to spend on exploring (under {RICH_MIN_SECONDS:g}s, each trial's set-up would eat it); "
        )
        if affordable >= EARLY_MIN:
            return head + (
                f"the recipe trains over the first {EARLY:.0%} for an early answer, then again with the time left"
            )
        return head + "the recipe trains once with the whole budget"
    return (
        f"budget {plan.seconds:g}s: short schedules of {plan.short} epochs until {plan.seconds * EXPLORE:.0f}s, "
        f"the best again with {plan.promoted_epochs} until "
        f"{plan.seconds * PROMOTE:.0f}s, then the best with the time left"
    )


def _bought(plan: BudgetPlan) -> str:
    """What the budget buys by the probe: epochs of the recipe, and of its wider net where one was planned."""
    widening = plan.widening
    recipe = widening.recipe_seconds if widening is not None else plan.probe
    head = f"budget {plan.seconds:g}s buys about {plan.seconds / recipe:.0f} epochs of the recipe ({recipe:.1f}s each)"
    return head if widening is None else f"{head}; {widening.describe(plan.seconds)}"
