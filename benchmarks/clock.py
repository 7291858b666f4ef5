"""The Keras callback that ends a tool's budget: the same for every tool."""

from __future__ import annotations

import keras

from benchmarks.record import BudgetSpent, Recorder

__all__ = ["BudgetClock"]


class BudgetClock(keras.callbacks.Callback):
    """Ends the running trial at its first training batch after the budget, and counts
    the epochs that ended within it.

    It raises ``error`` (``BudgetSpent`` or a subclass a tool needs, such as one that
    KerasTuner lets through) from ``on_train_batch_begin``, which Keras calls
    synchronously without waiting for a batch's logs, so the clock adds no per-step
    synchronization, and no step, validation pass or graph tracing runs after the
    budget.  Reusable across trials: it keeps no per-trial state.
    """

    def __init__(self, recorder: Recorder, error: type[BudgetSpent] = BudgetSpent) -> None:
        super().__init__()
        self.recorder = recorder
        self.error = error

    def on_train_batch_begin(self, batch, logs=None):
        if self.recorder.over_budget():
            self.recorder.trial_cut()
            raise self.error(f"the budget of {self.recorder.budget:g}s is spent")

    def on_epoch_end(self, epoch, logs=None):
        self.recorder.epoch_done()
