"""A variant of the recipe against the recipe itself, over the same seconds, one core each at
the same time, the cores swapped from seed to seed: what a change is worth per second (issue 25).

    python benchmarks/pair.py --dataset folder:../shared/data/cifar10-subset --limit-train 9000 \\
        --val-size 1000 --budget 600 --seeds 0 1 2 --set model.stem=whiten --out /tmp/pairs/whiten

The machine's speed drifts from day to day, so only runs made side by side compare.  Each side
is ``benchmarks/recipe_variant.py`` in its own process, pinned to one core with one TensorFlow
thread; every option this script does not know (the data, ``--budget`` or ``--epochs``) goes to
both, and so does each ``--base-set`` (a variant of a changed recipe: ``--base-set
model.base_filters=64 --set augment.cutout=0.25``). Their JSON entries are appended to
``OUT/recipe.json`` and ``OUT/variant.json`` and their output to ``OUT/*.log``; a seed both
files already hold is not run again, so a stopped run resumes (give each experiment its own
OUT). At the end, the table of every seed held: epochs, median epoch seconds, best validation
and test accuracy of each side and their differences, with the mean and standard deviation of
the differences.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.results import load_json
from search.errors import UsageError

VARIANT = Path(__file__).resolve().parent / "recipe_variant.py"
SIDES = ("recipe", "variant")
THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="the variant's change")
    p.add_argument(
        "--base-set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="a change both sides make"
    )
    p.add_argument("--precision", default="float32", help="the variant's Keras dtype policy")
    p.add_argument("--label", help="the variant's name (default: its changes)")
    p.add_argument("--out", type=Path, required=True, help="a folder of this experiment's own")
    p.add_argument("--cores", type=int, nargs=2, default=[0, 1], metavar=("A", "B"), help="(default: 0 1)")
    args, forwarded = p.parse_known_args(argv)
    if not args.set and args.precision == "float32":
        p.error("give the variant's change: --set SECTION.KEY=VALUE (e.g. model.stem=whiten) or --precision")
    allowed = os.sched_getaffinity(0)
    if not set(args.cores) <= allowed:
        p.error(f"--cores {args.cores[0]} {args.cores[1]}: this process may run on cores {sorted(allowed)} only")
    args.label = args.label or " ".join(args.set + ([args.precision] if args.precision != "float32" else []))
    return args, forwarded


def load(path: Path) -> list[dict]:
    """The runs a side's file holds ([] before its first); a file that is not one side's runs is refused."""
    if not path.exists():
        return []
    runs = load_json(path)
    if not isinstance(runs, list) or not all(isinstance(r, dict) and "seed" in r for r in runs):
        raise UsageError(f"{path}: not a list of recipe_variant.py runs; give --out a folder of this experiment's own")
    return runs


def as_sets(changes: list[str]) -> list[str]:
    return [item for change in changes for item in ("--set", change)]


def side_argv(args: argparse.Namespace, forwarded: list[str], side: str, seed: int) -> list[str]:
    argv = [sys.executable, str(VARIANT), *forwarded, "--seed", str(seed), "--out", str(args.out / f"{side}.json")]
    argv += as_sets(args.base_set)
    if side == "recipe":
        return [*argv, "--label", " ".join(["recipe", *args.base_set])]
    return [*argv, "--label", args.label, *as_sets(args.set), "--precision", args.precision]


def run_seed(args: argparse.Namespace, forwarded: list[str], seed: int) -> bool:
    """Both sides of ``seed`` at once, one core each (swapped on odd seeds); True if both ran."""
    cores = args.cores if seed % 2 == 0 else args.cores[::-1]
    procs = []
    for side, core in zip(SIDES, cores):
        log = (args.out / f"{side}-s{seed}.log").open("w")
        procs.append(
            subprocess.Popen(
                side_argv(args, forwarded, side, seed),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **THREADS},
                preexec_fn=lambda core=core: os.sched_setaffinity(0, {core}),
            )
        )
    codes = [p.wait() for p in procs]
    for side, code in zip(SIDES, codes):
        if code != 0:
            print(f"seed {seed}: the {side} side failed (exit {code}); see {args.out / f'{side}-s{seed}.log'}")
    return not any(codes)


def table(out: Path) -> list[str]:
    """The rows of every seed both sides hold, then the differences' mean and spread."""
    runs = {side: {r["seed"]: r for r in load(out / f"{side}.json")} for side in SIDES}
    seeds = sorted(set(runs["recipe"]) & set(runs["variant"]))
    rows = [
        "| seed | epochs | median epoch (s) | best validation (difference) | test (difference) |",
        "|---|---|---|---|---|",
    ]
    diffs: dict[str, list[float]] = {"best_val": [], "test_accuracy": []}
    for seed in seeds:
        a, b = runs["recipe"][seed], runs["variant"][seed]
        cells = []
        for key in diffs:
            diffs[key].append(100 * (b[key] - a[key]))
            cells.append(f"{a[key]:.4f} / {b[key]:.4f} ({diffs[key][-1]:+.2f})")
        epochs, median = f"{a['epochs']} / {b['epochs']}", f"{a['epoch_s_median']} / {b['epoch_s_median']}"
        rows.append(f"| {seed} | {epochs} | {median} | {' | '.join(cells)} |")
    if seeds:
        mean = {k: statistics.mean(v) for k, v in diffs.items()}
        spread = {k: statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in diffs.items()}
        rows.append(
            f"mean difference over {len(seeds)} seed(s), points: validation {mean['best_val']:+.2f} "
            f"± {spread['best_val']:.2f}, test {mean['test_accuracy']:+.2f} ± {spread['test_accuracy']:.2f}"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    args, forwarded = parse_args(argv)
    try:  # both sides' files are this experiment's, checked before any run
        for side in SIDES:
            load(args.out / f"{side}.json")
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    failed = False
    for seed in args.seeds:
        held = [{r["seed"] for r in load(args.out / f"{side}.json")} for side in SIDES]
        if all(seed in h for h in held):
            print(f"seed {seed}: both sides already in {args.out}, not run again")
            continue
        print(f"seed {seed}: recipe and {args.label!r} side by side, load {os.getloadavg()[0]:.2f}", flush=True)
        failed |= not run_seed(args, forwarded, seed)
    print("\n".join(table(args.out)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
