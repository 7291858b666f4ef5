"""The prior-guided sampler: most draws near a good configuration, a share from anywhere.

A search that samples 30 parameters uniformly spends most of its trials on hopeless
draws (Adagrad at 1e-4, three blocks of 5x5 convolutions).  Like piBO (Hvarfner et
al., 2022) and PriorBand (Mallik et al., 2023), this sampler starts from a prior, the
default recipe or the space file's ``prior`` values (``Space.priors``), and lets the
evidence move it:

* each trial is either **local**: the centre with one to three parameters changed
  (a categorical to another choice, a number by a Gaussian step of a quarter of its
  range, on a log scale where the range is), or **global**: every parameter drawn
  from the whole space;
* the centre is the best trial so far (ranked at the longest schedule trained, see
  ``search.study.budget``) or, one draw in four, the prior itself;
* the global share starts at a quarter and follows the evidence: after four
  completed trials it is 10% plus 40% of the share of global draws among the best
  quarter of the trials.

It is an Optuna sampler (``sample_independent``), so storage, resume, workers and the
dashboard see ordinary trials; the plan of each trial (local or global, its centre,
what it changed, its schedule length in a budgeted search) is stored as user
attributes.  Queued trials (the recipe, warm-start configurations, promotions) keep
their fixed params; the sampler fills in only what they leave open.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from search.study.budget import BudgetPlan, TrialPlan, rank_trials
from search.study.budgets import plan_for
from search.study.optuna_access import trial_by_number
from search.study.ranking import branching_settled
from search.study.record import TrialRecord, attrs, write_to

__all__ = ["PriorSampler", "Draw"]

START_GLOBAL = 0.25  # global share before there is evidence
MIN_GLOBAL, GLOBAL_RANGE = 0.10, 0.40  # global share = 0.10 + 0.40 x (global share of the top quarter)
EVIDENCE = 4  # completed trials before the share follows the evidence
PRIOR_CENTRE = 0.25  # local draws centred on the prior rather than the best trial
STEP = 0.25  # Gaussian step of a numeric change, as a fraction of its (log) range
CHANGES = (1, 2, 3)
CHANGE_WEIGHTS = (0.5, 0.3, 0.2)
# At a rich budget (``BudgetPlan.rich``) the first explore trials after the recipe each
# change one lever that long schedules on few images reward, in this order, where the
# space has the parameter and the value: regularization first (cutout: DeVries & Taylor
# 2017 on CIFAR-10, 16 of 32 pixels; random erasing gave Fashion-MNIST +1.2 points at 300
# epochs, Zhong et al. 2017), then dropout.  Not the width: a rich budget's plan sets it for
# every trial (``search.study.widen``), since a wider net judged at a short length loses to
# the narrower one it would beat at the full length.  "up" is the next larger choice.
RICH_LEVERS: tuple[tuple[str, Any], ...] = (("cutout", 0.5), ("cutout", 0.25), ("block_dropout", 0.1))
# A rich budget's branches (``search.study.budget``, BRANCH_SHARE) continue the recipe's
# weights, so they change only what keeps the weights' shapes, milder first.  Half the
# batch comes first: on a CPU an epoch costs the same at half the batch (twice the steps,
# each half the work): halving the recipe's batch gave it +3.4 validation points on the
# CIFAR-10 subset 9k, +0.4 on Fashion-MNIST 10k and +3.0 on the CIFAR-10 subset 4.5k, paced by
# the same clock (docs/benchmarks/epoch-time.md; the recipe has taken those halves since).
# Branches are compared at equal epochs, so on a GPU, where a smaller batch costs more an
# epoch, the comparison does not charge that cost.
# Then augmentation: on the CIFAR-10 subset (4.5k images, 2400 s) cutout 0.5 trained from
# scratch lost 1.7 points to the recipe at 23 epochs.  4-pixel shifts are the classic CIFAR
# augmentation for long schedules (the recipe's 2 suit its 15 epochs).  "down" is the next
# smaller choice than the centre's.
BRANCH_LEVERS: tuple[tuple[str, Any], ...] = (
    ("batch_size", "down"),
    ("cutout", 0.25),
    ("pad_crop", "up"),
    ("block_dropout", 0.1),
    ("cutout", 0.5),
)


@dataclass
class Draw:
    """How one trial is drawn."""

    mode: str  # local, global, replay (a promotion or final run of an earlier trial)
    centre: dict[str, Any] = field(default_factory=dict)
    change: tuple[str, ...] = ()
    plan: TrialPlan | None = None
    centre_name: str = "prior"
    known: frozenset[str] = frozenset()  # params a local draw takes from the centre; others are drawn anew
    values: dict[str, Any] = field(default_factory=dict)  # a lever draw's changed params and their values


class PriorSampler(optuna.samplers.BaseSampler):
    """``prior``: Optuna params of the prior (``Space.priors(base)``); ``names``: the
    space's sampled parameter names (what a local draw may change), or a function of the
    centre giving those that apply to it (``Space.changeable``); ``budget``: the plan of
    a budgeted search, which also sets each trial's ``epochs`` param."""

    def __init__(
        self,
        prior: dict[str, Any],
        names: list[str] | Callable[[dict[str, Any]], list[str]],
        seed: int | None = None,
        budget: BudgetPlan | None = None,
    ) -> None:
        self.prior = dict(prior)
        self._names = names
        self.budget = budget
        self._seed = seed
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._rng = np.random.default_rng(seed)
        self._draws: dict[int, Draw] = {}

    def reseed_rng(self) -> None:
        self._random.reseed_rng()
        self._rng = np.random.default_rng()

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def names(self, centre: dict[str, Any]) -> list[str]:
        """The parameters a local draw around ``centre`` may change."""
        names = self._names(centre) if callable(self._names) else self._names
        return [n for n in names if n != "epochs"]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        draw = self._decide(study, trial)
        self._draws[trial.number] = draw
        out: dict[str, Any] = attrs(draw=draw.mode, centre=draw.centre_name)
        if draw.change:
            out.update(attrs(changed=list(draw.change)))
        if draw.values:
            out.update(attrs(lever=dict(draw.values)))
        if draw.plan is not None:
            out.update(draw.plan.attrs(self.budget.start if self.budget else None))
            if draw.plan.phase == "branch" and not draw.values:
                out.update(
                    attrs(control=True)
                )  # the trunk continued unchanged: what each branch's change is measured against
        write_to(study, trial, **out)

    def after_trial(self, study, trial, state, values) -> None:
        self._draws.pop(trial.number, None)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, name: str, distribution: BaseDistribution
    ) -> Any:
        draw = self._draws.get(trial.number) or self._decide(study, trial)
        if name == "epochs" and draw.plan is not None:
            return clip_to(draw.plan.epochs, distribution)
        if name in draw.values:
            return draw.values[name]
        value = draw.centre.get(name)
        unknown = draw.mode == "local" and name not in draw.known
        if draw.mode == "global" or unknown or value is None or not allows(distribution, value):
            return self._random.sample_independent(study, trial, name, distribution)
        if name in draw.change:
            return self._perturb(value, distribution)
        return value

    # -- deciding a trial ------------------------------------------------------------

    def _decide(self, study: optuna.Study, trial: FrozenTrial) -> Draw:
        plan = plan_for(self.budget, study, trial) if self.budget is not None else None
        if "fixed_params" in trial.system_attrs:  # queued: the recipe, a warm start, a retry, a promotion
            if plan is not None and plan.source is not None:  # its params are its own: not a replay of another trial
                plan = TrialPlan("explore", self.budget.short, note="a queued trial", keep=self.budget.rich)
            return Draw("queued", dict(self.prior), plan=plan, centre_name="queued")
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
        if plan is not None and plan.phase == "branch":
            branch = self._next_branch(study, plan)
            if branch is not None:
                return branch
            plan = plan_for(self.budget, study, trial, branches_left=False)  # every change was tried: the final run
        if plan is not None and plan.phase == "final" and plan.source is None:  # the recipe, with the whole budget
            return Draw("replay", dict(self.prior), plan=plan, centre_name="prior")
        if plan is not None and plan.source is not None:
            source = trial_by_number(study, plan.source)
            return Draw("replay", dict(source.params), plan=plan, centre_name=f"trial {plan.source}")
        if plan is not None and plan.phase == "explore" and self.budget.rich:
            lever = self._next_lever(study, plan)
            if lever is not None:
                return lever
        if self._rng.random() < self.global_share(study, done):
            return Draw("global", plan=plan, centre_name="none")
        best = self._best(study, done)
        if best is None or self._rng.random() < PRIOR_CENTRE:
            # the recipe trial's params fill what the prior leaves open (a recipe value outside the
            # space's range: that trial drew it), so a change moves away from the recipe trial itself
            centre, centre_name = {**self._recipe_params(study), **self.prior}, "prior"
        else:
            centre, centre_name = {**self.prior, **best.params}, f"trial {best.number}"
        k = int(self._rng.choice(CHANGES, p=CHANGE_WEIGHTS))
        names = self.names(centre)
        change = tuple(self._rng.choice(names, size=min(k, len(names)), replace=False)) if names else ()
        known = frozenset(names) | frozenset(
            self.prior
        )  # a param of the objective's own, not the space's, is drawn anew
        return Draw("local", centre, tuple(str(c) for c in change), plan, centre_name, known)

    def _next_lever(
        self,
        study: optuna.Study,
        plan: TrialPlan,
        levers=RICH_LEVERS,
        centre: dict[str, Any] | None = None,
        centre_name: str = "prior",
    ) -> Draw | None:
        """``centre`` (the recipe by default) with the first of ``levers`` not yet tried by
        this budget's trials of ``plan``'s phase, where the space can take it (and it changes
        something); None when every lever was tried."""
        centre = dict(self.prior) if centre is None else centre
        tried = [
            TrialRecord.of(t).lever
            for t in study.get_trials(deepcopy=False)
            if TrialRecord.of(t).budget_start == self.budget.start
            and TrialRecord.of(t).lever
            and TrialRecord.of(t).phase == plan.phase
        ]
        distributions = self._distributions(study)
        names = set(self.names(centre))
        for name, target in levers:
            dist = distributions.get(name)
            if name not in names or dist is None or name not in centre:
                continue
            value = self._lever_value(centre[name], target, dist)
            if value is None or {name: value} in tried:
                continue
            return Draw("lever", centre, (name,), plan, centre_name, frozenset(centre), {name: value})
        return None

    def _next_branch(self, study: optuna.Study, plan: TrialPlan) -> Draw | None:
        """A branch of the trunk (``plan.source``): first the trunk's own configuration
        continued (the control every change is compared with), then the trunk with the
        first of BRANCH_LEVERS not yet tried; None when every lever was tried or the last
        TIED_BRANCHES did not beat the control (``branching_settled``)."""
        source = trial_by_number(study, plan.source)
        centre, name = {**self.prior, **source.params}, f"trial {plan.source}"
        mine = [
            t
            for t in study.get_trials(deepcopy=False)
            if TrialRecord.of(t).budget_start == self.budget.start and TrialRecord.of(t).source == plan.source
        ]
        if not any(TrialRecord.of(t).control for t in mine):
            return Draw("replay", centre, plan=plan, centre_name=name)
        if branching_settled(study, mine, self.budget.val_images):
            return None  # the last changes tied the control: the final run gets the rest
        return self._next_lever(study, plan, BRANCH_LEVERS, centre, name)

    def _distributions(self, study: optuna.Study) -> dict[str, BaseDistribution]:
        """Each parameter's distribution, from the study's trials (the space is not known here)."""
        found: dict[str, BaseDistribution] = {}
        for t in study.get_trials(deepcopy=False):
            for name, dist in t.distributions.items():
                found.setdefault(name, dist)
        return found

    @staticmethod
    def _lever_value(current: Any, target: Any, dist: BaseDistribution) -> Any:
        if isinstance(dist, CategoricalDistribution):
            choices = list(dist.choices)
            if target in ("up", "down"):
                numbers = [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
                if target == "up":
                    return min((c for c in numbers if c > current), default=None)
                return max((c for c in numbers if c < current), default=None)
            return target if allows(dist, target) and target != current else None
        if target in ("up", "down") or not allows(dist, target) or target == current:
            return None
        return clip_to(target, dist)

    @staticmethod
    def _recipe_params(study: optuna.Study) -> dict[str, Any]:
        """The params of the study's recipe trial (the queued baseline), without ``epochs``."""
        for t in study.get_trials(deepcopy=False):
            if TrialRecord.of(t).baseline:
                return {k: v for k, v in t.params.items() if k != "epochs"}
        return {}

    def global_share(self, study: optuna.Study, done: list[FrozenTrial]) -> float:
        """START_GLOBAL until EVIDENCE trials completed, then from the best quarter's draws."""
        if len(done) < EVIDENCE:
            return START_GLOBAL
        ranked = rank_trials(study, done)
        top = ranked[: max(1, len(ranked) // 4)]
        from_global = sum(TrialRecord.of(t).draw == "global" for t in top) / len(top)
        return MIN_GLOBAL + GLOBAL_RANGE * from_global

    def _best(self, study: optuna.Study, done: list[FrozenTrial]) -> FrozenTrial | None:
        ranked = rank_trials(study, done)
        return ranked[0] if ranked else None

    def _perturb(self, value: Any, distribution: BaseDistribution) -> Any:
        if isinstance(distribution, CategoricalDistribution):
            others = [c for c in distribution.choices if not (type(c) is type(value) and c == value)]
            return others[int(self._rng.integers(len(others)))] if others else value
        assert isinstance(distribution, (FloatDistribution, IntDistribution))
        low, high, log = distribution.low, distribution.high, distribution.log
        if high == low:
            return value
        to = (lambda v: math.log(v)) if log else (lambda v: v)
        back = (lambda v: math.exp(v)) if log else (lambda v: v)
        lo, hi = to(low), to(high)
        new = back(min(hi, max(lo, to(value) + self._rng.normal(0.0, STEP * (hi - lo)))))
        step = distribution.step
        if step:
            new = low + round((new - low) / step) * step
        if isinstance(distribution, IntDistribution):
            new = int(round(new))
            if new == value:  # a Gaussian step too small to move: move by one step
                up = value < high and (self._rng.random() < 0.5 or value == low)
                new = value + (distribution.step if up else -distribution.step)
        return clip_to(new, distribution)


def allows(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``distribution`` can take ``value`` (a choice of it, or inside its range)."""
    if isinstance(distribution, CategoricalDistribution):
        return any(type(c) is type(value) and c == value for c in distribution.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return distribution.low <= value <= distribution.high


def clip_to(value: Any, distribution: BaseDistribution) -> Any:
    """``value`` inside ``distribution``'s range (ints stay ints)."""
    if isinstance(distribution, (FloatDistribution, IntDistribution)):
        value = min(distribution.high, max(distribution.low, value))
        return int(value) if isinstance(distribution, IntDistribution) else float(value)
    return value
