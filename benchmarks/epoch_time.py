"""Where an epoch's time goes: the default recipe on one dataset, from its first step to
its last, against what the budget's probe predicts (issue 25).

    taskset -c 0 env TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \\
        python benchmarks/epoch_time.py --dataset folder:../shared/data/cifar10-subset \\
        --limit-train 4500 --val-size 1000 --epochs 30 --out docs/benchmarks/epoch-time.json

Measures, in this order, in one process:

* ``probe``: ``probe_epoch_seconds``, what a budgeted search plans its first trial from;
* ``pipeline``: one epoch of the training input pipeline alone (gather, augment), and
  the same without augmentation: what feeding the steps costs on its own;
* ``step``: training steps fed from a few batches already in memory: the model's own cost;
* ``run``: ``fit`` for ``--epochs`` epochs as a trial trains (its callbacks, validation
  with the trained model's flip averaging where the recipe predicts flips), each epoch
  split into its training steps (batch begin to end, the input pipeline's waits
  included), the time between steps (callbacks, Keras' logs), validation, and the rest;
  with the process's CPU seconds and the seconds stolen from its core in each epoch.

One JSON entry a run is appended to ``--out``, with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras
import tensorflow as tf

from benchmarks.args import add_data_arguments
from benchmarks.results import measure_and_append
from benchmarks.tools import load_data
from search.core.pipeline import TensorCache, make_pipeline
from search.core.recipe import DataShape, recipe
from search.core.training import compile_model, fit, keras_session, probe_epoch_seconds

PRECISIONS = ("float32", "mixed_bfloat16")


class Breakdown(keras.callbacks.Callback):
    """Per epoch: wall seconds, training-step seconds (and the first step's, which waits for the
    input pipeline's first batch), seconds between steps, validation
    seconds, process CPU seconds, and the seconds the hypervisor stole from its core."""

    def __init__(self, quiet: bool = False) -> None:
        super().__init__()
        self.quiet = quiet
        self.epochs: list[dict] = []
        self._now = time.perf_counter

    def on_epoch_begin(self, epoch, logs=None):
        self._e = {
            "start": self._now(),
            "cpu": time.process_time(),
            "steal": core_steal(),
            "steps": 0.0,
            "between": 0.0,
            "n": 0,
        }
        self._last_end = self._e["start"]

    def on_train_batch_begin(self, batch, logs=None):
        self._b = self._now()
        self._e["between"] += self._b - self._last_end

    def on_train_batch_end(self, batch, logs=None):
        self._last_end = self._now()
        self._e["steps"] += self._last_end - self._b
        self._e["n"] += 1
        if self._e["n"] == 1:  # waits for the input pipeline's first batch of the epoch
            self._e["first_step"] = self._last_end - self._b

    def on_test_begin(self, logs=None):
        self._t = self._now()

    def on_test_end(self, logs=None):
        self._e["validation"] = self._now() - self._t

    def on_epoch_end(self, epoch, logs=None):
        e, end = self._e, self._now()
        wall = end - e["start"]
        val = e.get("validation", 0.0)
        self.epochs.append(
            {
                "epoch": epoch + 1,
                "wall": round(wall, 3),
                "steps": round(e["steps"], 3),
                "per_step": round(e["steps"] / max(e["n"], 1), 4),
                "first_step": round(e.get("first_step", 0.0), 4),
                "between_steps": round(e["between"], 3),
                "validation": round(val, 3),
                "rest": round(wall - e["steps"] - e["between"] - val, 3),
                "cpu": round(time.process_time() - e["cpu"], 3),
                "stolen": None if e["steal"] is None else round(core_steal() - e["steal"], 2),
                "val_accuracy": round(float((logs or {}).get("val_accuracy", float("nan"))), 4),
            }
        )
        if not self.quiet:
            print(json.dumps(self.epochs[-1]), flush=True)


def core_steal() -> float | None:
    """Seconds the hypervisor has stolen from the first core this process may run on,
    since boot (/proc/stat; None where it does not say)."""
    try:
        core = min(os.sched_getaffinity(0))
        for line in Path("/proc/stat").read_text().splitlines():
            fields = line.split()
            if fields[0] == f"cpu{core}":
                return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return None


def time_pipeline(config, data, augment) -> float:
    x, y = TensorCache.get(data, data.x_train, data.y_train)
    ds = make_pipeline(x, y, data.num_classes, config.train.batch_size, shuffle=True, seed=1, augment=augment)
    start = time.perf_counter()
    for _ in ds:
        pass
    return time.perf_counter() - start


def time_steps(config, data, steps: int) -> float:
    """Seconds a training step takes fed from 8 batches already in memory (after 8 warm-up steps)."""
    x, y = TensorCache.get(data, data.x_train, data.y_train)
    ds = make_pipeline(x, y, data.num_classes, config.train.batch_size, shuffle=True, seed=1, augment=config.augment)
    batches = [b for b in ds.take(8)]
    images = tf.concat([b[0] for b in batches], 0)
    labels = tf.concat([b[1] for b in batches], 0)
    fed = tf.data.Dataset.from_tensor_slices((images, labels)).batch(config.train.batch_size).cache().repeat()
    with keras_session():
        model = compile_model(config, data)
        model.fit(fed, epochs=1, steps_per_epoch=8, verbose=0)
        start = time.perf_counter()
        model.fit(fed, epochs=1, steps_per_epoch=steps, verbose=0)
        return (time.perf_counter() - start) / steps


@contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Keras' global dtype policy set to ``name`` (``float32``, ``mixed_bfloat16``) for a block."""
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def measure(args) -> dict:
    with dtype_policy(args.precision):
        return _measure(args)


def _measure(args) -> dict:
    cfg, data = load_data(args.dataset, args.data_dir, args.limit_train, args.val_size)
    config = recipe(DataShape.of(data, args.dataset), cfg, epochs=args.epochs, seed=args.seed)
    train_steps = math.ceil(len(data.x_train) / config.train.batch_size)
    probe = probe_epoch_seconds(config, data)
    pipeline = time_pipeline(config, data, config.augment)
    pipeline_plain = time_pipeline(config, data, None)
    per_step = time_steps(config, data, steps=min(train_steps, 40))
    breakdown = Breakdown()
    start = time.perf_counter()
    with keras_session():
        fit(config, data, callbacks=[breakdown])
    run = breakdown.epochs
    later = run[1:] or run
    mean = lambda key: round(sum(e[key] for e in later) / len(later), 3)  # noqa: E731
    return {
        "dataset": args.dataset,
        "train_images": len(data.x_train),
        "val_images": len(data.x_val),
        "batch_size": config.train.batch_size,
        "train_steps": train_steps,
        "augment": str(config.augment),
        "precision": args.precision,
        "probe_epoch_s": round(probe, 3),
        "pipeline_epoch_s": round(pipeline, 2),
        "pipeline_no_augment_epoch_s": round(pipeline_plain, 2),
        "step_in_memory_s": round(per_step, 4),
        "steps_in_memory_epoch_s": round(per_step * train_steps, 2),
        "epochs": run,
        "first_epoch_s": run[0]["wall"],
        "later_epochs_mean": {k: mean(k) for k in ("wall", "steps", "between_steps", "validation", "rest", "cpu")},
        "sustained_over_probe": round(mean("wall") / probe, 3),
        "run_s": round(time.perf_counter() - start, 1),
        "threads": {k: os.environ.get(k) for k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")},
        "cores": sorted(os.sched_getaffinity(0)),
        "load": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(p)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default="float32", choices=PRECISIONS, help="Keras' dtype policy")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    return measure_and_append(lambda: measure(args), args.out, hide="epochs")


if __name__ == "__main__":
    sys.exit(main())
