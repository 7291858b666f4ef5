"""A search written by hand in the style of Optuna's Keras example
(optuna-examples, ``keras/keras_integration.py``): a TPE sampler and a median pruner
with their default settings, optuna-integration's ``KerasPruningCallback``, and a plain
``model.fit`` on numpy arrays with one-hot labels; the value is the last epoch's
validation accuracy (the example's ``model.evaluate`` on the validation data).

For a fair comparison it samples the benchmark's space and builds, compiles and
schedules models with cnn-search's functions, so every tool trains the same
architectures the same way.  Augmentation is what a Keras user would write: Keras'
preprocessing layers in front of the model, active in training only.  Everything else
the harness adds is absent: no tf.data pipeline, no storage, no failure handling.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import keras
import optuna
from optuna_integration import KerasPruningCallback

from search.core.config import AugmentConfig, RunConfig
from search.core.data import Dataset
from search.core.schedules import make_schedule
from search.core.spaces import Space
from search.core.training import build_for_data, compile_model

__all__ = ["augmentation_layers", "create_model", "search"]

MONITOR = "val_accuracy"


def augmentation_layers(cfg: AugmentConfig, shape: tuple[int, int, int]) -> list[keras.layers.Layer]:
    """Keras layers for the sampled augmentation: flips, reflected shifts, zero-padded shifts."""
    h, w = shape[:2]
    layers: list[keras.layers.Layer] = []
    if cfg.horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal"))
    if cfg.translate > 0:
        pad = max(1, round(cfg.translate * max(h, w)))
        layers.append(
            keras.layers.RandomTranslation(
                min(1.0, pad / h), min(1.0, pad / w), fill_mode="reflect", interpolation="nearest"
            )
        )
    if cfg.pad_crop > 0:  # pad-and-crop is a shift with zero borders
        p = cfg.pad_crop
        layers.append(
            keras.layers.RandomTranslation(
                min(1.0, p / h), min(1.0, p / w), fill_mode="constant", interpolation="nearest"
            )
        )
    return layers


def create_model(
    config: RunConfig, data: Dataset, steps_per_epoch: int
) -> tuple[keras.Model, list[keras.callbacks.Callback]]:
    """The compiled model and the schedule's callbacks (plateau needs one)."""
    model = build_for_data(config, data)
    augment = augmentation_layers(config.augment, data.input_shape)
    if augment:
        model = keras.Sequential([keras.Input(data.input_shape), *augment, model])
    lr, callbacks = make_schedule(
        config.schedule, config.optimizer.learning_rate, steps_per_epoch, config.train.epochs, monitor=MONITOR
    )
    return compile_model(config, data, lr, model), callbacks


def search(
    data: Dataset,
    space: Space,
    base: RunConfig,
    timeout: float | None = None,
    n_trials: int | None = None,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
    study_callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
) -> optuna.Study:
    """Run the hand-written search; ``extra_callbacks`` go to every ``model.fit``."""
    x_train, x_valid = data.x_train, data.x_val
    y_train = keras.utils.to_categorical(data.y_train, data.num_classes)
    y_valid = keras.utils.to_categorical(data.y_val, data.num_classes)

    def objective(trial: optuna.Trial) -> float:
        # Clear clutter from previous session graphs.
        keras.backend.clear_session()
        config = space.sample(trial, base)
        keras.utils.set_random_seed(base.seed + trial.number)
        steps = math.ceil(len(x_train) / config.train.batch_size)
        model, schedule_callbacks = create_model(config, data, steps)
        history = model.fit(
            x_train,
            y_train,
            validation_data=(x_valid, y_valid),
            shuffle=True,
            batch_size=config.train.batch_size,
            epochs=config.train.epochs,
            verbose=0,
            # extra callbacks first: they must see the epoch a trial is pruned at
            callbacks=[*schedule_callbacks, *extra_callbacks, KerasPruningCallback(trial, MONITOR)],
        )
        return float(history.history[MONITOR][-1])

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=base.seed), pruner=optuna.pruners.MedianPruner()
    )
    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=list(study_callbacks))
    return study
