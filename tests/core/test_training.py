from __future__ import annotations

import keras
import pytest

from search.core.config import CNNConfig, OptimizerConfig, RunConfig, TrainConfig
from search.core.training import METRICS, NanGuard, fit, keras_session, probe_epoch_seconds
from search.errors import DivergedError, ResourceError

TINY = RunConfig(
    model=CNNConfig(blocks=2, convs_per_block=1, base_filters=8, dense_units=32),
    train=TrainConfig(epochs=2, batch_size=64),
)


def test_fit_logs_every_metric_per_epoch_and_learns(digits):
    config = TINY.replace(
        model=CNNConfig(
            blocks=2, convs_per_block=1, base_filters=8, dense_units=32, block_dropout=0.0, head_dropout=0.0
        ),
        optimizer=OptimizerConfig(learning_rate=3e-3),
        train=TrainConfig(epochs=4, batch_size=32),
    )
    with keras_session():
        result = fit(config, digits)
    assert set(result.history) >= {*METRICS, *(f"val_{m}" for m in METRICS)}
    assert len(result.history["val_accuracy"]) == 4 == result.epochs_run
    assert result.history["val_accuracy"][-1] > 0.8  # chance is 0.1
    assert result.params == result.model.count_params() > 0


def test_same_seed_same_history(digits):
    runs = []
    for _ in range(2):
        with keras_session():
            runs.append(fit(TINY, digits).history["val_loss"])
    assert runs[0] == pytest.approx(runs[1], rel=1e-4)


def test_nan_loss_raises_diverged(digits):
    wild = TINY.replace(
        # ELU overflows to inf/NaN at this rate (ReLU units would die instead)
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
    with keras_session(), pytest.raises(DivergedError, match="diverged: .*loss became"):
        fit(wild, digits)


def test_fit_and_the_probe_refuse_a_model_over_max_params_alike_and_the_probe_times_one_that_fits(digits):
    with keras_session():
        params = fit(TINY.replace(train=TrainConfig(epochs=1, batch_size=64)), digits).params
    for run in (
        lambda: fit(TINY, digits, max_params=params - 1),
        lambda: probe_epoch_seconds(TINY, digits, 4, params - 1),
    ):
        with keras_session(), pytest.raises(ResourceError) as caught:
            run()
        assert str(caught.value) == f"the model has {params:,} parameters, over --max-params {params - 1:,}"
    assert probe_epoch_seconds(TINY, digits, steps=4, max_params=params) > 0


def test_nan_guard_stops_at_the_first_bad_batch():
    guard = NanGuard()
    guard.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    guard.model.stop_training = False  # as fit() sets it
    guard.on_epoch_begin(2)
    guard.on_train_batch_end(0, {"loss": 1.5})
    assert guard.reason is None and not guard.model.stop_training
    guard.on_train_batch_end(6, {"loss": float("inf")})
    assert guard.reason == "diverged: training loss became inf at epoch 3, batch 7"
    assert guard.model.stop_training


class _Images(keras.callbacks.Callback):
    """Counts the training batches of a run."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def test_train_on_val_uses_more_images(digits):
    import math

    config = TINY.replace(train=TrainConfig(epochs=1, batch_size=16))
    plain, more = _Images(), _Images()
    with keras_session():
        fit(config, digits, [plain], validate=False)
        result = fit(config, digits, [more], validate=False, train_on_val=True)
    assert "val_loss" not in result.history and len(result.history["loss"]) == 1
    assert plain.batches == math.ceil(len(digits.x_train) / 16)
    assert more.batches == math.ceil((len(digits.x_train) + len(digits.x_val)) / 16) > plain.batches


def test_a_config_that_says_no_weight_decay_gets_none():
    from search.core.training import make_optimizer

    assert make_optimizer(OptimizerConfig("adamw", weight_decay=0.0), 1e-3).weight_decay == 0.0  # was 0.004, hidden
    assert make_optimizer(OptimizerConfig("adamw", weight_decay=5e-4), 1e-3).weight_decay == pytest.approx(5e-4)


class _Rates(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.rates: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def test_a_paced_run_spans_its_schedule_over_the_time_given_and_stops_then(digits):
    import time

    from search.core.config import ScheduleConfig

    config = TINY.replace(
        optimizer=OptimizerConfig("sgd", learning_rate=0.01, momentum=0.9, nesterov=True),
        schedule=ScheduleConfig(name="one_cycle", max_lr_factor=10.0),
        train=TrainConfig(epochs=2, batch_size=64),  # sizes the schedule only: the clock decides
    )
    rates = _Rates()
    start = time.time()
    with keras_session():
        # 10 s: a loaded machine's first epoch (tracing included) has taken 3.5 s of them
        result = fit(config, digits, callbacks=[rates], until=start + 10.0)
    took = time.time() - start
    longest = max(result.epoch_seconds)  # stopped at the first batch after 10 s, or at an epoch's end just before
    assert 10.0 - longest / 2 <= took < 10.0 + 2 * longest
    assert result.epochs_run > 2  # as many as fit in the time, not the 2 that sized the schedule
    peak = rates.rates.index(max(rates.rates))
    assert 0 < peak < len(rates.rates) - 1  # warmed up, then annealed, by the clock
    assert max(rates.rates) == pytest.approx(0.1, rel=0.1) and rates.rates[-1] < 0.01


def test_a_run_continues_from_kept_weights_and_starts_anew_from_another_models(digits, tmp_path):
    config = TINY.replace(train=TrainConfig(batch_size=32, epochs=2))
    with keras_session():
        first = fit(config, digits)
        first.model.save_weights(tmp_path / "kept.weights.h5")
        start = first.model.evaluate(digits.x_val, keras.utils.to_categorical(digits.y_val, 10), verbose=0)[1]
    with keras_session():
        one = config.replace(train=TrainConfig(batch_size=32, epochs=1, monitor="val_accuracy"))
        scratch = fit(one, digits)
    with keras_session():
        continued = fit(one, digits, initial_weights=str(tmp_path / "kept.weights.h5"))
    assert continued.continued and not scratch.continued
    assert continued.history["val_accuracy"][0] > scratch.history["val_accuracy"][0]  # it kept what it had learned
    assert start > scratch.history["val_accuracy"][0]
    wider = config.replace(model=CNNConfig(blocks=1, convs_per_block=1, base_filters=8, dense_units=0))
    with keras_session():
        anew = fit(wider.replace(train=one.train), digits, initial_weights=str(tmp_path / "kept.weights.h5"))
    assert not anew.continued and anew.epochs_run == 1  # another model's weights: trained from the initializer's draw


def test_an_ema_run_validates_the_weights_average_and_ends_with_it(digits):
    """With ``optimizer.ema`` validation sees the weights' moving average and the model ends with it: at a
    momentum of 0.999 over 144 steps the average is still mostly the initializer's draw."""
    import numpy as np

    from search.errors import ConfigError

    base = TINY.replace(
        model=CNNConfig(
            blocks=2, convs_per_block=1, base_filters=8, dense_units=32, block_dropout=0.0, head_dropout=0.0
        ),
        train=TrainConfig(epochs=4, batch_size=32),
    )
    labels = keras.utils.to_categorical(digits.y_val, 10)
    runs = {}
    for ema in (0.0, 0.999):
        with keras_session():
            result = fit(base.replace(optimizer=OptimizerConfig(learning_rate=3e-3, ema=ema)), digits)
            runs[ema] = (result, result.model.evaluate(digits.x_val, labels, verbose=0)[1])
    plain, averaged = runs[0.0], runs[0.999]
    assert plain[0].history["val_accuracy"][-1] > 0.8
    assert averaged[0].history["val_accuracy"][-1] < 0.6  # the average, not the weights trained
    assert averaged[1] == pytest.approx(averaged[0].history["val_accuracy"][-1], abs=0.01)  # the model is the average
    assert plain[1] == pytest.approx(plain[0].history["val_accuracy"][-1], abs=0.01)
    assert np.isfinite(averaged[0].history["loss"]).all()
    with pytest.raises(ConfigError, match=r"optimizer\.ema"):
        OptimizerConfig(ema=1.0)
