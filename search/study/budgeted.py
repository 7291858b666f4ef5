"""Any Optuna sampler under a budget plan.

The plan (``search.study.budget.BudgetPlan``) is a scheduler, not a part of one sampler:
it decides each trial's phase and schedule length from the clock and the study's
trials.  ``BudgetedSampler`` wraps a sampler (TPE, random, GP, CMA-ES, QMC) so that:

* the ``epochs`` param is the plan's, never the wrapped sampler's (TPE would otherwise
  model it as a hyperparameter and prefer the short schedules that score low);
* a final run (or promotion) replays its source trial's params; a final run with no
  source trains the recipe (``prior``: the space's baseline of the base config);
* every other param of an explore trial comes from the wrapped sampler, as without a
  budget; queued trials (the recipe, a warm start) keep their params;
* the plan is stored on the trial as the prior sampler stores it (``phase``,
  ``budget_start``, ``source``, ``pace_until``, ``keep_weights``), so the objective,
  the progress lines, the summary and the final run's continuation work the same.

The prior sampler (``search.study.prior``) applies the plan itself, with its levers.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

from search.study.budget import BudgetPlan, TrialPlan
from search.study.budgets import plan_for
from search.study.prior import allows, clip_to
from search.study.record import attrs, write_to

__all__ = ["BudgetedSampler"]


class BudgetedSampler(optuna.samplers.BaseSampler):
    def __init__(
        self, base: optuna.samplers.BaseSampler, budget: BudgetPlan, prior: dict[str, Any] | None = None
    ) -> None:
        self.base = base
        self.budget = budget
        self.prior = dict(prior or {})
        self._plans: dict[int, tuple[TrialPlan, dict[str, Any] | None]] = {}

    def reseed_rng(self) -> None:
        self.base.reseed_rng()

    def _replayed(self, trial: FrozenTrial) -> dict[str, Any] | None:
        entry = self._plans.get(trial.number)
        return entry[1] if entry else None

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self._replayed(trial) is not None:
            return {}
        space = dict(self.base.infer_relative_search_space(study, trial))
        space.pop("epochs", None)
        return space

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, name: str, distribution: BaseDistribution
    ) -> Any:
        entry = self._plans.get(trial.number)
        if entry is not None and name == "epochs":
            return clip_to(entry[0].epochs, distribution)
        replayed = entry[1] if entry else None
        if replayed is not None and name in replayed and allows(distribution, replayed[name]):
            return replayed[name]
        return self.base.sample_independent(study, trial, name, distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        plan = plan_for(self.budget, study, trial)
        replayed: dict[str, Any] | None = None
        if "fixed_params" in trial.system_attrs:  # queued: its params are its own
            if plan.source is not None:
                plan = TrialPlan("explore", self.budget.short, note="a queued trial", keep=self.budget.rich)
        elif plan.phase in ("final", "promote", "early") and plan.source is None:
            replayed = dict(self.prior)  # the recipe, with the plan's epochs
        elif plan.source is not None:
            source = next(t for t in study.get_trials(deepcopy=False) if t.number == plan.source)
            replayed = dict(source.params)
        self._plans[trial.number] = (plan, replayed)
        out: dict[str, Any] = {
            **plan.attrs(self.budget.start),
            **attrs(draw="replay" if replayed is not None else "sampled"),
        }
        if replayed is not None:
            out.update(attrs(centre=f"trial {plan.source}" if plan.source is not None else "the recipe"))
        write_to(study, trial, **out)  # as the prior sampler: before the objective reads them
        self.base.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state, values) -> None:
        self._plans.pop(trial.number, None)
        self.base.after_trial(study, trial, state, values)
