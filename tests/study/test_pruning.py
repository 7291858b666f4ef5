from __future__ import annotations

import optuna
import pytest

from search.core.config import CNNConfig, RunConfig, TrainConfig
from search.core.training import fit, keras_session
from search.errors import MetricNotFoundError
from search.study.pruning import TrialReporter

TINY = RunConfig(
    model=CNNConfig(blocks=1, convs_per_block=1, base_filters=8, dense_units=16), train=TrainConfig(epochs=3)
)


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_reporter_reports_each_epoch_and_records_history(digits):
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    reporter = TrialReporter(trial, "val_accuracy")
    with keras_session():
        fit(TINY, digits, callbacks=[reporter])
    frozen = study.trials[0]
    assert sorted(frozen.intermediate_values) == [1, 2, 3]
    assert frozen.user_attrs["history"]["val_accuracy"] == pytest.approx(list(frozen.intermediate_values.values()))
    assert len(frozen.user_attrs["epoch_seconds"]) == 3 and frozen.user_attrs["params_count"] > 0


def test_pruned_trial_stops_after_one_epoch_with_a_reason(digits):
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    trial = study.ask()
    with keras_session(), pytest.raises(optuna.TrialPruned, match="pruned after epoch 1"):
        fit(TINY, digits, callbacks=[TrialReporter(trial, "val_accuracy")])
    assert list(study.trials[0].intermediate_values) == [1]


def test_the_runner_stores_the_pruned_state_and_the_reason(digits):
    from search.core.spaces import Space
    from search.study.recovery import StopRequest
    from search.study.trial import Objective, TrialRunner

    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    frozen = TrialRunner(Objective(Space("fixed", ()), digits, TINY), StopRequest()).run_one(study)
    assert frozen.state == optuna.trial.TrialState.PRUNED and frozen.value == frozen.intermediate_values[1]
    assert frozen.user_attrs["prune_reason"].startswith("pruned after epoch 1: val_accuracy=")


def test_missing_metric_is_an_error_listing_what_exists(digits):
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    with keras_session(), pytest.raises(MetricNotFoundError) as e:
        fit(TINY, digits, callbacks=[TrialReporter(trial, "val_acc")])
    assert "'val_acc' is not logged" in str(e.value) and "val_accuracy" in str(e.value)


def test_the_last_epoch_is_never_pruned(digits):
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    trial = study.ask()
    one_epoch = TINY.replace(train=TrainConfig(epochs=1))
    with keras_session():
        fit(one_epoch, digits, callbacks=[TrialReporter(trial, "val_accuracy")])  # no TrialPruned
    assert list(study.trials[0].intermediate_values) == [1]


def test_without_intermediate_values_the_reporter_records_history_only(digits):
    """A multi-objective study: Optuna's trial.report would raise; the reporter records the epochs."""
    study = optuna.create_study(directions=["maximize", "minimize"], pruner=AlwaysPrune())
    trial = study.ask()
    with keras_session():
        fit(
            TINY, digits, callbacks=[TrialReporter(trial, "val_accuracy", intermediate=False)]
        )  # neither raises nor prunes
    frozen = study.trials[0]
    assert frozen.intermediate_values == {}
    assert len(frozen.user_attrs["history"]["val_accuracy"]) == 3 and len(frozen.user_attrs["epoch_seconds"]) == 3
