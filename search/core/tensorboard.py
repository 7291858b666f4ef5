"""Each trial in TensorBoard (``search --tensorboard DIR``): one run folder a trial,
``DIR/trial-0007``, with its epoch scalars (loss, accuracy, learning rate) in ``train/`` and
``validation/`` and its hyperparameters for the HParams dashboard, written and flushed at
every epoch end, so TensorBoard shows a running search as it goes:

    tensorboard --logdir DIR

The scalar names are Keras' own (``epoch_loss``, ``epoch_accuracy``,
``epoch_learning_rate``), so a search's runs sit beside runs logged by
``keras.callbacks.TensorBoard``.  The HParams summary needs the ``tensorboard`` package
(``pip install -e ".[tensorboard]"``); the search checks for it before it starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

__all__ = ["TensorBoardLog", "run_folder", "with_learning_rate"]


def with_learning_rate(model: keras.Model, logs: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of an epoch's ``logs`` with the optimizer's current ``learning_rate`` where
    Keras left it out (what both the TensorBoard and the MLflow logs record)."""
    logs = dict(logs or {})
    if "learning_rate" not in logs and getattr(model, "optimizer", None) is not None:
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    return logs


def run_folder(root: str | Path, trial_number: int) -> Path:
    return Path(root) / f"trial-{trial_number:04d}"


class TensorBoardLog(keras.callbacks.Callback):
    """Writes one trial's run folder: ``hparams()`` (its plain values: numbers, strings,
    booleans) once at the start, then every epoch's metrics and learning rate."""

    def __init__(self, folder: str | Path, hparams: Callable[[], dict[str, Any]], trial_id: str) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.hparams = hparams  # read when training starts: a trial's params are drawn by then
        self.trial_id = trial_id
        self._writers: dict[str, Any] = {}

    def _writer(self, name: str):
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(str(self.folder / name) if name else str(self.folder))
        return self._writers[name]

    def on_train_begin(self, logs=None):
        from tensorboard.plugins.hparams import api as hp_api

        hparams = {k: v for k, v in self.hparams().items() if isinstance(v, (bool, int, float, str))}
        with self._writer("").as_default():
            hp_api.hparams(hparams, trial_id=self.trial_id)
        self._writer("").flush()

    def on_epoch_end(self, epoch, logs=None):
        logs = with_learning_rate(self.model, logs)
        rate = logs.pop("learning_rate", None)
        split: dict[str, dict[str, float]] = {"train": {}, "validation": {}}
        for key, value in logs.items():
            where = "validation" if key.startswith("val_") else "train"
            split[where][f"epoch_{key.removeprefix('val_')}"] = float(value)
        if rate is not None:
            split["train"]["epoch_learning_rate"] = float(rate)
        for name, scalars in split.items():
            if not scalars:
                continue
            with self._writer(name).as_default():
                for tag, value in scalars.items():
                    tf.summary.scalar(tag, value, step=epoch)
            self._writer(name).flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
