"""Pictures of a trained model's test result: the confusion matrix and its most
confident mistakes, as PNGs.

Like ``plots``: matplotlib's object API on the Agg canvas, no pyplot, no display.
The confusion matrix is coloured by the share of each true class (rows sum to 1) and
written with its counts while there are few classes (up to 30; above that the cells
are too small for digits and the colours carry it); the figure grows with the classes
so that 100 class names stay legible on both axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["save_confusion", "save_mistakes", "COUNTS_UP_TO"]

COUNTS_UP_TO = 30  # classes up to which each cell shows its count


def _figure(width: float, height: float, dpi: int = 100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_confusion(
    matrix: np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str],
    path: str | Path,
    title: str = "",
    what: str = "class",
) -> Path:
    """Write the confusion matrix (rows: true ``what``, columns: predicted), each row
    normalized to the share of its true class, with class names on both axes."""
    counts = np.asarray(matrix, dtype=np.int64)
    k = len(class_names)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    few = k <= COUNTS_UP_TO
    side = max(6.0, 0.45 * k + 2.5) if few else 0.2 * k + 3.5  # inches: ~0.45 in a cell with counts, 0.2 without
    font = 10 if k <= 12 else 8 if few else 7
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(
        range(k), [str(n) for n in class_names], rotation=90 if k > 10 or _long(class_names) else 0, fontsize=font
    )
    ax.set_yticks(range(k), [str(n) for n in class_names], fontsize=font)
    ax.set_xlabel(f"predicted {what}")
    ax.set_ylabel(f"true {what}")
    if few:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(
                        j,
                        i,
                        str(counts[i, j]),
                        ha="center",
                        va="center",
                        fontsize=font,
                        color="white" if shares[i, j] > 0.5 else "black",
                    )
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label(f"share of the true {what}'s test images")
    total, right = int(counts.sum()), int(np.trace(counts))
    heading = f"{title}\n" if title else ""
    counted = "cells: counts" if few else "colour: share of the row"
    ax.set_title(
        f"{heading}confusion on the test split: {right} of {total} right ({right / max(total, 1):.1%}); "
        f"rows sum to 1, {counted}",
        fontsize=10,
    )
    fig.tight_layout()
    return _save(fig, path)


def save_mistakes(
    images: np.ndarray,
    truth: Sequence[str],
    predicted: Sequence[str],
    probability: Sequence[float],
    path: str | Path,
    *,
    pixel_max: float,
    total_wrong: int,
    title: str = "",
    what: str = "label",
) -> Path:
    """Write a grid of test images the model got wrong, most confident first, each with
    its true and predicted ``what`` (label, or text) and the probability the model gave
    its answer."""
    n = len(images)
    if n == 0:
        fig = _figure(6, 2)
        fig.text(0.5, 0.5, "no test image was misclassified", ha="center", va="center", fontsize=12)
        return _save(fig, path)
    h, w = images.shape[1:3]
    wide = w / h >= 1.5  # text images: wider cells
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    cell_w = 3.0 if wide else 2.4
    cell_h = cell_w * h / w + 0.8  # room for two lines of title
    fig = _figure(cols * cell_w, rows * cell_h + 0.9)
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        pixels = np.clip(images[i].astype(np.float32) / pixel_max, 0.0, 1.0)
        if pixels.shape[-1] == 1:
            ax.imshow(pixels[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(pixels[..., :3], interpolation="nearest")
        ax.set_title(f"true {truth[i]}\npredicted {predicted[i]} ({probability[i]:.2f})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    shown = f"the {n} most confident of {total_wrong} mistakes" if total_wrong > n else f"all {total_wrong} mistakes"
    heading = f"{title}\n" if title else ""
    fig.suptitle(f"{heading}{shown} on the test split (probability of the predicted {what})", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _long(names: Sequence[str]) -> bool:
    return max((len(str(n)) for n in names), default=0) > 3


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
