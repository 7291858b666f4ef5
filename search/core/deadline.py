"""Keras callbacks that keep a budgeted search's trials on time (see ``search.study.budget``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import keras

__all__ = ["Deadline", "Pace", "StopCheck"]


class Deadline(keras.callbacks.Callback):
    """Stop training at ``deadline`` (``time.time()``); after the second epoch, stop a run
    that cannot finish its epochs in time (``reason`` says why)."""

    async_safe = True

    def __init__(self, deadline: float, project: bool = True) -> None:
        super().__init__()
        self.deadline = deadline
        self.project = project  # False: only the deadline stops the run
        self.reason: str | None = None
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        if time.time() >= self.deadline and self.reason is None:
            self.reason = "stopped at the budget's deadline; its finished epochs count"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        epochs = int(self.params.get("epochs") or 0)
        remaining = epochs - (epoch + 1)
        # Judged on the second epoch: the first one also builds and traces the model.
        if (
            self.project
            and self.reason is None
            and epoch == 1
            and remaining > 0
            and now + remaining * (now - self._epoch_start) > self.deadline
        ):
            self.reason = (
                f"would not finish its {epochs} epochs before the deadline "
                f"({now - self._epoch_start:.0f}s an epoch, {self.deadline - now:.0f}s left)"
            )
            self.model.stop_training = True


EPOCH_TAIL = 0.5  # Pace does not begin an epoch that would run past ``until`` by more than this share of it


class Pace(keras.callbacks.Callback):
    """Run a learning-rate schedule on the wall clock instead of the step count.

    The schedule's progress is the share of the time from the start of training to its
    end already spent: step ``progress * total_steps`` of ``schedule`` sets the rate
    before each batch, and training stops at the first batch that ends after the end
    (Keras still validates the epoch it stopped in).  The end is ``until``
    (``time.time()``) less the last validation pass's measured seconds (from the second
    pass on: the first also traces), so that the pass Keras runs after the stop ends by
    ``until``, however slow the machine is that day.  A budget's final run is planned
    from epoch times that can turn out longer (on a slower day, under load; on this
    project's CPU they took 1.4-1.7x the probe until the input pipelines stopped waiting
    for tf.data's autotuner, see docs/benchmarks/epoch-time.md): counted in steps, a
    schedule planned too long is cut before it anneals; counted in seconds, it anneals
    exactly at the deadline, however fast the epochs turn out (the budgeted-training idea
    of Li et al., ICLR 2020).  An epoch that would mostly run past the end is not begun.
    ``schedule`` None (a constant or plateau rate): only the stop."""

    def __init__(self, until: float, schedule=None, total_steps: int = 1) -> None:
        super().__init__()
        self._epoch_start = 0.0
        self.until = until
        self.schedule = schedule
        self.total_steps = max(1, int(total_steps))
        self.stopped = False
        self._start = 0.0
        self.validation_seconds = 0.0  # the last validation pass's, from the second on
        self._test_start = 0.0
        self._passes = 0

    @property
    def end(self) -> float:
        """When training stops: a validation pass before ``until``."""
        return self.until - self.validation_seconds

    def progress(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        return min(1.0, max(0.0, (now - self._start) / max(self.end - self._start, 1e-9)))

    def rate(self, progress: float) -> float:
        return float(keras.ops.convert_to_numpy(self.schedule(progress * self.total_steps)))

    def on_train_begin(self, logs=None):
        self._start = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()

    def on_test_begin(self, logs=None):
        self._test_start = time.time()

    def on_test_end(self, logs=None):
        self._passes += 1
        if self._passes > 1:  # the first pass also traces the model's test step: not what a pass costs
            self.validation_seconds = time.time() - self._test_start

    def on_epoch_end(self, epoch, logs=None):
        # An epoch that would end past the stop by more than half of it is not begun: its
        # validation comes after the stop, and the rate is near its floor by then.
        now = time.time()
        if not self.stopped and self.end - now < EPOCH_TAIL * (now - self._epoch_start):
            self.stopped = True
            self.model.stop_training = True

    def on_train_batch_begin(self, batch, logs=None):
        if self.schedule is not None:
            self.model.optimizer.learning_rate.assign(self.rate(self.progress()))

    def on_train_batch_end(self, batch, logs=None):
        if time.time() >= self.end and not self.stopped:
            self.stopped = True
            self.model.stop_training = True


class StopCheck(keras.callbacks.Callback):
    """Raise ``KeyboardInterrupt`` at the first batch after ``requested()`` turns true.

    The Ctrl-C/SIGTERM handler (``search.study.recovery.StopRequest``) raises it itself, but a
    signal that lands in a weakref callback or ``__del__`` is swallowed by Python; this
    check makes such a stop end the trial within one batch all the same."""

    def __init__(self, requested: Callable[[], bool]) -> None:
        super().__init__()
        self.requested = requested

    def on_train_batch_end(self, batch, logs=None):
        if self.requested():
            raise KeyboardInterrupt

    on_test_batch_end = on_train_batch_end
