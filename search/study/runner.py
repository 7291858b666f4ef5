"""What every search process builds: ``build_objective`` (what each worker process builds
once it has the data; importable from here by spawned workers) and ``with_recipe`` (a
new study's base config).  The search itself is set up in ``search.study.setup``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from search.core.config import CustomModelConfig
from search.study.budget import BudgetPlan
from search.study.settings import StudySettings

if TYPE_CHECKING:
    from search.core.data import Dataset
    from search.study.trial import Objective

__all__ = ["build_objective", "with_recipe", "tracking_uri", "BUDGET_MAX_EPOCHS"]

BUDGET_MAX_EPOCHS = 100  # a budgeted search's longest schedule when ``epochs`` is not given


def build_objective(
    settings: StudySettings,
    data: Dataset,
    artifact_dir: Path | None = None,
    budget: BudgetPlan | None = None,
    tensorboard: str | None = None,
    mlflow: str | None = None,
) -> Objective:
    """The objective for ``settings`` on ``data``; workers call it after loading the data.
    With a ``budget``, each trial's epochs are planned (its ``epochs`` param) and the
    running trial stops at the deadline.  With ``tensorboard`` (a folder) or ``mlflow`` (a
    tracking URI) each trial logs its run there (``search.core.tensorboard``,
    ``search.study.tracking``)."""
    from search.study.trial import Objective

    return Objective(
        settings.space_obj,
        data,
        settings.config,
        direction=settings.direction,
        artifact_dir=artifact_dir,
        objectives=settings.objectives,
        deadline=budget.deadline if budget else None,
        epochs=(1, budget.max_epochs) if budget else None,
        checkpoint_dir=artifact_dir / "checkpoints" if artifact_dir is not None and budget is not None else None,
        max_params=settings.max_params,
        tensorboard=tensorboard,
        mlflow=mlflow,
    )


def with_recipe(settings: StudySettings, data: Dataset) -> StudySettings:
    """A new study's settings with the default recipe for ``data`` as the base config
    (keeping the study's data, split, epochs, monitor and seed)."""
    from search.core.recipe import DataShape, recipe

    base = recipe(
        DataShape.of(data, settings.dataset), settings.config.data, epochs=settings.epochs, seed=settings.seed
    )
    train = dataclasses.replace(base.train, monitor=settings.monitor)
    if isinstance(settings.config.model, CustomModelConfig):  # the user's model, trained with the recipe's training
        return dataclasses.replace(settings, config=base.replace(train=train, model=settings.config.model))
    return dataclasses.replace(settings, config=base.replace(train=train))


def tracking_uri(uri: str) -> str:
    """``uri`` with a plain folder made a ``file://`` URI (absolute, so workers agree)."""
    if "://" in uri:
        return uri
    return Path(uri).expanduser().resolve().as_uri()
