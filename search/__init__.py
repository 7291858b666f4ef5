"""cnn-search: Optuna hyperparameter search for Keras image classifiers.

The public API: a run config describes a training run; a space samples configs from a
trial; ``build_model`` and ``fit`` turn a config into a trained Keras model without
Optuna; ``train_final`` trains an exported config to a saved, evaluated model and
``load_model`` reads it back; ``decode`` turns a text model's output into strings;
``default_recipe`` is the default run config for a dataset's shape, ``PriorSampler`` the
sampler that searches around it, ``BudgetPlan`` a budgeted search's plan.  ``run_search``
runs a whole search from Python (``from_arrays`` makes a dataset of NumPy arrays).
Heavy modules (TensorFlow) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from search.core.config import (
    AugmentConfig,
    CNNConfig,
    DataConfig,
    OptimizerConfig,
    ResNetConfig,
    RunConfig,
    ScheduleConfig,
    TrainConfig,
)
from search.core.space_files import builtin_spaces, load_space
from search.core.spaces import Space
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

__version__ = "0.1.0"

# name -> module, imported on first access so ``import search`` stays light
_LAZY = {
    "load_dataset": "search.core.data",
    "Dataset": "search.core.data",
    "build_model": "search.core.models",
    "build_for_data": "search.core.training",
    "fit": "search.core.training",
    "FitResult": "search.core.training",
    "Objective": "search.study.trial",
    "TrialReporter": "search.study.pruning",
    "train_final": "search.final.train",
    "load_model": "search.final.train",
    "FinalResult": "search.final.train",
    "Export": "search.reporting.export",
    "read_export": "search.reporting.export",
    "decode": "search.core.textdata",
    "default_recipe": "search.core.recipe",  # not "recipe": that name is the module search.core.recipe
    "DataShape": "search.core.recipe",
    "PriorSampler": "search.study.prior",
    "BudgetPlan": "search.study.budget",
    "run_search": "search.api",
    "from_arrays": "search.core.data",
    "from_tf_data": "search.core.tfdata",
    "compile_model": "search.core.training",
    "parse_budget": "search.study.budgets",
}

__all__ = [
    "AugmentConfig",
    "CNNConfig",
    "DataConfig",
    "OptimizerConfig",
    "ResNetConfig",
    "RunConfig",
    "ScheduleConfig",
    "TrainConfig",
    "CnnSearchError",
    "ConfigError",
    "DataError",
    "DivergedError",
    "MetricNotFoundError",
    "ResourceError",
    "SearchInterrupted",
    "SpaceError",
    "StorageError",
    "TrialError",
    "TrialInterrupted",
    "UsageError",
    "Space",
    "builtin_spaces",
    "load_space",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")
