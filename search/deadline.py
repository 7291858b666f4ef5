"""The Keras callback that ends a budgeted search's trials on time (see ``search.budget``)."""

from __future__ import annotations

import time

import keras

__all__ = ["Deadline"]


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
        if self.project and self.reason is None and epoch == 1 and remaining > 0 and now + remaining * (now - self._epoch_start) > self.deadline:
            self.reason = (f"would not finish its {epochs} epochs before the deadline "
                           f"({now - self._epoch_start:.0f}s an epoch, {self.deadline - now:.0f}s left)")
            self.model.stop_training = True
