"""What the harness costs and what pruning saves, measured in one run.

    python benchmarks/overhead.py --dataset fashion_mnist --data-dir ../shared/data/fashion-mnist \\
        --limit-train 10000 --val-size 2000 --out docs/benchmarks

1. **Overhead**: the same config (the run config's defaults, or ``--config``) trained by a bare
   ``model.fit`` on numpy arrays and as one harness trial (``Objective``: our ``fit``
   with its tf.data pipeline, the reporting callback, SQLite storage writes, clean-up),
   alternating, ``--repeats`` times after one untimed warm-up of each.  Reported as the
   ratio of median wall times (target <= 1.03) and of median steady-state epoch times.
2. **Throughput**: training images/s of both (steady-state epochs, validation pass
   included in both), and of the input pipeline alone (no model).
3. **Pruning savings**: ``--pruning-trials`` trials of the default search (TPE and the
   default pruner, or each of ``--pruners``) and the same number with pruning off, same
   seed: epochs spent and best value.

``--parts`` picks 1-2 (``overhead``) or 3 (``pruning``); each part writes
``OUT/<part>-<dataset>.json``, and the report ``OUT.md`` is regenerated.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import statistics
import sys
import tempfile
import time
import typing
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.args import add_data_arguments
from search.errors import CnnSearchError, UsageError
from search.study.samplers import DEFAULT_PRUNER, DEFAULT_SAMPLER, PRUNERS

if typing.TYPE_CHECKING:
    import numpy as np
    import optuna

    from search.core.config import RunConfig
    from search.core.data import Dataset
    from search.core.spaces import Space

__all__ = ["PARTS", "bare_fit", "harness_trial", "pipeline_rate", "pruning_savings", "measure_overhead", "main"]


def bare_fit(config: RunConfig, data: Dataset, y_train: np.ndarray, y_val: np.ndarray) -> tuple[float, list[float]]:
    """A user's plain Keras training of ``config``: (wall seconds, epoch seconds)."""
    import keras

    from search.core.training import EpochTimer, compile_model

    start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    model = compile_model(config, data)
    timer = EpochTimer()
    model.fit(
        data.x_train,
        y_train,
        batch_size=config.train.batch_size,
        epochs=config.train.epochs,
        validation_data=(data.x_val, y_val),
        shuffle=True,
        verbose=0,
        callbacks=[timer],
    )
    keras.backend.clear_session()
    return time.perf_counter() - start, timer.seconds


def _study(name: str, workdir: Path, config: RunConfig, pruner: str, sampler: str = DEFAULT_SAMPLER) -> optuna.Study:
    from search.core.space_files import load_space
    from search.study.settings import StudySettings
    from search.study.storage import create_or_load, default_storage

    settings = StudySettings(config=config, space=load_space("cnn").to_dict(), sampler=sampler, pruner=pruner)
    return create_or_load(name, default_storage(name, workdir), settings)


def harness_trial(config: RunConfig, data: Dataset, workdir: Path, name: str) -> tuple[float, list[float]]:
    """One trial of ``config`` through the harness (a space with nothing to sample)."""
    from search.core.spaces import Space
    from search.study.trial import Objective

    study = _study(name, workdir, config, "median")
    objective = Objective(Space("fixed", ()), data, config)
    start = time.perf_counter()
    study.optimize(objective, n_trials=1)
    seconds = time.perf_counter() - start
    return seconds, list(study.trials[-1].user_attrs["epoch_seconds"])


def pipeline_rate(config: RunConfig, data: Dataset) -> float:
    """Images/s of the training input pipeline alone (second pass over the data)."""
    from search.core.pipeline import TensorCache, make_pipeline

    x, y = TensorCache.get(data, data.x_train, data.y_train)
    ds = make_pipeline(x, y, data.num_classes, config.train.batch_size, shuffle=True, seed=0, augment=config.augment)
    for _ in ds:  # warm-up pass
        pass
    start = time.perf_counter()
    n = sum(int(batch[0].shape[0]) for batch in ds)
    return n / (time.perf_counter() - start)


def pruning_savings(
    config: RunConfig,
    data: Dataset,
    space: Space,
    trials: int,
    workdir: Path,
    pruners: Sequence[str] = (DEFAULT_PRUNER,),
) -> dict[str, Any]:
    """The default search under each of ``pruners`` and with pruning off ("none"), same
    sampler seed and number of trials: epochs spent, best value, and the share of
    epochs each pruner saved against no pruning."""
    from search.errors import TrialError
    from search.study.trial import Objective

    arms: dict[str, dict[str, Any]] = {}
    for pruner in [*dict.fromkeys(p for p in pruners if p != "none"), "none"]:
        study = _study(f"pruning-{pruner}", workdir, config, pruner)
        start = time.perf_counter()
        study.optimize(Objective(space, data, config), n_trials=trials, catch=(TrialError,))
        epochs = sum(len(t.user_attrs.get("history", {}).get("val_accuracy", [])) for t in study.trials)
        states = [t.state.name.lower() for t in study.trials]
        best = study.best_value if any(s == "complete" for s in states) else None
        arms[pruner] = {
            "epochs": epochs,
            "best_val": best,
            "wall_s": round(time.perf_counter() - start, 1),
            "pruned": states.count("pruned"),
            "failed": states.count("fail"),
        }
        print(f"pruning arm {pruner}: {arms[pruner]}", flush=True)
    without = arms["none"]["epochs"]
    return {
        "trials": trials,
        "epochs_per_trial": config.train.epochs,
        "default": DEFAULT_PRUNER,
        "arms": arms,
        "epochs_saved": {
            p: round(1 - a["epochs"] / without, 4) if without else None for p, a in arms.items() if p != "none"
        },
    }


def _steady(runs: list[tuple[float, list[float]]]) -> list[float]:
    """Epoch times after each run's first epoch (which traces the graphs), if any."""
    return [s for _, epochs in runs for s in epochs[1:]] or [s for _, epochs in runs for s in epochs]


def measure_overhead(config: RunConfig, data: Dataset, repeats: int) -> dict[str, Any]:
    """Bare ``model.fit`` against one harness trial, alternating, after a warm-up of each."""
    import keras

    from search.core.config import TrainConfig

    y_train = keras.utils.to_categorical(data.y_train, data.num_classes)
    y_val = keras.utils.to_categorical(data.y_val, data.num_classes)
    bare: list[tuple[float, list[float]]] = []
    harness: list[tuple[float, list[float]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        warm = config.replace(train=TrainConfig(epochs=1))
        bare_fit(warm, data, y_train, y_val)
        harness_trial(warm, data, Path(tmp), "warm-up")
        for i in range(repeats):  # alternate the order: neither always runs first
            ways = [
                lambda: bare.append(bare_fit(config, data, y_train, y_val)),
                lambda name=f"overhead-{i}": harness.append(harness_trial(config, data, Path(tmp), name)),
            ]
            for way in ways if i % 2 == 0 else ways[::-1]:
                way()
    n = len(data.x_train)
    return {
        "overhead": {
            "bare_s": [round(t, 2) for t, _ in bare],
            "harness_s": [round(t, 2) for t, _ in harness],
            "ratio": round(statistics.median(t for t, _ in harness) / statistics.median(t for t, _ in bare), 4),
            "epoch_ratio": round(statistics.median(_steady(harness)) / statistics.median(_steady(bare)), 4),
        },
        "throughput": {
            "pipeline_images_per_s": round(pipeline_rate(config, data)),
            "bare_fit_images_per_s": round(n / statistics.median(_steady(bare))),
            "harness_fit_images_per_s": round(n / statistics.median(_steady(harness))),
        },
    }


def measure(args: argparse.Namespace, part: str) -> dict[str, Any]:
    from benchmarks.tools import load_data
    from search.core.config import RunConfig, TrainConfig
    from search.core.space_files import load_space

    data_cfg, data = load_data(args.dataset, args.data_dir, args.limit_train, args.val_size)
    split = f"{len(data.x_train)} train / {len(data.x_val)} val images"
    if part == "overhead":
        config = RunConfig.load(args.config) if args.config else RunConfig()
        described = f"config `{args.config}`" if args.config else DEFAULT_CONFIG
        config = config.replace(
            data=data_cfg, train=dataclasses.replace(config.train, epochs=args.epochs), seed=args.seed
        )
        result = measure_overhead(config, data, args.repeats)
        result["settings"] = {
            "dataset": args.dataset,
            "config": described,
            "epochs": args.epochs,
            "repeats": args.repeats,
            "split": split,
            "seed": args.seed,
        }
        return result
    config = RunConfig(data=data_cfg, train=TrainConfig(epochs=args.pruning_epochs), seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-pruning-") as tmp:
        space = load_space(args.space)
        result = {"pruning": pruning_savings(config, data, space, args.pruning_trials, Path(tmp), args.pruners)}
    result["settings"] = {"dataset": args.dataset, "space": args.space, "split": split, "seed": args.seed}
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Measure harness overhead, input throughput and pruning savings.")
    add_data_arguments(p)
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure (default: both)")
    p.add_argument("--config", help="run config JSON to time (e.g. an export); default: the run config's defaults")
    p.add_argument("--epochs", type=int, default=3, help="epochs of each overhead run (default: 3)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each way (default: 3)")
    p.add_argument("--space", default="cnn", help="space for the pruning comparison (default: cnn)")
    p.add_argument("--pruning-trials", type=int, default=20, help="trials in each pruning arm (default: 20)")
    p.add_argument("--pruning-epochs", type=int, default=10, help="epochs a trial in the pruning arms (default: 10)")
    p.add_argument(
        "--pruners",
        nargs="+",
        choices=PRUNERS,
        default=[DEFAULT_PRUNER],
        help=(
            "pruners to compare with no pruning, same trials and "
            f"seed (default: {DEFAULT_PRUNER}, the search's default)"
        ),
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    return p.parse_args(argv)


PARTS = ("overhead", "pruning")
DEFAULT_CONFIG = "the run config's defaults (CNN, 3 blocks of 2 convs, 32-64-128 filters, Adam 1e-3, batch 64)"


def main(argv: list[str] | None = None) -> int:
    import json

    from benchmarks.report import write_report
    from benchmarks.results import environment

    args = parse_args(argv)
    stem = Path(args.dataset.split(":", 1)[1]).name if ":" in args.dataset else args.dataset
    command = "python benchmarks/overhead.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        if min(args.repeats, args.epochs, args.pruning_trials, args.pruning_epochs) < 1:
            raise UsageError("--repeats, --epochs, --pruning-trials and --pruning-epochs must be at least 1")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        for part in args.parts:
            result = measure(args, part)
            result.update(
                kind=part,
                environment=environment(),
                command=command,
                updated=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            path = args.out / f"{part}-{stem}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=1) + "\n")
            print(json.dumps({k: v for k, v in result.items() if k in ("overhead", "throughput", "pruning")}, indent=1))
            print(f"wrote {path}")
    except CnnSearchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_report(args.out, args.out.with_suffix(".md"))
    print(f"report: {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
