"""Samplers and pruners by name, and the sampler seed of a resumed or parallel run.

``prior`` (the default, ``search.study.prior``) draws around the recipe and the best
trial; the others are Optuna's own, set up for searches of tens of trials.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import optuna

from search.errors import UsageError

if TYPE_CHECKING:
    from search.study.settings import StudySettings

__all__ = ["DEFAULT_SAMPLER", "SAMPLERS", "DEFAULT_PRUNER", "PRUNERS", "make_sampler", "make_pruner", "sampler_seed"]


DEFAULT_SAMPLER = "prior"  # search.study.prior: draws around the recipe and the best trial (docs/benchmarks.md)


SAMPLERS = ("prior", "tpe", "random", "cmaes", "gp", "qmc", "nsga2")


# Successive halving from epoch 1 judged one-cycle and cosine schedules in their warm-up
# and pruned 17 of 19 trials (issue 11): the default prunes from a schedule's halfway point.
DEFAULT_PRUNER = "halfway"


PRUNERS = ("halfway", "median", "percentile", "successive_halving", "hyperband", "patient", "none")


def make_sampler(
    name: str,
    seed: int | None,
    settings: StudySettings | None = None,
    budget: Any = None,
    prior: dict[str, Any] | None = None,
) -> optuna.samplers.BaseSampler:
    """The sampler ``name``; the prior-guided one needs the study's ``settings`` (its
    space and base config), takes the ``budget`` plan of a budgeted run, and centres on
    ``prior`` params (a warm start's) over the space's own priors.  Any other sampler
    runs under a budget plan through ``search.study.budgeted.BudgetedSampler``."""
    sampler = _make_sampler(name, seed, settings, budget, prior)
    if budget is not None and not _is_prior(sampler):
        from search.study.budgeted import BudgetedSampler

        recipe = settings.space_obj.baseline(settings.config) if settings is not None else {}
        sampler = BudgetedSampler(sampler, budget, recipe)
    return sampler


def _is_prior(sampler: optuna.samplers.BaseSampler) -> bool:
    from search.study.prior import PriorSampler

    return isinstance(sampler, PriorSampler)


def _make_sampler(
    name: str,
    seed: int | None,
    settings: StudySettings | None = None,
    budget: Any = None,
    prior: dict[str, Any] | None = None,
) -> optuna.samplers.BaseSampler:
    if name == "prior" and settings is not None and settings.multi_objective:
        name = "tpe"  # the prior sampler ranks one value; a Pareto front needs a multi-objective sampler
    if name == "prior":
        from search.study.prior import PriorSampler

        if settings is None:
            return PriorSampler({}, [], seed=seed, budget=budget)
        space, base = settings.space_obj, settings.config
        return PriorSampler({**space.priors(base), **(prior or {})}, space.changeable(base), seed=seed, budget=budget)
    if name == "tpe":
        # multivariate + group: model the interactions (optimizer x learning rate) and
        # the conditional parameters; constant_liar keeps parallel workers apart.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=8
            )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError as e:
            raise UsageError("sampler 'cmaes' needs the cmaes package: pip install cmaes") from e
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        try:
            import torch  # noqa: F401
        except ImportError as e:
            raise UsageError("sampler 'gp' needs PyTorch: pip install torch (or choose --sampler tpe)") from e
        return optuna.samplers.GPSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if name == "nsga2":
        # Generations of 20 trials: searches here run tens of trials, not thousands.
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    raise UsageError(f"unknown sampler {name!r}; use one of {', '.join(SAMPLERS)}")


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    """Pruners compare epochs (step = epochs completed); none prunes in the first epoch."""
    if name == "halfway":
        # The median of other trials at the same epoch, from the schedule's halfway point:
        # a one-cycle or cosine run is annealing by then, no longer warming up.
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=max(1, max_epochs // 2))
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(25.0, n_startup_trials=4, n_warmup_steps=1)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 1), reduction_factor=3)
    if name == "patient":
        return optuna.pruners.PatientPruner(
            optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1), patience=2
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UsageError(f"unknown pruner {name!r}; use one of {', '.join(PRUNERS)}")


def sampler_seed(seed: int, done: int, worker: int | None = None) -> int:
    """The sampler seed of a (resumed) run: offset by the trials done, distinct per worker.

    One process keeps ``seed + done``; parallel workers each get their own stream, so
    they do not all propose the same start-up trials.
    """
    if worker is None:
        return seed + done
    import numpy as np

    return int(np.random.SeedSequence([seed, done, worker]).generate_state(1)[0])
