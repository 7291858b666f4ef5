"""Fit a model from a run config.  Knows nothing of Optuna: trials plug in callbacks.

``keras_session`` is the one place where Keras state is cleared after a run.
"""

from __future__ import annotations

import gc
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from search.core.config import METRICS, OptimizerConfig, RunConfig
from search.core.data import Dataset
from search.core.deadline import Pace
from search.core.models import STEM, InputStats, build_model, compile_metrics, whiten_stem
from search.core.pipeline import TensorCache, make_pipeline
from search.core.schedules import make_schedule
from search.errors import DivergedError, ResourceError

__all__ = [
    "FitResult",
    "NanGuard",
    "EpochTimer",
    "build_for_data",
    "make_optimizer",
    "fit",
    "keras_session",
    "probe_epoch_seconds",
    "METRICS",
]


PACED_EPOCHS_CAP = 100_000


@dataclass
class FitResult:
    model: keras.Model
    history: dict[str, list[float]]
    epoch_seconds: list[float]
    continued: bool = False  # it started from ``initial_weights``

    @property
    def params(self) -> int:
        return int(self.model.count_params())

    @property
    def epochs_run(self) -> int:
        return len(self.epoch_seconds)


class NanGuard(keras.callbacks.Callback):
    """Stop at the first NaN or infinite training loss and remember why."""

    async_safe = True  # checked on Keras' callback thread: no per-step sync of the loop

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if self.reason is None and loss is not None and not math.isfinite(float(loss)):
            self.reason = f"diverged: training loss became {float(loss)} at epoch {self._epoch + 1}, batch {batch + 1}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if self.reason is None and value is not None and not math.isfinite(float(value)):
                self.reason = f"diverged: {key} became {float(value)} at epoch {epoch + 1}"
                self.model.stop_training = True


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of each epoch, validation included."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def make_optimizer(cfg: OptimizerConfig, learning_rate) -> keras.optimizers.Optimizer:
    wd = cfg.weight_decay or None
    ema = {"use_ema": True, "ema_momentum": cfg.ema} if cfg.ema else {}
    if cfg.name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=wd, **ema)
    if cfg.name == "adam":
        return keras.optimizers.Adam(learning_rate, weight_decay=wd, **ema)
    if cfg.name == "adamw":  # 0 is 0: no hidden default
        return keras.optimizers.AdamW(learning_rate, weight_decay=cfg.weight_decay, **ema)
    if cfg.name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, momentum=cfg.momentum, weight_decay=wd, **ema)
    if cfg.name == "adagrad":
        return keras.optimizers.Adagrad(learning_rate, weight_decay=wd, **ema)
    raise ValueError(f"optimizer.name: unknown optimizer {cfg.name!r}")


def build_for_data(config: RunConfig, data: Dataset) -> keras.Model:
    """The model ``config`` describes, sized and normalized for ``data``."""
    stats = InputStats(data.pixel_max, data.mean, data.variance)
    model = build_model(
        config.model,
        data.input_shape,
        data.num_classes,
        config.data.normalization,
        stats,
        data.text_length,
        flip_tta=config.augment.predicts_flips,
    )
    if getattr(config.model, "stem", "none") == "whiten" and STEM in {layer.name for layer in model.layers}:
        whiten_stem(model, data.x_train)
    return model


def compile_model(
    config: RunConfig, data: Dataset, learning_rate: Any = None, model: keras.Model | None = None
) -> keras.Model:
    """The model ``config`` describes for ``data`` (or ``model``, built elsewhere),
    compiled the one way every run here compiles it: ``config``'s optimizer at
    ``learning_rate`` (a rate or a schedule; default the config's base rate), cross-entropy
    with the config's label smoothing, and the metrics of the data (``compile_metrics``)."""
    model = model if model is not None else build_for_data(config, data)
    rate = config.optimizer.learning_rate if learning_rate is None else learning_rate
    model.compile(
        optimizer=make_optimizer(config.optimizer, rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.train.label_smoothing),
        metrics=compile_metrics(bool(data.text_length)),
    )
    return model


def fit(
    config: RunConfig,
    data: Dataset,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    *,
    validate: bool = True,
    train_on_val: bool = False,
    verbose: int = 0,
    until: float | None = None,
    initial_weights: str | None = None,
    max_params: int | None = None,
) -> FitResult:
    """Build, compile and train the model ``config`` describes on ``data``.

    ``until`` (``time.time()``): a paced run (``search.core.deadline.Pace``): the learning-rate
    schedule spans the time until then instead of ``config.train.epochs`` epochs, which
    only size it; training stops then, however many epochs that is.

    ``initial_weights``: a ``.weights.h5`` file of the same model (a budgeted search's
    explore trial) to continue from instead of the initializer's draw; its schedule
    starts again from its warm-up (a warm restart, as SGDR's).

    Raises ``DivergedError`` when the loss stops being finite and ``ResourceError`` when
    the model does not fit in memory or has more than ``max_params`` parameters; both fail
    one trial, not the study.
    """
    keras.utils.set_random_seed(config.seed)
    x, y = TensorCache.get(data, data.x_train, data.y_train)
    if train_on_val:
        x = tf.concat([x, tf.convert_to_tensor(data.x_val)], axis=0)
        y = tf.concat([y, tf.convert_to_tensor(data.y_val)], axis=0)
    steps = math.ceil(int(x.shape[0]) / config.train.batch_size)
    lr, schedule_callbacks = make_schedule(
        config.schedule,
        config.optimizer.learning_rate,
        steps,
        config.train.epochs,
        monitor=config.train.monitor if validate else config.train.monitor.removeprefix("val_"),
    )
    epochs = config.train.epochs
    if until is not None:
        pace = Pace(
            until, lr if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule) else None, steps * epochs
        )
        lr = pace.rate(0.0) if pace.schedule is not None else lr  # a plain rate the pacer can set
        schedule_callbacks = [*schedule_callbacks, pace]
        epochs = PACED_EPOCHS_CAP  # the clock ends it, however many epochs fit
    model = compile_model(config, data, lr)
    _check_size(model, max_params)
    continued = False
    if initial_weights is not None:
        try:
            with warnings.catch_warnings():  # the optimizer's state starts anew: its warm-up restarts the schedule
                warnings.simplefilter("ignore", UserWarning)  # Keras' notes on optimizer and container state it skips
                model.load_weights(initial_weights)
            continued = True
        except (ValueError, OSError, KeyError):  # another model's file, or a damaged one: from the initializer's draw
            keras.utils.set_random_seed(config.seed)
            model = compile_model(config, data, lr)
    train_ds = make_pipeline(
        x, y, data.num_classes, config.train.batch_size, shuffle=True, seed=config.seed, augment=config.augment
    )
    val_ds = None
    if validate:
        xv, yv = TensorCache.get(data, data.x_val, data.y_val)
        val_ds = make_pipeline(xv, yv, data.num_classes, max(config.train.batch_size, 256), shuffle=False, seed=0)
    guard = NanGuard()
    # one epoch timer per run: a caller's (the trial reporter times epochs for the dashboard) or fit's own
    timer = next((c for c in callbacks if isinstance(c, EpochTimer)), None)
    own_timer = [] if timer is not None else [timer := EpochTimer()]
    # validation sees the weights' average; Keras' fit ends by writing it into the model
    averaged = [keras.callbacks.SwapEMAWeights()] if config.optimizer.ema else []
    with _out_of_memory(model, config.train.batch_size):
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=epochs,
            callbacks=[guard, *own_timer, *schedule_callbacks, *averaged, *callbacks],
            shuffle=False,  # the pipeline shuffles
            verbose=verbose,
        )
    if guard.reason:
        raise DivergedError(guard.reason)
    logs = {k: [float(v) for v in values] for k, values in history.history.items() if k != "learning_rate"}
    return FitResult(model, logs, timer.seconds, continued)


def _check_size(model: keras.Model, max_params: int | None) -> None:
    """``ResourceError`` for a model over ``--max-params``: it fails one trial (or, probed, does not fit)."""
    if max_params is not None and model.count_params() > max_params:
        raise ResourceError(f"the model has {model.count_params():,} parameters, over --max-params {max_params:,}")


@contextmanager
def _out_of_memory(model: keras.Model, batch_size: int) -> Iterator[None]:
    """Training ``model`` out of memory raises ``ResourceError``, with its size and batch."""
    try:
        yield
    except tf.errors.ResourceExhaustedError as e:
        raise ResourceError(f"out of memory with {model.count_params():,} parameters at batch size {batch_size}") from e


class _StepTimer(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def probe_epoch_seconds(config: RunConfig, data: Dataset, steps: int = 16, max_params: int | None = None) -> float:
    """Seconds an epoch of ``config`` on ``data`` takes, from the second half of a few
    timed training steps (the first ones build, trace, and are fed from batches the input
    pipeline prepared meanwhile, which hides its cost) plus a validation pass estimated at
    a third of a training step per image.  Costs a model build and
    ``steps`` steps: a budgeted search plans its first trial from it.  Raises
    ``ResourceError`` as ``fit`` does (over ``max_params``, out of memory)."""
    keras.utils.set_random_seed(config.seed)
    batch = config.train.batch_size
    with keras_session():
        model = compile_model(config, data)
        _check_size(model, max_params)
        x, y = TensorCache.get(data, data.x_train, data.y_train)
        ds = make_pipeline(x, y, data.num_classes, batch, shuffle=True, seed=config.seed, augment=config.augment)
        timer = _StepTimer()
        with _out_of_memory(model, batch):
            model.fit(ds.take(steps), epochs=1, callbacks=[timer], shuffle=False, verbose=0)
    late = timer.seconds[len(timer.seconds) // 2 :] or timer.seconds
    per_step = sum(late) / len(late)
    train_steps = math.ceil(len(data.x_train) / batch)
    return per_step * (train_steps + len(data.x_val) / batch / 3)


@contextmanager
def keras_session() -> Iterator[None]:
    """Run a block of Keras work, then clear Keras' global state and collect garbage."""
    try:
        yield
    finally:
        keras.backend.clear_session(free_memory=True)
        gc.collect()
