"""Learning-rate range test (Smith 2017): raise the rate exponentially over a short run,
record the loss at each step, and suggest a base and a peak rate.

Suggestion rule, on the loss smoothed with an exponential moving average (beta 0.9,
bias-corrected):

* peak (max) rate: one third of the rate at the smoothed loss's minimum, a margin
  below where the loss turns back up;
* base rate: one tenth of the peak (the usual span for cyclic and one-cycle
  schedules), but never below the rate where the loss first fell 2% under its start.

The run stops early once the smoothed loss exceeds 4x its minimum (diverged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from search.core.config import RunConfig
from search.core.data import Dataset
from search.core.pipeline import TensorCache, make_pipeline
from search.core.training import compile_model, keras_session
from search.errors import UsageError

__all__ = ["LRFindResult", "LRRangeSchedule", "lr_range_test", "suggest", "plot", "write_space"]

SMOOTH = 0.9
DIVERGE_FACTOR = 4.0


@dataclass(frozen=True)
class LRFindResult:
    lrs: tuple[float, ...]
    losses: tuple[float, ...]  # raw per-step training loss
    smoothed: tuple[float, ...]
    base_lr: float
    max_lr: float

    def to_dict(self) -> dict:
        return {
            "base_lr": self.base_lr,
            "max_lr": self.max_lr,
            "lrs": list(self.lrs),
            "losses": list(self.losses),
            "smoothed": list(self.smoothed),
        }


class LRRangeSchedule(keras.callbacks.Callback):
    """Set the rate before each batch, record the loss after it, stop on divergence."""

    def __init__(self, min_lr: float, max_lr: float, steps: int) -> None:
        super().__init__()
        self.rates = np.geomspace(min_lr, max_lr, steps)
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self._avg = 0.0
        self._best = math.inf

    def on_train_batch_begin(self, batch, logs=None):
        step = len(self.losses)
        if step >= len(self.rates):
            self.model.stop_training = True
            return
        self.model.optimizer.learning_rate.assign(float(self.rates[step]))

    def on_train_batch_end(self, batch, logs=None):
        step = len(self.losses)
        if step >= len(self.rates):
            return
        loss = float((logs or {}).get("loss", math.nan))
        self.lrs.append(float(self.rates[step]))
        self.losses.append(loss)
        if not math.isfinite(loss):
            self.model.stop_training = True
            return
        self._avg = SMOOTH * self._avg + (1 - SMOOTH) * loss
        smoothed = self._avg / (1 - SMOOTH ** (step + 1))
        self._best = min(self._best, smoothed)
        if step > 10 and smoothed > DIVERGE_FACTOR * self._best:
            self.model.stop_training = True


def smooth(losses: list[float]) -> list[float]:
    out, avg = [], 0.0
    for i, loss in enumerate(losses):
        if not math.isfinite(loss):
            break
        avg = SMOOTH * avg + (1 - SMOOTH) * loss
        out.append(avg / (1 - SMOOTH ** (i + 1)))
    return out


def suggest(lrs: list[float], losses: list[float]) -> tuple[float, float]:
    """(base_lr, max_lr) from a range test's rates and losses; see the module docstring."""
    smoothed = smooth(losses)
    if len(smoothed) < 5:
        raise UsageError("the range test diverged within 5 steps; lower --min-lr")
    best = int(np.argmin(smoothed))
    max_lr = lrs[best] / 3.0
    start = smoothed[0]
    first_drop = next((lrs[i] for i, v in enumerate(smoothed) if v < 0.98 * start), lrs[0])
    base_lr = min(max(max_lr / 10.0, first_drop), max_lr)
    return base_lr, max_lr


def lr_range_test(
    config: RunConfig, data: Dataset, min_lr: float = 1e-7, max_lr: float = 10.0, steps: int = 200
) -> LRFindResult:
    """Train ``config``'s model for ``steps`` batches with an exponentially rising rate."""
    if not 0 < min_lr < max_lr:
        raise UsageError(f"--min-lr must be positive and below --max-lr, received {min_lr} and {max_lr}")
    if steps < 20:
        raise UsageError(f"--steps must be at least 20 for a readable curve, received {steps}")
    keras.utils.set_random_seed(config.seed)
    with keras_session():
        model = compile_model(config, data, min_lr)
        x, y = TensorCache.get(data, data.x_train, data.y_train)
        ds = make_pipeline(
            x, y, data.num_classes, config.train.batch_size, shuffle=True, seed=config.seed, augment=config.augment
        )
        per_epoch = math.ceil(int(x.shape[0]) / config.train.batch_size)
        schedule = LRRangeSchedule(min_lr, max_lr, steps)
        model.fit(
            ds.repeat(),
            steps_per_epoch=per_epoch,
            epochs=math.ceil(steps / per_epoch),
            callbacks=[schedule],
            shuffle=False,
            verbose=0,
        )
    base, peak = suggest(schedule.lrs, schedule.losses)
    return LRFindResult(tuple(schedule.lrs), tuple(schedule.losses), tuple(smooth(schedule.losses)), base, peak)


def plot(result: LRFindResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(result.lrs, result.losses, color="0.75", lw=1, label="loss")
    ax.plot(result.lrs[: len(result.smoothed)], result.smoothed, color="C0", lw=2, label="smoothed loss")
    ax.axvline(result.base_lr, color="C2", ls="--", label=f"base {result.base_lr:.2g}")
    ax.axvline(result.max_lr, color="C3", ls="--", label=f"max {result.max_lr:.2g}")
    ax.set_xscale("log")
    finite = [v for v in result.smoothed if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) * 0.9, min(max(finite), 4 * min(finite)) * 1.1)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate range test")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_space(space_ref: str, base_lr: float, max_lr: float, path: Path) -> None:
    """A space file that extends ``space_ref`` with the suggested learning-rate bounds."""
    ref = space_ref if "/" not in space_ref and not space_ref.endswith(".toml") else str(Path(space_ref).resolve())
    factor = max(1.0, max_lr / base_lr)
    from search.core.outputs import atomic_write

    atomic_write(
        path,
        "# Written by `run_search.py lr-find`: the learning rate searched between the suggested\n"
        "# base and max rates, and the cyclic / one-cycle peak fixed at max / base.\n"
        f'extends = "{ref}"\n\n'
        "[optimizer]\n"
        f"learning_rate = {{ low = {base_lr:.3g}, high = {max_lr:.3g}, log = true }}\n\n"
        "[schedule]\n"
        f"max_lr_factor = {factor:.3g}\n",
        "--write-space",
    )
