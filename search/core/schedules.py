"""Learning-rate schedules from a ``ScheduleConfig``.

Per-step schedules are Keras ``LearningRateSchedule`` objects (serializable, so a saved
model reloads with its optimizer); ``plateau`` is a callback on a constant rate.
"""

from __future__ import annotations

import math

import keras

from search.core.config import ScheduleConfig, is_loss

__all__ = ["OneCycle", "TriangularCyclic", "StepDecay", "make_schedule"]


@keras.saving.register_keras_serializable(package="cnn_search")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Multiply the rate by ``factor`` every ``every_steps`` steps."""

    def __init__(self, base: float, factor: float, every_steps: int):
        self.base, self.factor, self.every_steps = float(base), float(factor), int(every_steps)

    def __call__(self, step):
        drops = keras.ops.floor(keras.ops.cast(step, "float32") / self.every_steps)
        return self.base * keras.ops.power(self.factor, drops)

    def get_config(self):
        return {"base": self.base, "factor": self.factor, "every_steps": self.every_steps}


@keras.saving.register_keras_serializable(package="cnn_search")
class TriangularCyclic(keras.optimizers.schedules.LearningRateSchedule):
    """Triangular cyclical rate (Smith 2017): linear from ``low`` to ``high`` and back."""

    def __init__(self, low: float, high: float, half_cycle_steps: int):
        self.low, self.high, self.half_cycle_steps = float(low), float(high), int(half_cycle_steps)

    def __call__(self, step):
        s = keras.ops.cast(step, "float32")
        cycle_pos = s / self.half_cycle_steps  # 0..1 rising, 1..2 falling
        frac = 1.0 - keras.ops.abs(keras.ops.mod(cycle_pos, 2.0) - 1.0)
        return self.low + (self.high - self.low) * frac

    def get_config(self):
        return {"low": self.low, "high": self.high, "half_cycle_steps": self.half_cycle_steps}


@keras.saving.register_keras_serializable(package="cnn_search")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One cycle (Smith & Topin 2018): warm up from ``low`` to ``high`` over 30% of the
    steps, then cosine-anneal to ``low / 100``."""

    def __init__(self, low: float, high: float, total_steps: int, warmup_fraction: float = 0.3):
        self.low, self.high = float(low), float(high)
        self.total_steps, self.warmup_fraction = int(total_steps), float(warmup_fraction)

    def __call__(self, step):
        s = keras.ops.cast(step, "float32")
        warm = max(1.0, self.total_steps * self.warmup_fraction)
        rest = max(1.0, self.total_steps - warm)
        up = self.low + (self.high - self.low) * s / warm
        t = keras.ops.clip((s - warm) / rest, 0.0, 1.0)
        floor = self.low / 100.0
        down = floor + (self.high - floor) * 0.5 * (1.0 + keras.ops.cos(math.pi * t))
        return keras.ops.where(s < warm, up, down)

    def get_config(self):
        return {
            "low": self.low,
            "high": self.high,
            "total_steps": self.total_steps,
            "warmup_fraction": self.warmup_fraction,
        }


def make_schedule(
    cfg: ScheduleConfig, base_lr: float, steps_per_epoch: int, epochs: int, monitor: str = "val_loss"
) -> tuple[float | keras.optimizers.schedules.LearningRateSchedule, list[keras.callbacks.Callback]]:
    """Return the optimizer's learning rate (a float or a schedule) and any callbacks."""
    total = max(1, steps_per_epoch * epochs)
    peak = base_lr * cfg.max_lr_factor
    if cfg.name == "constant":
        return base_lr, []
    if cfg.name == "step":
        return StepDecay(base_lr, cfg.drop_factor, cfg.drop_every * steps_per_epoch), []
    if cfg.name == "cosine":
        return keras.optimizers.schedules.CosineDecay(base_lr, decay_steps=total, alpha=0.01), []
    if cfg.name == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            base_lr, decay_steps=steps_per_epoch, decay_rate=cfg.decay_rate
        ), []
    if cfg.name == "one_cycle":
        return OneCycle(base_lr, peak, total), []
    if cfg.name == "cyclic":
        return TriangularCyclic(base_lr, peak, cfg.cycle_epochs * steps_per_epoch), []
    if cfg.name == "plateau":
        mode = "min" if is_loss(monitor) else "max"
        plateau = keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, mode=mode, factor=cfg.drop_factor, patience=cfg.patience, min_lr=base_lr * 1e-4, verbose=0
        )
        return base_lr, [plateau]
    raise ValueError(f"schedule.name: unknown schedule {cfg.name!r}")
