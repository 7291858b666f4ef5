from __future__ import annotations

import keras
import optuna

from search.core.config import CNNConfig, RunConfig, TrainConfig
from search.core.spaces import Space
from search.study.trial import Objective

TINY = RunConfig(
    model=CNNConfig(blocks=1, convs_per_block=1, base_filters=8, dense_units=16), train=TrainConfig(epochs=2)
)


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


class EpochCounter(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


def test_extra_callbacks_see_every_epoch_even_the_pruned_one(digits):
    counter = EpochCounter()
    objective = Objective(Space("fixed", ()), digits, TINY, callbacks=[counter])
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    study.optimize(objective, n_trials=2)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.PRUNED] * 2
    assert counter.epochs == 2  # one epoch per pruned trial, each seen by the extra callback


def test_several_objectives_return_metric_params_and_latency(digits):
    objective = Objective(
        Space("fixed", ()), digits, TINY.replace(train=TrainConfig(epochs=1)), objectives="accuracy,params,latency"
    )
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"], pruner=AlwaysPrune())
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE  # a pruner is never asked
    accuracy, params, latency = trial.values
    assert accuracy == trial.user_attrs["history"]["val_accuracy"][0]
    assert params == trial.user_attrs["params_count"] > 0
    assert latency == trial.user_attrs["latency_ms"] > 0
    assert trial.user_attrs["latency_measured"]["batch"] == min(32, len(digits.x_val))
    assert trial.intermediate_values == {}


def test_a_diverging_trial_of_a_multi_objective_study_fails_at_once(digits):
    from search.core.config import OptimizerConfig

    wild = TINY.replace(  # as in test_training: ELU overflows at this rate
        model=CNNConfig(
            blocks=1,
            convs_per_block=1,
            base_filters=8,
            batch_norm=False,
            dense_units=32,
            activation="elu",
            initializer="glorot_uniform",
        ),
        optimizer=OptimizerConfig("sgd", learning_rate=10.0, momentum=0.99),
        train=TrainConfig(epochs=3, batch_size=16),
    )
    from search.study.recovery import StopRequest
    from search.study.trial import TrialRunner

    objective = Objective(Space("fixed", ()), digits, wild, objectives="accuracy,params")
    study = optuna.create_study(directions=["maximize", "minimize"])
    TrialRunner(objective, StopRequest()).run_one(study)  # a TrialError fails the trial, and the study goes on
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.FAIL and trial.values is None
    assert trial.user_attrs["fail_reason"].startswith("diverged: ")
    assert "diverged" in trial.user_attrs["diagnosis"]
