"""Run the search benchmark: every tool, one after another, on the same data, space and
wall-clock budget, for each seed; then retrain each tool's winner and test it.

    python benchmarks/run.py --dataset fashion_mnist --data-dir ../shared/data/fashion-mnist \\
        --limit-train 10000 --val-size 2000 --budget 600 --seeds 0 1 2 --out docs/benchmarks

Results go to ``OUT/<dataset>.json`` after every tool run, and the report
(``OUT.md`` plus ``OUT/<dataset>.png``) is rewritten after every seed.  Running the same
command again resumes: (tool, seed) pairs already in the JSON are skipped unless
``--rerun`` is given; other settings than those recorded are refused (``--overwrite``
starts over).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
import tempfile
import typing
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.args import add_data_arguments
from benchmarks.record import Recorder, ToolRun
from benchmarks.results import SearchResults
from search.errors import CnnSearchError, TrialError, UsageError

if typing.TYPE_CHECKING:
    from benchmarks.tools import Bench

__all__ = ["main", "run_tool"]

TOOL_NAMES = ("cnn-search", "recipe-paced", "recipe", "kt-hyperband", "kt-bayesian", "optuna-example", "random")
EXTRA_TOOLS = ("cnn-search-tpe", "cnn-search-baseline", "tpe-median")  # run when named: other defaults of cnn-search
NEEDS = {"kt-hyperband": "keras_tuner", "kt-bayesian": "keras_tuner", "optuna-example": "optuna_integration"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark cnn-search against KerasTuner and hand-written Optuna.")
    add_data_arguments(p)
    p.add_argument("--space", default="cnn", help="built-in space or .toml file (default: cnn)")
    p.add_argument("--epochs", type=int, default=10, help="maximum epochs a trial, for every tool (default: 10)")
    p.add_argument("--budget", type=float, default=600, help="wall-clock seconds per tool and seed (default: 600)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    p.add_argument(
        "--tools",
        nargs="+",
        choices=TOOL_NAMES + EXTRA_TOOLS,
        default=list(TOOL_NAMES),
        help=f"tools to run (default: {' '.join(TOOL_NAMES)}; also {', '.join(EXTRA_TOOLS)})",
    )
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks"), help="results folder; the report is OUT.md")
    p.add_argument("--rerun", action="store_true", help="run (tool, seed) pairs again that the results already hold")
    p.add_argument("--overwrite", action="store_true", help="discard results made with other settings")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    if args.budget <= 0:
        raise UsageError(f"--budget must be a positive number of seconds, received {args.budget}")
    if args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, received {args.epochs}")
    missing = sorted({NEEDS[t] for t in args.tools if t in NEEDS and importlib.util.find_spec(NEEDS[t]) is None})
    if importlib.util.find_spec("matplotlib") is None:
        missing.append("matplotlib")
    if missing:
        raise UsageError(
            f"the benchmark needs {', '.join(missing)}: pip install -e '.[cpu,bench]' (or leave those --tools out)"
        )


def run_tool(name: str, bench: Bench, budget: float, retrained: dict[str, tuple[str, float, float]]) -> ToolRun:
    """Run tool ``name`` on ``bench`` for ``budget`` seconds, then retrain its winner.

    ``retrained`` maps a config (as JSON) to (tool, test accuracy, seconds) of its
    retraining: a winner identical to an earlier one (tools seeded alike often start
    with the same random trial) is trained once, and noted.
    """
    from benchmarks.tools import get_tool, retrain_and_test
    from search.core.config import RunConfig
    from search.core.training import keras_session

    load = os.getloadavg()[0]
    recorder = Recorder(name, bench.seed, budget)
    note = None
    try:
        with keras_session():
            get_tool(name)(bench, recorder)
    except UsageError:
        raise
    except Exception as e:  # a tool that crashes still has a record: say why it stopped
        note = f"stopped early by {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
    run = recorder.finish(note)
    run.load_before = round(load, 2)
    if run.best_config is None:
        return run
    key = json.dumps(run.best_config, sort_keys=True)
    if key in retrained:
        other, run.test_accuracy, run.retrain_s = retrained[key]
        run.note = (
            run.note + "; " if run.note else ""
        ) + f"same winning config as {other}: its test accuracy is reused"
        return run
    try:
        accuracy, seconds, run.retrain_val = retrain_and_test(RunConfig.from_dict(run.best_config), bench.data)
    except TrialError as e:
        run.note = (run.note + "; " if run.note else "") + f"retraining the winner failed: {e}"
        return run
    run.test_accuracy, run.retrain_s = accuracy, round(seconds, 1)
    retrained[key] = (f"{name} seed {bench.seed}", accuracy, run.retrain_s)
    return run


def describe(run: ToolRun) -> str:
    best = f"{run.best_val:.4f} at {run.timeline[-1][0]:.0f}s" if run.best_val is not None else "-"
    test = f"{run.test_accuracy:.4f}" if run.test_accuracy is not None else "-"
    t = run.trials
    return (
        f"seed {run.seed}  {run.tool:<15} best val {best}  trials {sum(t.values())} "
        f"({t['pruned']} pruned, {t['failed']} failed, {t['cut']} cut)  epochs {run.epochs}  test {test}"
        + (f"  [{run.note}]" if run.note else "")
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_args(args)
        return _run(args, argv)
    except CnnSearchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import optuna

    from benchmarks.report import write_report
    from benchmarks.tools import Bench, load_data, warm_up
    from search.core.config import RunConfig, TrainConfig
    from search.core.space_files import load_space

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a trial stopped by the budget is no news
    space = load_space(args.space)
    data_cfg, data = load_data(args.dataset, args.data_dir, args.limit_train, args.val_size)
    settings = {
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "space": args.space,
        "space_fingerprint": space.fingerprint,
        "budget_s": args.budget,
        "epochs": args.epochs,
        "limit_train": args.limit_train,
        "val_size": args.val_size,
        "split": f"{len(data.x_train)} train / {len(data.x_val)} val / {len(data.x_test)} test images",
    }
    stem = Path(args.dataset.split(":", 1)[1]).name if ":" in args.dataset else args.dataset
    path = args.out / f"{stem}.json"
    results = SearchResults.open(path, settings, args.overwrite)
    command = "python benchmarks/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if command not in results.commands:
        results.commands.append(command)
    base = RunConfig(data=data_cfg, train=TrainConfig(epochs=args.epochs))
    print(f"{data.describe()}; space '{space.name}'; {args.budget:g}s per tool and seed; results in {path}", flush=True)
    done = {(r.tool, r.seed) for r in results.runs}
    warm_up(data)
    retrained = {  # winners already tested, in this file: an identical one is not retrained
        json.dumps(r.best_config, sort_keys=True): (f"{r.tool} seed {r.seed}", r.test_accuracy, r.retrain_s)
        for r in results.runs
        if r.best_config is not None and r.test_accuracy is not None and r.retrain_s is not None
    }
    for seed in args.seeds:
        for tool in args.tools:
            if (tool, seed) in done and not args.rerun:
                print(f"seed {seed}  {tool:<15} already in {path}; skipped (--rerun runs it again)")
                continue
            with tempfile.TemporaryDirectory(prefix=f"bench-{tool}-") as tmp:
                run = run_tool(tool, Bench(data, space, base.replace(seed=seed), Path(tmp)), args.budget, retrained)
            results.put(run)
            results.save(path)
            print(describe(run), flush=True)
        write_report(args.out, args.out.with_suffix(".md"))  # after each seed: a partial report to read
    print(f"report: {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
