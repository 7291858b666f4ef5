"""cnn-search: Optuna hyperparameter search for Keras image classifiers.

The public API: a run config describes a training run; a space samples configs from a
trial; ``build_model`` and ``fit`` turn a config into a trained Keras model without
Optuna; ``train_final`` trains an exported config to a saved, evaluated model and
``load_model`` reads it back; ``decode`` turns a text model's output into strings;
``default_recipe`` is the default run config for a dataset's shape, ``PriorSampler`` the
sampler that searches around it, ``BudgetPlan`` a budgeted search's plan.
Heavy modules (TensorFlow) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from search.config import (
    AugmentConfig,
    CNNConfig,
    DataConfig,
    OptimizerConfig,
    ResNetConfig,
    RunConfig,
    ScheduleConfig,
    TrainConfig,
)
from search.errors import (
    CnnSearchError,
    ConfigError,
    DataError,
    DivergedError,
    MetricNotFoundError,
    ResourceError,
    SearchInterrupted,
    SpaceError,
    StorageError,
    TrialError,
    TrialInterrupted,
    UsageError,
)
from search.spaces import Space, builtin_spaces, load_space

__version__ = "0.1.0"

# name -> module, imported on first access so ``import search`` stays light
_LAZY = {
    "load_dataset": "search.data",
    "Dataset": "search.data",
    "build_model": "search.models",
    "build_for_data": "search.training",
    "fit": "search.training",
    "FitResult": "search.training",
    "Objective": "search.objective",
    "TrialReporter": "search.pruning",
    "train_final": "search.final",
    "load_model": "search.final",
    "FinalResult": "search.final",
    "Export": "search.export",
    "read_export": "search.export",
    "decode": "search.textdata",
    "default_recipe": "search.recipe",  # not "recipe": that name is the module search.recipe
    "DataShape": "search.recipe",
    "PriorSampler": "search.prior",
    "BudgetPlan": "search.budget",
    "parse_budget": "search.budget",
}

__all__ = [
    "AugmentConfig", "CNNConfig", "DataConfig", "OptimizerConfig", "ResNetConfig", "RunConfig",
    "ScheduleConfig", "TrainConfig",
    "CnnSearchError", "ConfigError", "DataError", "DivergedError", "MetricNotFoundError", "ResourceError",
    "SearchInterrupted", "SpaceError", "StorageError", "TrialError", "TrialInterrupted", "UsageError",
    "Space", "builtin_spaces", "load_space",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")
