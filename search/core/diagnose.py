"""Why a trial went wrong, from its per-epoch history; and what a study's failures share.

Pure functions on plain data: no Optuna, no Keras.  ``diagnose_history`` labels one
trial; ``explain`` turns the labels of many trials and their parameters into
sentences a user can act on.  Thresholds (documented in docs/guide/crashes.md):

* diverged      a NaN/infinite loss (the trial's fail reason says so), or a training
                loss that grew past 3x its first-epoch value or past 3x ln(classes);
* stuck         best validation accuracy over every epoch run below 1.5 / classes, over
                at least 2 epochs: the model never beat chance (one epoch, often all a
                pruned trial gets, is too early to tell).  Text data (its history has
                ``val_char_accuracy``) is judged on per-character accuracy against
                1.5 / alphabet size: whole-string chance, (1/C)^L, is so low that a
                model that is still learning its first characters would pass it;
* overfitting   validation loss ended 20%+ above its minimum while training accuracy
                kept rising and ended 10+ points above validation accuracy;
* sudden drop   validation accuracy fell by 15+ points (absolute) from one epoch to
                the next.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LABELS", "ADVICE", "diagnose_history", "check_input_scale", "input_warnings", "Finding", "explain"]

LABELS = ("diverged", "stuck", "overfitting", "sudden_drop")
ADVICE = {
    "diverged": "lower the learning rate range, enable batch norm, or prefer Adam-family optimizers",
    "stuck": "check input normalization, and widen the learning rate range (too low or too high both stall)",
    "overfitting": "add dropout, augmentation or weight decay, or train fewer epochs",
    "sudden_drop": "lower the peak learning rate, use a decaying schedule, or raise the batch size",
}
DESCRIBE = {
    "diverged": "diverged",
    "stuck": "stayed near chance",
    "overfitting": "overfitted",
    "sudden_drop": "had sudden drops in validation accuracy",
}

DIVERGE_GROWTH = 3.0
STUCK_FACTOR = 1.5
OVERFIT_LOSS_RISE = 0.20
OVERFIT_GAP = 0.10
DROP_POINTS = 0.15
STUCK_MIN_EPOCHS = 2


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def diagnose_history(
    history: Mapping[str, Sequence[float]], num_classes: int, fail_reason: str | None = None
) -> list[str]:
    """Labels (from ``LABELS``) that describe what went wrong in one trial."""
    found: list[str] = []
    loss = list(history.get("loss", []))
    val_loss = list(history.get("val_loss", []))
    acc = list(history.get("accuracy", []))
    val_acc = list(history.get("val_accuracy", []))
    # text: accuracy is whole-string; chance is judged per character (num_classes = alphabet size)
    chance_acc = list(history.get("val_char_accuracy", [])) or val_acc
    finite_loss = _finite(loss)
    exploded = bool(finite_loss) and max(finite_loss) > DIVERGE_GROWTH * max(
        finite_loss[0], math.log(max(num_classes, 2))
    )
    if (fail_reason and "diverged" in fail_reason) or len(finite_loss) < len(loss) or exploded:
        found.append("diverged")
    judged = _finite(chance_acc)
    if len(chance_acc) >= STUCK_MIN_EPOCHS and num_classes > 1 and max(judged or [0.0]) < STUCK_FACTOR / num_classes:
        found.append("stuck")
    if len(val_loss) >= 3 and len(acc) == len(val_loss) and len(val_acc) == len(val_loss):
        vl = _finite(val_loss)
        if vl and len(vl) == len(val_loss):
            best = int(np.argmin(vl))
            rose = vl[-1] > (1 + OVERFIT_LOSS_RISE) * vl[best] and best < len(vl) - 1
            train_rising = acc[-1] > acc[best]
            gap = acc[-1] - val_acc[-1] > OVERFIT_GAP
            if rose and train_rising and gap:
                found.append("overfitting")
    if any(b - a < -DROP_POINTS for a, b in zip(val_acc, val_acc[1:])):
        found.append("sudden_drop")
    return found


def check_input_scale(normalized_sample: np.ndarray, mode: str) -> str | None:
    """A warning when inputs, after the chosen normalization, look badly scaled."""
    x = np.asarray(normalized_sample, dtype=np.float64)
    if x.size == 0:
        return None
    std, peak = float(x.std()), float(np.abs(x).max())
    if mode == "scale" and peak < 0.05:
        return (
            f"inputs scaled to [0,1] peak at {peak:.3g}: the images look already normalized; "
            'use --space with data.normalization = "per_channel"'
        )
    if mode == "scale" and peak > 10:
        return f"inputs scaled to [0,1] reach {peak:.3g}: pixel values exceed the expected maximum; check the data"
    if std < 1e-3:
        return f"inputs are nearly constant after '{mode}' normalization (std {std:.2g}); check the data"
    return None


def input_warnings(
    x_train: np.ndarray, pixel_max: float, mean: Sequence[float], variance: Sequence[float], modes: Sequence[str]
) -> list[str]:
    """``check_input_scale`` for each normalization mode a search may use, on up to 512 images."""
    sample = np.asarray(x_train[:512], dtype=np.float64)
    normalized = {
        "scale": lambda: sample / pixel_max,
        "per_channel": lambda: (sample - np.asarray(mean)) / np.sqrt(np.maximum(np.asarray(variance), 1e-12)),
    }
    found = []
    for mode in modes:
        if mode in normalized:
            warning = check_input_scale(normalized[mode](), mode)
            if warning:
                found.append(warning)
    return found


@dataclass(frozen=True)
class Finding:
    label: str
    count: int
    total: int
    traits: tuple[str, ...]  # e.g. "optimizer=sgd", "learning_rate >= 0.05"

    def sentence(self) -> str:
        text = f"{self.count} of {self.total} trials {DESCRIBE[self.label]}"
        if self.traits:
            share = "all" if self.count > 1 else "it"
            text += f"; {share} had " + " and ".join(self.traits)
        return f"{text}. Try: {ADVICE[self.label]}."


def explain(trials: Sequence[tuple[Sequence[str], Mapping[str, Any]]], max_traits: int = 3) -> list[Finding]:
    """Findings for each label: how many trials had it and what parameters they share.

    ``trials`` holds (labels, params) per finished trial.  A trait is reported when every
    labelled trial has it and at most half of the other trials do.
    """
    findings = []
    total = len(trials)
    for label in LABELS:
        hit = [p for labels, p in trials if label in labels]
        rest = [p for labels, p in trials if label not in labels]
        if not hit:
            continue
        findings.append(Finding(label, len(hit), total, tuple(_shared_traits(hit, rest)[:max_traits])))
    return findings


def _shared_traits(hit: list[Mapping[str, Any]], rest: list[Mapping[str, Any]]) -> list[str]:
    traits: list[tuple[float, str]] = []
    keys = set.intersection(*(set(p) for p in hit)) if hit else set()
    for key in sorted(keys):
        values = [p[key] for p in hit]
        others = [p[key] for p in rest if key in p]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        # one shared value (of several trials, or an int) reads as equality; else as a bound
        same_value = len(set(values)) == 1 and (len(values) > 1 or isinstance(values[0], int))
        if numeric and not same_value:  # a range: "learning_rate >= 0.05"
            low, high = min(values), max(values)
            below = sum(v < low for v in others) / len(others) if others else 1.0
            above = sum(v > high for v in others) / len(others) if others else 1.0
            if below >= 0.5:
                traits.append((below, f"{key} >= {low:.3g}"))
            elif above >= 0.5:
                traits.append((above, f"{key} <= {high:.3g}"))
        elif len(set(map(repr, values))) == 1:
            same = sum(repr(v) == repr(values[0]) for v in others) / len(others) if others else 0.0
            if same <= 0.5:
                traits.append((1.0 - same, f"{key}={values[0]}"))
    traits.sort(key=lambda t: -t[0])
    return [t for _, t in traits]
