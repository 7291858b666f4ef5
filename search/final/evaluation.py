"""A trained model on the held-out test split: scores, scikit-learn's per-class report,
the confusion matrix, and which images it got most confidently wrong.

On a text dataset ``accuracy`` is whole-string accuracy; the metrics add per-character
and per-position accuracy and a few predicted texts, and the per-class report and the
confusion matrix are per character.  Nothing here touches Optuna.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from search.core.data import Dataset
from search.core.pipeline import TensorCache, make_pipeline
from search.core.textdata import decode

__all__ = ["TestResult", "evaluate_test", "test_metrics", "class_metrics", "confidence", "confident_mistakes"]


@dataclass
class TestResult:
    metrics: dict[str, Any]
    probabilities: np.ndarray  # (N, classes), or (N, positions, characters) for text


def evaluate_test(model: keras.Model, data: Dataset, batch_size: int = 256) -> TestResult:
    """Score ``model`` on ``data``'s test split; keeps the predicted probabilities."""
    x, y = TensorCache.get(data, data.x_test, data.y_test)
    ds = make_pipeline(x, y, data.num_classes, batch_size, shuffle=False, seed=0)
    scores = model.evaluate(ds, verbose=0, return_dict=True)
    probabilities = np.asarray(model.predict(ds, verbose=0))
    predicted = np.argmax(probabilities, axis=-1)
    truth = np.asarray(data.y_test, dtype=np.int64)
    metrics: dict[str, Any] = {
        "images": int(len(truth)),
        "loss": float(scores["loss"]),
        "accuracy": float(scores["accuracy"]),
    }
    if data.text_length:
        right = predicted == truth
        texts, guesses = decode(truth, data.alphabet), decode(predicted, data.alphabet)
        metrics.update(
            {
                "char_accuracy": float(scores["char_accuracy"]),
                "per_position_accuracy": [round(float(a), 6) for a in right.mean(axis=0)],
                "examples": [{"text": t, "predicted": g} for t, g in zip(texts[:10], guesses[:10])],
            }
        )
    metrics.update(class_metrics(truth.ravel(), predicted.ravel(), data.class_names))
    return TestResult(metrics, probabilities)


def test_metrics(model: keras.Model, data: Dataset, batch_size: int = 256) -> dict[str, Any]:
    """Loss, accuracy, per-class report and confusion matrix on the held-out test split."""
    return evaluate_test(model, data, batch_size).metrics


test_metrics.__test__ = False  # type: ignore[attr-defined]  # a function, not a pytest test
TestResult.__test__ = False  # type: ignore[attr-defined]


def class_metrics(truth: np.ndarray, predicted: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Per-class accuracy (recall), scikit-learn's ``classification_report`` (precision,
    recall, F1 and support per class, macro and weighted averages) and the confusion
    matrix (rows: true class, columns: predicted), over every class even when absent."""
    from sklearn.metrics import classification_report, confusion_matrix

    labels = list(range(len(class_names)))
    confusion = confusion_matrix(truth, predicted, labels=labels)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    report = classification_report(
        truth, predicted, labels=labels, target_names=list(class_names), output_dict=True, zero_division=0
    )
    return {
        "per_class_accuracy": {name: round(float(a), 6) for name, a in zip(class_names, per_class)},
        "classification_report": _rounded(report),
        "class_names": list(class_names),
        "confusion_matrix": confusion.tolist(),
    }


def confidence(probabilities: np.ndarray) -> np.ndarray:
    """How sure the model is of its answer, per image: the top class's probability, or
    for text the product of each position's top probability (the predicted string's)."""
    top = np.asarray(probabilities).max(axis=-1)
    return top.prod(axis=-1) if top.ndim == 2 else top


def confident_mistakes(truth: np.ndarray, probabilities: np.ndarray, count: int | None = None) -> np.ndarray:
    """Indices of the wrongly predicted images (any wrong character for text), most
    confident first; the first ``count`` of them when given."""
    predicted = np.argmax(probabilities, axis=-1)
    wrong = predicted != np.asarray(truth)
    if wrong.ndim == 2:
        wrong = wrong.any(axis=1)
    indices = np.flatnonzero(wrong)
    order = np.argsort(-confidence(probabilities)[indices], kind="stable")
    return indices[order[:count]]  # [:None] keeps all


def _rounded(value: Any) -> Any:
    """Floats to 6 digits and NumPy scalars to Python numbers, for JSON."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return round(value, 6)
    return value
