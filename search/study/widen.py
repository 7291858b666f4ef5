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
worker of one budget trains one net, whatever its own timing would say.

A long schedule on few images also pays for stronger augmentation, which a short one
cannot show: on the CIFAR-10 subset at 4,500 images and 2400 s, the 64-filter net with
4-pixel shifts and cutout 0.25 tested +1.98 ± 0.48 points above it without over three
seeds, side by side, 131-154 epochs each (docs/benchmarks/epoch-time.md, "Long-schedule
augmentation at a rich budget"), where a branch of 3-4 epochs judges such a change in its
warm restart's dip and cutout 0.5 from scratch lost at 23 epochs.  So the same decision
adds LONG_AUGMENT to the recipe under FEW_IMAGES training images, where the recipe shifts
its images at all (not text, not images under 24 px).  No TensorFlow here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from search.study.budget import RICH, BudgetPlan
from search.study.optuna_access import get_trial, set_fixed_params, storage_of, study_id
from search.study.record import BUDGET, TrialRecord

__all__ = [
    "Widening",
    "WIDTH",
    "WIDTH_COST",
    "WAIT_FOR_FIRST",
    "FEW_IMAGES",
    "LONG_AUGMENT",
    "choose_width",
    "long_augmentation",
    "plan_widening",
    "stored_widening",
]

WIDTH = "base_filters"  # the Optuna param a widening sets (the cnn and resnet spaces' first stage width)
WIDTH_COST = 2.0  # an epoch's cost grows about as width ** WIDTH_COST (convolutions: channels in x out)
MAX_PROBES = 2  # wider nets timed at most (each a model build and a few steps)
SETTLE = 0.5  # seconds before reading a stored choice back (two commands choosing at once: one wins)
WAIT_FOR_FIRST = 600.0  # seconds a worker after the first waits for its decision before deciding itself
POLL = 1.0
FEW_IMAGES = 8192  # training images under which a rich budget's recipe augments more (the recipe's batch halves too)
LONG_AUGMENT = (("pad_crop", 4), ("cutout", 0.25))  # the classic CIFAR shifts; a quarter-side erased square


@dataclass(frozen=True)
class Widening:
    """A rich budget's change to the recipe: its ``recipe`` base filters widened to ``width``
    (the same where no wider net fits) and ``augment``, Optuna params of LONG_AUGMENT
    (empty: the recipe's own augmentation); ``recipe_seconds``: the recipe's epoch,
    ``seconds``: the trained net's (both probed)."""

    recipe: int
    width: int
    recipe_seconds: float
    seconds: float
    augment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "width": self.width,
            "recipe_seconds": self.recipe_seconds,
            "seconds": self.seconds,
            "augment": dict(self.augment),
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Widening | None:
        try:
            augment = dict(raw.get("augment") or {})  # none before augmentation was part of the decision
            return cls(
                int(raw["recipe"]), int(raw["width"]), float(raw["recipe_seconds"]), float(raw["seconds"]), augment
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            return None

    def params(self) -> dict[str, Any]:
        """The Optuna params this widening gives the recipe: its width and augmentation."""
        return {WIDTH: self.width, **self.augment}

    def describe(self, budget_seconds: float) -> str:
        bought = []
        if self.width != self.recipe:
            bought.append(f"a wider net: {self.width} base filters instead of the recipe's {self.recipe}")
        if self.augment:
            changes = ", ".join(f"{name} {value}" for name, value in self.augment.items())
            bought.append(f"its few training images' long-schedule augmentation ({changes})")
        return (
            f"a budget this rich pays for {', and for '.join(bought)}, "
            f"{self.seconds:.1f}s an epoch, about {budget_seconds / self.seconds:.0f} epochs"
        )


def long_augmentation(space: Any, base: Any, images: int) -> dict[str, Any]:
    """The Optuna params of LONG_AUGMENT that a rich budget's recipe takes on ``images``
    training images: those ``space`` samples, can take, and that are stronger than
    ``base``'s (the recipe's) value; none from FEW_IMAGES up, nor where the recipe does not
    shift its images (text, images under 24 px: more of either is not measured there)."""
    augment = getattr(base, "augment", None)
    if images >= FEW_IMAGES or augment is None or augment.pad_crop <= 0:
        return {}
    taken, params = space.baseline(base), _augment_params(space)
    out: dict[str, Any] = {}
    for key, value in LONG_AUGMENT:
        param = params.get(key)
        if param is None or param.kind == "fixed" or param.name not in taken or not param.allows(value):
            continue
        if value > taken[param.name]:
            out[param.name] = value
    return out


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
    study: optuna.Study,
    budget: BudgetPlan,
    space: Any,
    base: Any,
    measure: Callable,
    wait: float = 0.0,
    images: int = FEW_IMAGES,
) -> None:
    """Widen ``budget``'s recipe where it is rich and ``space`` has a wider ``base_filters``
    choice that fits, and add LONG_AUGMENT where it is rich and the data has under
    FEW_IMAGES training ``images`` (``long_augmentation``), or take what the first command
    on this budget decided (waiting up to ``wait`` seconds for it: a worker after the
    first): set ``budget.widening`` and ``budget.probe`` to the trained net's epoch, and the
    queued recipe trial's and the sampler's prior width and augmentation.
    ``measure(config)``: seconds an epoch of a config takes (inf: it does not fit);
    ``base``: the recipe's config (``budget.probe`` its epoch)."""
    decided, widening = _decision(study, budget)
    until = time.time() + wait
    while not decided and time.time() < until:
        time.sleep(POLL)
        decided, widening = _decision(study, budget)
    baseline = space.baseline(base)
    recipe = baseline.get(WIDTH)
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
        augment = long_augmentation(space, base, images) if budget.rich and isinstance(recipe, int) else {}
        width, seconds = chosen or (recipe, budget.probe)
        _store(study, budget, Widening(recipe, width, budget.probe, seconds, augment) if chosen or augment else None)
        widening = stored_widening(study, budget)  # another command's, where two decided at once
    if widening is not None:
        budget.widening, budget.probe = widening, widening.seconds
        prior = getattr(study.sampler, "prior", None)
        if isinstance(prior, dict):  # the prior and budgeted samplers' centre: the recipe
            prior.update({name: value for name, value in widening.params().items() if name in prior})
    if isinstance(recipe, int):  # the recipe queued before the budget was known: changed, or as it was
        recipe_params = {p.name: baseline[p.name] for p in _augment_params(space).values() if p.name in baseline}
        changes = widening.params() if widening is not None else {WIDTH: recipe}
        _set_queued_recipe(study, {**recipe_params, **changes})


def _augment_params(space: Any) -> dict[str, Any]:
    """``space``'s parameters of LONG_AUGMENT's keys, by key."""
    keys = {key for key, _ in LONG_AUGMENT}
    return {p.key: p for p in space.params if p.section == "augment" and p.key in keys}


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


def _set_queued_recipe(study: optuna.Study, values: dict[str, Any]) -> None:
    """The recipe trial queued at the study's creation, not yet started, trains with
    ``values`` (a wider net or more augmentation, or the recipe's own again where an
    earlier budget changed them) wherever it fixes those params."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        fixed = t.system_attrs.get("fixed_params")
        if not TrialRecord.of(t).baseline or not isinstance(fixed, dict):
            continue
        changed = {name: value for name, value in values.items() if name in fixed and fixed[name] != value}
        if changed and get_trial(study, t).state == TrialState.WAITING:  # not taken by a worker meanwhile
            set_fixed_params(study, t, {**fixed, **changed})
