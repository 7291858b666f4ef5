"""The default recipe, or a variant of it, trained once paced over a budget and tested:
what a change to the recipe is worth per second (issue 25).

    taskset -c 0 env TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \\
        python benchmarks/recipe_variant.py --dataset folder:../shared/data/cifar10-subset \\
        --limit-train 9000 --val-size 1000 --budget 600 --label today \\
        --out docs/benchmarks/recipe-variants.json &
    taskset -c 1 env ... python benchmarks/recipe_variant.py ... --label bf16 \\
        --precision mixed_bfloat16 --out docs/benchmarks/recipe-variants.json

Run a variant beside today's recipe, one core each, at the same time (the machine's
speed drifts from day to day): only such pairs compare.  ``--set SECTION.KEY=VALUE``
changes one field of the recipe's run config (``model.base_filters=64``,
``model.activation=gelu``, ``train.batch_size=256``); ``--precision`` sets Keras'
dtype policy.  The run is paced as a budgeted search's final run (``recipe-paced``: the
probe inside the budget, the one-cycle schedule on the clock), then the model it trained
is tested on the test split.  ``--epochs N`` trains a fixed N-epoch schedule instead,
not paced: what a change does to the model, whatever the machine's speed (small data,
where a budget's seconds would mostly be set-up).  One JSON entry a run is appended to ``--out`` (a lock-free
read-modify-write: give each of a pair its own file, or merge them after), with the
epochs, per-epoch seconds and the machine's load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from benchmarks.args import add_data_arguments
from benchmarks.epoch_time import PRECISIONS, Breakdown, dtype_policy
from benchmarks.results import measure_and_append
from benchmarks.tools import load_data
from search.core.config import RunConfig
from search.core.pipeline import TensorCache, make_pipeline
from search.core.recipe import DataShape, recipe
from search.core.training import fit, keras_session, probe_epoch_seconds
from search.errors import UsageError
from search.study.budget import BudgetPlan


def with_settings(config: RunConfig, settings: list[str]) -> RunConfig:
    """``config`` with each ``SECTION.KEY=VALUE`` applied (VALUE read as JSON, else a string)."""
    tree = config.to_dict()
    for item in settings:
        path, sep, text = item.partition("=")
        section, dot, key = path.partition(".")
        if not sep or not dot or section not in tree or not isinstance(tree[section], dict) or key not in tree[section]:
            raise UsageError(
                f"--set {item!r}: expected SECTION.KEY=VALUE with a key of the run config, e.g. model.base_filters=64"
            )
        try:
            tree[section][key] = json.loads(text)
        except json.JSONDecodeError:
            tree[section][key] = text
    return RunConfig.from_dict(tree)


def run(args) -> dict:
    start = time.time()
    cfg, data = load_data(args.dataset, args.data_dir, args.limit_train, args.val_size)
    config = with_settings(recipe(DataShape.of(data, args.dataset), cfg, seed=args.seed), args.set)
    with dtype_policy(args.precision):
        return _paced(args, start, config, data)


def _paced(args, start: float, config: RunConfig, data) -> dict:
    until, per_epoch = None, None
    if args.epochs:  # a fixed schedule, not paced
        epochs = args.epochs
    else:
        per_epoch = probe_epoch_seconds(config, data)  # inside the budget, as recipe-paced
        plan = BudgetPlan(args.budget - (time.time() - start))
        until = plan.deadline - plan.finish(per_epoch)
        epochs = max(1, int((until - time.time()) / per_epoch))
    config = config.replace(train=dataclasses.replace(config.train, epochs=epochs))
    breakdown = Breakdown(quiet=True)
    with keras_session():
        result = fit(config, data, callbacks=[breakdown], until=until)
        x, y = TensorCache.get(data, data.x_test, data.y_test)
        test_ds = make_pipeline(x, y, data.num_classes, 512, shuffle=False, seed=0)
        test = result.model.evaluate(test_ds, verbose=0, return_dict=True)["accuracy"]  # a text's: whole strings
        params = result.model.count_params()
    later = [e["wall"] for e in breakdown.epochs[1:]] or [breakdown.epochs[0]["wall"]]
    return {
        "label": args.label,
        "dataset": args.dataset,
        "train_images": len(data.x_train),
        "val_images": len(data.x_val),
        "test_images": len(data.x_test),
        "budget_s": None if args.epochs else args.budget,
        "seed": args.seed,
        "set": args.set,
        "precision": args.precision,
        "params": params,
        "probe_epoch_s": round(per_epoch, 2) if per_epoch else None,
        "epochs": result.epochs_run,
        "epoch_s_median": round(sorted(later)[len(later) // 2], 2),
        "best_val": round(max(result.history["val_accuracy"]), 4),
        "last_val": round(result.history["val_accuracy"][-1], 4),
        "test_accuracy": round(float(test), 4),
        "wall_s": round(time.time() - start, 1),
        "epoch_seconds": [e["wall"] for e in breakdown.epochs],
        "cores": sorted(os.sched_getaffinity(0)),
        "load_before": round(args.load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(p)
    p.add_argument("--budget", type=float, default=600.0, help="seconds, the probe included (default: 600)")
    p.add_argument("--epochs", type=int, help="a fixed schedule of this many epochs instead of the budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="change one recipe field")
    p.add_argument("--precision", default="float32", choices=PRECISIONS, help="Keras' dtype policy")
    p.add_argument("--label", required=True, help="the variant's name in the results")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    args.load_before = os.getloadavg()[0]
    return measure_and_append(lambda: run(args), args.out, hide="epoch_seconds")


if __name__ == "__main__":
    sys.exit(main())
