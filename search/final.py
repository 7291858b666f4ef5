"""Final training: rebuild a run config's model, train it, evaluate it on the test split.

By default the model trains for the config's epochs on train + validation (the search
is over; more data helps).  ``keep_val=True`` keeps the validation split apart, which
reproduces the trial (same seed, same epochs, same data: same numbers) and allows early
stopping.  Nothing here touches Optuna.

``train_final`` writes into ``out_dir``: ``model.keras`` (``load_model`` reads it back in
safe mode; plain ``keras.saving.load_model`` needs ``search.models`` and
``search.schedules`` imported first, for the custom layer and schedules),
``history.json``, ``metrics.json`` (test loss, accuracy, per-class accuracy, confusion
matrix), ``curves.png`` and ``config.json`` (the run config it trained, re-trainable).

On a text dataset ``accuracy`` is whole-string accuracy; ``metrics.json`` adds
``char_accuracy``, accuracy per position, a few predicted texts, and the ``alphabet``
and ``text_length`` that ``textdata.decode`` needs to turn the model's output into text;
per-class accuracy and the confusion matrix are then per character.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from search.config import RunConfig
from search.data import Dataset, load_dataset
from search.errors import UsageError
from search.export import Export
from search.pipeline import TensorCache, make_pipeline
from search.plots import save_curves
from search.textdata import decode
from search.training import fit

__all__ = ["FinalResult", "train_final", "test_metrics", "load_model"]

FILES = ("model.keras", "history.json", "metrics.json", "curves.png", "config.json")


@dataclass
class FinalResult:
    model: keras.Model
    history: dict[str, list[float]]
    metrics: dict[str, Any]
    out_dir: Path


def test_metrics(model: keras.Model, data: Dataset, batch_size: int = 256) -> dict[str, Any]:
    """Loss, accuracy, per-class accuracy and confusion matrix on the held-out test split
    (for text also per-character and per-position accuracy, and a few predicted texts)."""
    x, y = TensorCache.get(data, data.x_test, data.y_test)
    ds = make_pipeline(x, y, data.num_classes, batch_size, shuffle=False, seed=0)
    scores = model.evaluate(ds, verbose=0, return_dict=True)
    predicted = np.argmax(model.predict(ds, verbose=0), axis=-1)
    k = data.num_classes
    truth = np.asarray(data.y_test, dtype=np.int64)
    confusion = np.bincount((truth * k + predicted).ravel(), minlength=k * k).reshape(k, k)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    metrics: dict[str, Any] = {
        "images": int(len(truth)),
        "loss": float(scores["loss"]),
        "accuracy": float(scores["accuracy"]),
    }
    if data.text_length:
        right = predicted == truth
        texts, guesses = decode(truth, data.alphabet), decode(predicted, data.alphabet)
        metrics.update({
            "char_accuracy": float(scores["char_accuracy"]),
            "per_position_accuracy": [round(float(a), 6) for a in right.mean(axis=0)],
            "examples": [{"text": t, "predicted": g} for t, g in zip(texts[:10], guesses[:10])],
        })
    metrics.update({
        "per_class_accuracy": {name: round(float(a), 6) for name, a in zip(data.class_names, per_class)},
        "class_names": list(data.class_names),
        "confusion_matrix": confusion.tolist(),  # rows: true class (character), columns: predicted
    })
    return metrics


def train_final(
    config: RunConfig,
    out_dir: str | Path,
    *,
    keep_val: bool = False,
    early_stopping: int | None = None,
    monitor: str = "val_accuracy",
    split_seed: int = 0,
    data: Dataset | None = None,
    source: dict[str, Any] | None = None,
    verbose: int = 0,
) -> FinalResult:
    """Train ``config`` and write the model, history, test metrics and curves into ``out_dir``.

    ``split_seed`` must be the seed of the study that produced the config (an export
    file's ``source.split_seed``) for the validation split to be the trial's.
    ``early_stopping`` (patience in epochs, validation kept only) stops on ``monitor``
    and restores the best weights.  ``source`` (an export's provenance) is copied into
    ``config.json``.
    """
    if early_stopping is not None:
        if not keep_val:
            raise UsageError("early stopping watches the validation split; add --keep-val (keep_val=True)")
        if early_stopping < 1:
            raise UsageError(f"early stopping patience must be at least 1 epoch, received {early_stopping}")
    if keep_val and not monitor.startswith("val_"):
        monitor = f"val_{monitor}"
    if data is None:  # first: a dataset that is not there leaves no empty --out folder behind
        data = load_dataset(config.data, split_seed=split_seed)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create output folder {out} ({e.strerror}); choose another --out") from e
    callbacks = []
    if early_stopping is not None:
        mode = "min" if "loss" in monitor else "max"
        callbacks.append(keras.callbacks.EarlyStopping(monitor, patience=early_stopping, mode=mode, restore_best_weights=True))
    result = fit(config, data, callbacks, validate=keep_val, train_on_val=not keep_val, monitor=monitor, verbose=verbose)
    metrics: dict[str, Any] = {
        "trained_on": "train" if keep_val else "train+validation",
        "train_images": int(len(data.x_train) + (0 if keep_val else len(data.x_val))),
        "epochs_run": result.epochs_run,
        "params": result.params,
        "seed": config.seed,
        "split_seed": split_seed,
        "test": test_metrics(result.model, data),
    }
    if data.text_length:  # what decode needs: search.textdata.decode(model.predict(x), metrics["alphabet"])
        metrics.update(alphabet=data.alphabet, text_length=data.text_length)
    if keep_val:
        metrics["validation"] = _validation_summary(result.history)
    result.model.save(out / "model.keras")
    _write_json(out / "history.json", {"history": result.history, "epoch_seconds": [round(s, 3) for s in result.epoch_seconds]})
    _write_json(out / "metrics.json", metrics)
    _write_json(out / "config.json", Export(config, {**(source or {}), "split_seed": split_seed}).to_dict())
    save_curves(result.history, out / "curves.png", title=f"{config.data.dataset}: {result.model.name}, seed {config.seed}")
    return FinalResult(result.model, result.history, metrics, out)


def load_model(path: str | Path) -> keras.Model:
    """Load a model saved by ``train_final`` (or any cnn-search model) in Keras' safe mode."""
    import search.models  # noqa: F401 - registers the custom layer
    import search.schedules  # noqa: F401 - registers the learning-rate schedules

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
