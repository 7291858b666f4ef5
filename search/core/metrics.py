"""The metrics a training run logs and how a metric is read: here rather than in
``training`` so that checking ``--monitor`` needs no TensorFlow.  ``search.core.config``
re-exports them, as it always has."""

from __future__ import annotations

__all__ = ["METRICS", "TEXT_METRICS", "is_loss", "metric_names", "is_text_dataset"]

# The metrics every training run logs; with validation each also appears with a ``val_``
# prefix.  Here rather than in ``training`` so that checking --monitor needs no TensorFlow.
METRICS = ("loss", "accuracy")
# Text datasets also log per-character accuracy; their ``accuracy`` is whole-string accuracy.
TEXT_METRICS = ("char_accuracy",)


def is_loss(metric: str) -> bool:
    """Whether lower is better for ``metric`` (a loss), rather than higher (an accuracy)."""
    return metric.removeprefix("val_") == "loss"


def metric_names(text: bool = False) -> list[str]:
    """Every metric a run logs, with and without the ``val_`` prefix."""
    metrics = [*METRICS, *(TEXT_METRICS if text else ())]
    return [*metrics, *(f"val_{m}" for m in metrics)]


def is_text_dataset(spec: str) -> bool:
    """Whether a dataset spec names text images (a label string per image)."""
    return spec == "captcha" or spec.startswith(("captcha:", "textfolder:"))
