"""KerasTuner Hyperband and BayesianOptimization on the benchmark's space and budget.

The hypermodel declares the space (``kt_space.declare``), turns the trial's values into a
run config and builds, compiles and feeds the model with cnn-search's own functions, so
the architectures, optimizers, schedules and input pipelines are those of every other
tool; only the search differs.

KerasTuner has no wall-clock budget, so the tuner subclass enforces it:
``pre_create_trial`` (called before the oracle creates each trial) raises
``TunerBudgetSpent`` once the budget is spent, and the ``BudgetClock`` callback raises
it in the trial running when the budget ends.  It is a ``keras_tuner.errors.FatalError``,
which KerasTuner re-raises out of ``search`` instead of recording a failed trial.
``on_trial_end`` reports each finished trial's status and score to the recorder.

The tuners keep KerasTuner's defaults except where a default would end the search
before the budget: Hyperband runs up to ``hyperband_iterations=1000`` sweeps and
Bayesian optimization up to ``max_trials=100000``.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import keras_tuner

from benchmarks.clock import BudgetClock
from benchmarks.kt_space import config_from_values, declare
from benchmarks.record import BudgetSpent, Recorder
from benchmarks.tools import MONITOR, Bench
from search.core.config import RunConfig
from search.core.pipeline import TensorCache, make_pipeline
from search.core.schedules import make_schedule
from search.core.training import compile_model

__all__ = ["TunerBudgetSpent", "SpaceHyperModel", "search"]

KT_STATES = {"COMPLETED": "complete", "FAILED": "failed", "INVALID": "failed"}


class TunerBudgetSpent(BudgetSpent, keras_tuner.errors.FatalError):
    """The budget is spent: stop the search (KerasTuner re-raises fatal errors)."""


class SpaceHyperModel(keras_tuner.HyperModel):
    """Builds and trains the model a KerasTuner trial's values describe."""

    def __init__(self, bench: Bench, recorder: Recorder) -> None:
        super().__init__(name="cnn_search_space")
        self.bench = bench
        self.recorder = recorder
        self._builds = 0

    def config(self, hp: keras_tuner.HyperParameters) -> RunConfig:
        declare(hp, self.bench.space, self.bench.base)
        return config_from_values(hp.values, self.bench.space, self.bench.base)

    def _steps(self, config: RunConfig) -> int:
        return math.ceil(len(self.bench.data.x_train) / config.train.batch_size)

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        config = self.config(hp)
        self._builds += 1
        keras.utils.set_random_seed(config.seed + self._builds)
        lr, _ = make_schedule(
            config.schedule, config.optimizer.learning_rate, self._steps(config), config.train.epochs, monitor=MONITOR
        )
        return compile_model(config, self.bench.data, lr)

    def fit(self, hp: keras_tuner.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any):
        config = self.config(hp)
        data = self.bench.data
        x, y = TensorCache.get(data, data.x_train, data.y_train)
        train = make_pipeline(
            x, y, data.num_classes, config.train.batch_size, shuffle=True, seed=config.seed, augment=config.augment
        )
        xv, yv = TensorCache.get(data, data.x_val, data.y_val)
        val = make_pipeline(xv, yv, data.num_classes, max(config.train.batch_size, 256), shuffle=False, seed=0)
        _, schedule_callbacks = make_schedule(
            config.schedule, config.optimizer.learning_rate, self._steps(config), config.train.epochs, monitor=MONITOR
        )
        # the clock first: KerasTuner's own callbacks follow in kwargs["callbacks"]
        callbacks = [BudgetClock(self.recorder, TunerBudgetSpent), *schedule_callbacks, *kwargs.pop("callbacks", [])]
        kwargs.setdefault("epochs", config.train.epochs)
        kwargs.setdefault("verbose", 0)
        return model.fit(train, validation_data=val, callbacks=callbacks, shuffle=False, **kwargs)


def _budgeted(tuner_cls: type) -> type:
    class Budgeted(tuner_cls):  # type: ignore[misc, valid-type]
        def __init__(self, recorder: Recorder, bench: Bench, **kwargs: Any) -> None:
            self.recorder = recorder
            self.bench = bench
            super().__init__(**kwargs)

        def pre_create_trial(self) -> None:
            if self.recorder.over_budget():
                raise TunerBudgetSpent(f"the budget of {self.recorder.budget:g}s is spent")

        def on_trial_end(self, trial) -> None:
            super().on_trial_end(trial)
            done = self.oracle.get_trial(trial.trial_id)
            values = dict(done.hyperparameters.values)
            self.recorder.trial_done(
                KT_STATES.get(done.status, "failed"),
                done.score,
                lambda: config_from_values(values, self.bench.space, self.bench.base),
            )

    Budgeted.__name__ = f"Budgeted{tuner_cls.__name__}"
    return Budgeted


BudgetedHyperband = _budgeted(keras_tuner.Hyperband)
BudgetedBayesian = _budgeted(keras_tuner.BayesianOptimization)


def search(kind: str, bench: Bench, recorder: Recorder) -> None:
    """Run KerasTuner ``kind`` ('hyperband' or 'bayesian') until the budget is spent."""
    common: dict[str, Any] = dict(
        recorder=recorder,
        bench=bench,
        hypermodel=SpaceHyperModel(bench, recorder),
        objective=keras_tuner.Objective(MONITOR, "max"),
        seed=bench.seed,
        directory=str(bench.workdir),
        project_name=f"{kind}-{bench.seed}",
        overwrite=True,
    )
    if kind == "hyperband":
        tuner = BudgetedHyperband(max_epochs=bench.base.train.epochs, factor=3, hyperband_iterations=1000, **common)
    elif kind == "bayesian":
        tuner = BudgetedBayesian(max_trials=100_000, **common)
    else:
        raise ValueError(f"kind: expected 'hyperband' or 'bayesian', received {kind!r}")
    try:
        tuner.search(epochs=bench.base.train.epochs, verbose=0)
    except BudgetSpent:
        pass
