"""A rich budget pays for a wider net: the recipe's width scaled to the epochs the budget buys.

A budget that buys hundreds of recipe epochs spends most of them where they buy nothing:
on the CIFAR-10 subset at 4,500 images the recipe's 271 epochs over 2400 s tested what
its 45 epochs over 600 s did (0.722 against 0.711-0.725), and a net twice as wide (96
base filters, 75 epochs in the same seconds) tested 0.7395, +1.75 points; on a second
seed +1.8 validation points and -0.25 test (docs/benchmarks/epoch-time.md, "Width at a
rich budget").  A longer run pays for a bigger net (compute-optimal scaling, Hoffmann et
al. 2022; Kaplan et al. 2020).

So after the probe, a rich budget (``BudgetPlan.rich``) widens the recipe to the widest
``base_filters`` choice of the space whose epochs the budget still buys RICH of: an
epoch's cost grows about with the width squared (WIDTH_COST; 3.6x measured for 2x), which
picks the candidates, and a probe of the wider net decides.  The width is not judged by
a short trial beside the recipe's: at a few epochs the narrower net wins (the
short-horizon bias), which is why the choice follows the budget instead.  Everything
after it (the trunk, its branches, the final run, ``describe_plan``) counts epochs of the
wider net.  The choice is the study's: it is stored with the running budget (a choice not
to widen too), and a command that joins it (another worker, terminal or machine, or the
same command after kill -9) takes it, with its epoch time, instead of choosing again: every
worker of one budget trains one net, whatever its own timing would say.  No TensorFlow here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from search.study.budget import RICH, BudgetPlan
from search.study.optuna_access import get_trial, set_fixed_params, storage_of, study_id
from search.study.record import BUDGET, TrialRecord

__all__ = ["Widening", "WIDTH", "WIDTH_COST", "WAIT_FOR_FIRST", "choose_width", "plan_widening", "stored_widening"]

WIDTH = "base_filters"  # the Optuna param a widening sets (the cnn and resnet spaces' first stage width)
WIDTH_COST = 2.0  # an epoch's cost grows about as width ** WIDTH_COST (convolutions: channels in x out)
MAX_PROBES = 2  # wider nets timed at most (each a model build and a few steps)
SETTLE = 0.5  # seconds before reading a stored choice back (two commands choosing at once: one wins)
WAIT_FOR_FIRST = 600.0  # seconds a worker after the first waits for its decision before deciding itself
POLL = 1.0


@dataclass(frozen=True)
class Widening:
    """The recipe's ``recipe`` base filters widened to ``width`` for one budget;
    ``recipe_seconds``: the recipe's epoch, ``seconds``: the wider net's (both probed)."""

    recipe: int
    width: int
    recipe_seconds: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "width": self.width,
            "recipe_seconds": self.recipe_seconds,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Widening | None:
        try:
            return cls(int(raw["recipe"]), int(raw["width"]), float(raw["recipe_seconds"]), float(raw["seconds"]))
        except (KeyError, TypeError, ValueError):
            return None

    def describe(self, budget_seconds: float) -> str:
        return (
            f"a budget this rich pays for a wider net: {self.width} base filters instead of the recipe's "
            f"{self.recipe}, {self.seconds:.1f}s an epoch, about {budget_seconds / self.seconds:.0f} epochs"
        )


def choose_width(
    seconds: float, recipe_seconds: float, recipe: int, choices: Sequence[Any], measure: Callable[[int], float]
) -> tuple[int, float] | None:
    """The widest of ``choices`` above ``recipe`` whose epoch, timed by ``measure(width)``,
    the budget's ``seconds`` buy RICH of, and that epoch; None when none does.  Only widths
    that WIDTH_COST says may fit are timed, widest first, MAX_PROBES at most."""
    wider = sorted((c for c in choices if isinstance(c, int) and not isinstance(c, bool) and c > recipe), reverse=True)
    timed = 0
    for width in wider:
        if seconds / (recipe_seconds * (width / recipe) ** WIDTH_COST) < RICH:
            continue
        if timed == MAX_PROBES:
            break
        timed += 1
        per_epoch = measure(width)
        if per_epoch > 0 and seconds / per_epoch >= RICH:
            return width, per_epoch
    return None


def stored_widening(study: optuna.Study, budget: BudgetPlan) -> Widening | None:
    """The widening stored with ``budget`` in the study (None: none, or another budget's)."""
    return _decision(study, budget)[1]


def _decision(study: optuna.Study, budget: BudgetPlan) -> tuple[bool, Widening | None]:
    """Whether a command already decided ``budget``'s width (a null widening: the recipe's), and what."""
    stored = study.user_attrs.get(BUDGET)
    if not isinstance(stored, dict) or stored.get("start") != budget.start or "widening" not in stored:
        return False, None
    return True, Widening.from_dict(stored["widening"])


def plan_widening(
    study: optuna.Study, budget: BudgetPlan, space: Any, base: Any, measure: Callable, wait: float = 0.0
) -> None:
    """Widen ``budget``'s recipe where it is rich and ``space`` has a wider ``base_filters``
    choice that fits, or take what the first command on this budget decided (waiting up to
    ``wait`` seconds for it: a worker after the first): set ``budget.widening`` and
    ``budget.probe`` to the wider net's epoch, and the queued recipe trial's and the
    sampler's prior width.  ``measure(config)``: seconds an epoch of a config takes (inf:
    it does not fit); ``base``: the recipe's config (``budget.probe`` its epoch)."""
    decided, widening = _decision(study, budget)
    until = time.time() + wait
    while not decided and time.time() < until:
        time.sleep(POLL)
        decided, widening = _decision(study, budget)
    recipe = space.baseline(base).get(WIDTH)
    if not decided:
        param = next((p for p in space.params if (p.section, p.key, p.kind) == ("model", WIDTH, "categorical")), None)
        chosen = None  # no wider choice, none the budget buys RICH epochs of, or not the probed net
        if budget.rich and param is not None and isinstance(recipe, int) and _probes_its_net(space, base):
            chosen = choose_width(
                budget.seconds,
                budget.probe,
                recipe,
                param.choices,
                lambda width: measure(base.replace(model=_with_width(base.model, width))),
            )
        _store(study, budget, Widening(recipe, chosen[0], budget.probe, chosen[1]) if chosen else None)
        widening = stored_widening(study, budget)  # another command's, where two decided at once
    if widening is not None:
        budget.widening, budget.probe = widening, widening.seconds
        prior = getattr(study.sampler, "prior", None)
        if isinstance(prior, dict) and WIDTH in prior:  # the prior and budgeted samplers' centre: the recipe
            prior[WIDTH] = widening.width
    if isinstance(recipe, int):  # the recipe queued before the budget was known: widened, or as it was
        _width_of_queued_recipe(study, widening.width if widening is not None else recipe)


def _probes_its_net(space: Any, base: Any) -> bool:
    """Whether ``space``'s recipe trial builds ``base``'s kind of net (the probe's): not with
    a space that fixes or samples another kind (``--space resnet`` over the CNN recipe)."""
    kind = next((p for p in space.params if (p.section, p.key) == ("model", "kind")), None)
    same = kind is None or (kind.kind == "fixed" and kind.value == getattr(base.model, "kind", None))
    return same and hasattr(base.model, WIDTH)


def _with_width(model: Any, width: int) -> Any:
    import dataclasses

    return dataclasses.replace(model, base_filters=width)


def _store(study: optuna.Study, budget: BudgetPlan, widening: Widening | None) -> None:
    """Record the decision with the running budget, unless a command on it decided first
    (theirs stands: every worker trains one net), then wait a moment for a rival's write."""
    stored = dict(storage_of(study).get_study_user_attrs(study_id(study)).get(BUDGET) or {})
    if stored.get("start") != budget.start or "widening" in stored:
        return
    study.set_user_attr(BUDGET, {**stored, "widening": widening.to_dict() if widening else None})
    time.sleep(SETTLE)


def _width_of_queued_recipe(study: optuna.Study, width: int) -> None:
    """The recipe trial queued at the study's creation, not yet started, trains ``width``
    (a wider net, or the recipe's again where an earlier budget widened it)."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        fixed = t.system_attrs.get("fixed_params")
        if TrialRecord.of(t).baseline and isinstance(fixed, dict) and WIDTH in fixed and fixed[WIDTH] != width:
            if get_trial(study, t).state == TrialState.WAITING:  # not taken by a worker meanwhile
                set_fixed_params(study, t, {**fixed, WIDTH: width})
