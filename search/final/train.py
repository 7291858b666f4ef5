"""Final training: rebuild a run config's model, train it, evaluate it on the test split.

By default the model trains for the config's epochs on train + validation (the search
is over; more data helps).  ``keep_val=True`` keeps the validation split apart, which
reproduces the trial (same seed, same epochs, same data: same numbers) and allows early
stopping.  Nothing here touches Optuna.

``train_final`` writes into ``out_dir`` (``FILES``):

* ``model.keras``: the Keras model, for further training; ``load_model`` reads it back
  in safe mode (plain ``keras.saving.load_model`` needs ``search.core.models`` and
  ``search.core.schedules`` imported first, for the custom layer and schedules);
* ``saved_model/``, ``model.tflite`` and ``labels.json``: the serving exports, which
  TensorFlow (or LiteRT) loads with no cnn-search installed, and what goes in and
  comes out (``search.final.serving``);
* ``metrics.json``: test loss and accuracy, scikit-learn's per-class precision, recall
  and F1, the confusion matrix (``search.final.evaluation``);
* ``confusion.png`` and ``mistakes.png`` (``search.core.figures``), ``curves.png``;
* ``history.json`` and ``config.json`` (the run config it trained, re-trainable).

On a text dataset ``accuracy`` is whole-string accuracy; ``metrics.json`` adds
``char_accuracy``, accuracy per position, a few predicted texts, and the ``alphabet``
and ``text_length`` that ``textdata.decode`` needs to turn the model's output into text;
the per-class report and the confusion matrix are then per character.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from search.core.config import RunConfig, is_loss
from search.core.data import Dataset, load_dataset
from search.core.figures import save_confusion, save_mistakes
from search.core.outputs import check_output_folder, is_model_folder, staged_folder
from search.core.plots import save_curves
from search.core.textdata import decode
from search.core.tfdata import from_tf_data, is_tf_data
from search.core.training import fit
from search.errors import UsageError
from search.final.evaluation import confidence, confident_mistakes, evaluate_test, test_metrics
from search.final.serving import LABELS, SAVED_MODEL, TFLITE, ModelInfo, write_serving
from search.reporting.export import Export

__all__ = ["FILES", "FinalResult", "train_final", "test_metrics", "load_model"]

FILES = (
    "model.keras",
    SAVED_MODEL,
    TFLITE,
    LABELS,
    "history.json",
    "metrics.json",
    "curves.png",
    "confusion.png",
    "mistakes.png",
    "config.json",
)
MISTAKES_SHOWN = 16


@dataclass
class FinalResult:
    model: keras.Model
    history: dict[str, list[float]]
    metrics: dict[str, Any]
    out_dir: Path
    notes: list[str] = field(default_factory=list)  # what could not be written, and why


def train_final(
    config: RunConfig,
    out_dir: str | Path,
    *,
    keep_val: bool = False,
    early_stopping: int | None = None,
    data: Dataset | None = None,
    source: dict[str, Any] | None = None,
    verbose: int = 0,
) -> FinalResult:
    """Train ``config`` and write the model, history, test metrics and curves into ``out_dir``.

    The validation split is the one ``config.data`` describes (a trial's config: the
    split that trial was judged on).  ``early_stopping`` (patience in epochs, validation
    kept only) stops on ``config.train.monitor`` and restores the best weights.
    ``source`` (an export's provenance) is copied into ``config.json``.  ``data``: a
    ``Dataset``, or ``tf.data`` pipelines as ``search.run_search`` takes them.
    """
    if data is not None and is_tf_data(data):  # a tf.data pipeline, or (train, validation[, test]) of them
        data = from_tf_data(*data) if isinstance(data, tuple) else from_tf_data(data)
    if early_stopping is not None:
        if not keep_val:
            raise UsageError("early stopping watches the validation split; add --keep-val (keep_val=True)")
        if early_stopping < 1:
            raise UsageError(f"early stopping patience must be at least 1 epoch, received {early_stopping}")
    monitor = config.train.monitor
    if keep_val and not monitor.startswith("val_"):
        monitor = f"val_{monitor}"
    out = Path(out_dir)
    check_output_folder(out, "--out", is_model_folder, "a model folder 'train' wrote")
    if data is None:  # first: a dataset that is not there leaves no empty --out folder behind
        data = load_dataset(config.data)
    with staged_folder(out) as stage:  # built aside, swapped in at the end: a crash leaves the old folder
        result = _train_into(stage, config, data, keep_val, early_stopping, monitor, source, verbose)
    return dataclasses.replace(result, out_dir=out)


def _train_into(
    out: Path,
    config: RunConfig,
    data: Dataset,
    keep_val: bool,
    early_stopping: int | None,
    monitor: str,
    source: dict[str, Any] | None,
    verbose: int,
) -> FinalResult:
    callbacks = []
    if early_stopping is not None:
        mode = "min" if is_loss(monitor) else "max"
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor, patience=early_stopping, mode=mode, restore_best_weights=True)
        )
    result = fit(config, data, callbacks, validate=keep_val, train_on_val=not keep_val, verbose=verbose)
    metrics: dict[str, Any] = {
        "trained_on": "train" if keep_val else "train+validation",
        "train_images": int(len(data.x_train) + (0 if keep_val else len(data.x_val))),
        "epochs_run": result.epochs_run,
        "params": result.params,
        "seed": config.seed,
        "split_seed": config.data.split_seed,
    }
    test = evaluate_test(result.model, data)
    metrics["test"] = test.metrics
    if data.text_length:  # what decode needs: search.core.textdata.decode(model.predict(x), metrics["alphabet"])
        metrics.update(alphabet=data.alphabet, text_length=data.text_length)
    if keep_val:
        metrics["validation"] = _validation_summary(result.history)
    result.model.save(out / "model.keras")
    notes = write_serving(result.model, out, ModelInfo.of(data))
    _write_json(
        out / "history.json", {"history": result.history, "epoch_seconds": [round(s, 3) for s in result.epoch_seconds]}
    )
    _write_json(out / "metrics.json", metrics)
    _write_json(out / "config.json", Export(config, {**(source or {}), "split_seed": config.data.split_seed}).to_dict())
    title = f"{_short_name(config.data.dataset)}: {result.model.name}, seed {config.seed}"
    save_curves(result.history, out / "curves.png", title=title)
    save_confusion(
        test.metrics["confusion_matrix"],
        data.class_names,
        out / "confusion.png",
        title=title,
        what="character" if data.text_length else "class",
    )
    _save_mistakes(data, test.probabilities, out / "mistakes.png", title)
    return FinalResult(result.model, result.history, metrics, out, notes)


def _short_name(dataset: str) -> str:
    """``folder:/a/long/path/cifar10-subset`` -> ``cifar10-subset``; names stay as they are."""
    kind, _, path = dataset.partition(":")
    return Path(path).name or dataset if kind in ("folder", "npz", "textfolder") else dataset


def _save_mistakes(data: Dataset, probabilities: np.ndarray, path: Path, title: str) -> None:
    """The most confidently wrong test images, with true and predicted label (or text)."""
    mistakes = confident_mistakes(data.y_test, probabilities)
    shown = mistakes[:MISTAKES_SHOWN]
    predicted = np.argmax(probabilities[shown], axis=-1)
    if data.text_length:
        truth, guesses = decode(data.y_test[shown], data.alphabet), decode(predicted, data.alphabet)
    else:
        truth = [data.class_names[i] for i in data.y_test[shown]]
        guesses = [data.class_names[i] for i in predicted]
    save_mistakes(
        data.x_test[shown],
        truth,
        guesses,
        confidence(probabilities[shown]).tolist(),
        path,
        pixel_max=data.pixel_max,
        total_wrong=len(mistakes),
        title=title,
        what="text" if data.text_length else "label",
    )


def load_model(path: str | Path) -> keras.Model:
    """Load a model saved by ``train_final`` (or any cnn-search model) in Keras' safe mode."""
    import search.core.models  # noqa: F401 - registers the custom layer
    import search.core.schedules  # noqa: F401 - registers the learning-rate schedules

    return keras.saving.load_model(path, safe_mode=True)


def _validation_summary(history: dict[str, list[float]]) -> dict[str, Any]:
    """Final and best validation values; ``best_accuracy`` is what a trial's value is."""
    acc, loss = history["val_accuracy"], history["val_loss"]
    best = int(np.argmax(acc))
    summary = {
        "accuracy": acc[-1],
        "loss": loss[-1],
        "best_accuracy": acc[best],
        "best_accuracy_epoch": best + 1,
        "best_loss": min(loss),
    }
    if "val_char_accuracy" in history:  # text: per-character accuracy, last and at the best epoch
        chars = history["val_char_accuracy"]
        summary.update(char_accuracy=chars[-1], best_epoch_char_accuracy=chars[best])
    return summary


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
