from __future__ import annotations

import keras
import optuna

from search.config import CNNConfig, RunConfig, TrainConfig
from search.objective import Objective
from search.spaces import Space

TINY = RunConfig(model=CNNConfig(blocks=1, convs_per_block=1, base_filters=8, dense_units=16), train=TrainConfig(epochs=2))


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
    objective = Objective(Space("fixed", ()), digits, TINY, "val_accuracy", "maximize", callbacks=[counter])
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    study.optimize(objective, n_trials=2)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.PRUNED] * 2
    assert counter.epochs == 2  # one epoch per pruned trial, each seen by the extra callback
