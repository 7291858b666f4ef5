"""A search from Python: ``run_search(data, space, ...)`` is what ``run_search.py`` runs,
with the checks and printing of the command line left to it.

The pieces are here too, shared with the ``search`` command: ``build_objective`` (what
each worker process builds once it has the data; importable from here, not from a
command module, by spawned workers) and ``with_recipe`` (a new study's base config).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.core.config import DataConfig
from search.core.space_files import load_space
from search.core.spaces import Space
from search.errors import UsageError
from search.study.budget import BudgetPlan
from search.study.budgets import parse_budget, study_budget
from search.study.objectives import check_objective_settings
from search.study.samplers import DEFAULT_SAMPLER
from search.study.settings import StudySettings, resolve_settings
from search.study.storage import (
    GRACE_FACTOR,
    check_study_name,
    check_writable,
    create_or_load,
    default_artifact_dir,
    default_storage,
    read_recorded,
)

if TYPE_CHECKING:
    import optuna

    from search.core.data import Dataset
    from search.study.trial import Objective

__all__ = ["run_search", "build_objective", "with_recipe", "BUDGET_MAX_EPOCHS"]

BUDGET_MAX_EPOCHS = 100  # a budgeted search's longest schedule when ``epochs`` is not given


def build_objective(
    settings: StudySettings, data: Dataset, artifact_dir: Path | None = None, budget: BudgetPlan | None = None
) -> Objective:
    """The objective for ``settings`` on ``data``; workers call it after loading the data.
    With a ``budget``, each trial's epochs are planned (its ``epochs`` param) and the
    running trial stops at the deadline."""
    from search.study.trial import Objective

    return Objective(
        settings.space_obj, data, settings.config, direction=settings.direction,
        artifact_dir=artifact_dir, objectives=settings.objectives,
        deadline=budget.deadline if budget else None, epochs=(1, budget.max_epochs) if budget else None,
        checkpoint_dir=artifact_dir / "checkpoints" if artifact_dir is not None and budget is not None else None,
    )


def with_recipe(settings: StudySettings, data: Dataset) -> StudySettings:
    """A new study's settings with the default recipe for ``data`` as the base config
    (keeping the study's data, split, epochs, monitor and seed)."""
    from search.core.recipe import DataShape, recipe

    base = recipe(DataShape.of(data, settings.dataset), settings.config.data, epochs=settings.epochs, seed=settings.seed)
    return dataclasses.replace(settings, config=base.replace(train=dataclasses.replace(base.train, monitor=settings.monitor)))


def _given(data: Any) -> Any:
    return data


def run_search(
    data: str | DataConfig | Dataset = "digits",
    space: str | Space = "cnn",
    *,
    study: str | None = None,
    storage: str | None = None,
    studies_dir: str | Path = "studies",
    trials: int | None = None,
    budget: float | str | None = None,
    timeout: float | None = None,
    epochs: int | None = None,
    seed: int = 0,
    monitor: str = "val_accuracy",
    objectives: str = "accuracy",
    sampler: str = DEFAULT_SAMPLER,
    pruner: str | None = None,
    baseline: bool = True,
) -> optuna.Study:
    """Run a search (or resume the study of that name) in this process; return the study.

    ``data``: a dataset spec (``"fashion_mnist"``, ``"folder:PATH"``, ...), a
    ``DataConfig``, or a ``Dataset`` already in memory (``search.core.data.from_arrays``
    makes one from NumPy arrays).  ``space``: a built-in space name, a TOML file, or a
    ``Space``.  ``budget`` (seconds, or ``"10m"``) is the whole search's wall clock, as
    ``--budget``; without it ``trials`` (default 20) and ``timeout`` bound the search.
    Every trial is stored in ``storage`` (default: ``studies/<study>.db``) as the command
    line stores it, so ``best``, ``export``, ``report`` and the dashboard read it.
    """
    from search.core.data import Dataset, load_dataset
    from search.study import placement, workers
    from search.study.recovery import reap_dead

    budget_s = parse_budget(str(budget)) if budget is not None else None
    if trials is not None and trials < 1:
        raise UsageError(f"trials must be at least 1, received {trials}")
    space_obj = space if isinstance(space, Space) else load_space(space)
    in_memory = data if isinstance(data, Dataset) else None
    data_cfg = DataConfig(data.name) if in_memory else (DataConfig(data) if isinstance(data, str) else data)
    requested: dict[str, Any] = dict(
        dataset=data_cfg.dataset, data_dir=data_cfg.data_dir, val_split=data_cfg.val_split,
        limit_train=data_cfg.limit_train, seed=seed, monitor=monitor, objectives=objectives,
        space=space_obj.to_dict(), sampler=sampler, pruner=pruner or ("none" if budget_s else None), baseline=baseline,
    )
    if epochs is not None:
        requested["epochs"] = epochs
    requested = {k: v for k, v in requested.items() if v is not None}
    name = check_study_name(study or f"{Path(data_cfg.dataset.split(':')[-1]).name}-{space_obj.name}")
    url = storage or default_storage(name, Path(studies_dir))
    check_writable(url)
    recorded = read_recorded(name, url)
    settings = resolve_settings(name, requested, recorded, StudySettings.of(dataset=data_cfg.dataset, baseline=True))
    settings = check_objective_settings(settings, requested)  # several objectives: a sampler that can, no pruner
    load_data = functools.partial(_given, in_memory) if in_memory is not None else functools.partial(load_dataset, settings.config.data)
    loaded = load_data()
    if recorded is None:
        settings = with_recipe(settings, loaded)
    handle = create_or_load(name, url, settings)
    reap_dead(handle, GRACE_FACTOR * settings.heartbeat)
    plan = None
    if budget_s:  # the study's running budget, if another command (or this one before a kill -9) started one
        plan, joined = study_budget(handle, budget_s, max_epochs=epochs or BUDGET_MAX_EPOCHS, capped=epochs is not None,
                                    sampler=settings.sampler)
        if joined:
            print(joined)
    deadlines = [d for d in (time.time() + timeout if timeout else None, plan.deadline if plan else None) if d]
    job = workers.SearchJob(
        study=name, url=url, settings=settings, trials=trials or (10**6 if budget_s else 20),
        deadline=min(deadlines) if deadlines else None, load_data=load_data,
        make_objective=functools.partial(build_objective, settings, artifact_dir=default_artifact_dir(name, url, Path(studies_dir)), budget=plan),
        budget=plan,
    )
    workers.run(job, placement.plan_workers(1, (), placement.available_cores(), False), loaded)
    return handle
