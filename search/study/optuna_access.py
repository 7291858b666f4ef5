"""The one place that reaches into Optuna's private attributes.

Optuna (4.x, 5.0) names no public accessor for what these need, and each is stable
across the versions we support; keeping them here means one file to check when Optuna
changes, and ``tests/test_layout.py`` checks that no other module touches them:

- a study's storage (``study._storage``) and ids (``study._study_id``,
  ``trial._trial_id``): a sampler writes the plan onto the trial it is sampling, a
  worker claims the final run or fails another worker's trial, and reading one trial
  by number through the public ``study.trials`` would copy every trial of the study;
- a queued trial's ``fixed_params`` (the system attribute ``enqueue_trial`` writes): a
  rich budget widens the recipe trial queued before it knew the budget;
- ``BaseHeartbeat`` (``optuna.storages._heartbeat``): the interface a storage
  implements for heartbeats, which ``search.study.patient.PatientStorage`` forwards.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial

__all__ = [
    "BaseHeartbeat",
    "storage_of",
    "study_id",
    "trial_id",
    "get_trial",
    "trial_by_number",
    "set_trial_attr",
    "set_fixed_params",
]


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage the study was opened with."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    return study._study_id


def trial_id(trial: optuna.trial.BaseTrial | FrozenTrial) -> int:
    """A trial's id in its storage (a running ``Trial`` or a ``FrozenTrial``)."""
    return trial._trial_id


def get_trial(study: optuna.Study, trial: optuna.trial.BaseTrial | FrozenTrial) -> FrozenTrial:
    """The trial as the storage holds it now (not the copy the caller has)."""
    return storage_of(study).get_trial(trial_id(trial))


def trial_by_number(study: optuna.Study, number: int) -> FrozenTrial:
    """One trial of the study by its number, without copying the others."""
    storage = storage_of(study)
    return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id(study), number))


def set_trial_attr(study: optuna.Study, trial: optuna.trial.BaseTrial | FrozenTrial, key: str, value: Any) -> None:
    """Write a user attribute onto any trial of the study, also one the caller does not run."""
    storage_of(study).set_trial_user_attr(trial_id(trial), key, value)


def set_fixed_params(study: optuna.Study, trial: FrozenTrial, params: dict[str, Any]) -> None:
    """Change what a queued (waiting) trial will train: the params ``enqueue_trial`` fixed."""
    storage_of(study).set_trial_system_attr(trial_id(trial), "fixed_params", params)
