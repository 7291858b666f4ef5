"""Resident memory across a long search: does it stay flat?

    python benchmarks/memory.py --trials 100 --epochs 2 --recycle-mb 512 --out docs/benchmarks/memory.json
    python benchmarks/memory.py --trials 100 --epochs 2 --recycle-mb 0 --out docs/benchmarks/memory.json

Runs ``run_search.py`` (the default space on digits, every other option as given) in a
fresh folder, then reads each trial's ``rss_mb`` (the resident memory of the process that
trained it, written after its Keras clean-up) and reports it after trial 10, 50 and the
last, with the ratio last / 10th (issue 24's target: at most 1.2).  ``--recycle-mb 0``
keeps every trial in one process (what memory does when nothing replaces the worker); the
command line's default, 512 MiB, replaces a worker whose memory passed that.
Results are appended to ``--out`` (a JSON list), one entry a run, with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.results import append_entry

ROOT = Path(__file__).resolve().parent.parent


def measure(trials: int, epochs: int, workers: int, recycle_mb: float, seed: int, limit_train: int) -> dict:
    import optuna

    with tempfile.TemporaryDirectory(prefix="cnn-search-memory-") as folder:
        command = [
            sys.executable, str(ROOT / "run_search.py"), "--study", "memory", "--trials", str(trials),
            "--epochs", str(epochs), "--workers", str(workers), "--recycle-mb", str(recycle_mb), "--seed", str(seed),
            "--limit-train", str(limit_train),
        ]  # fmt: skip
        start = time.time()
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the search failed (exit {done.returncode}): {done.stderr[-2000:]}")
        study = optuna.load_study(study_name="memory", storage=f"sqlite:///{folder}/studies/memory.db")
        trials_ = sorted(study.trials, key=lambda t: t.datetime_complete or t.datetime_start)
        rss = [float(t.user_attrs["rss_mb"]) for t in trials_ if "rss_mb" in t.user_attrs]
        replaced = done.stdout.count("a fresh process takes over")  # the search says so in one line each time
    at = {n: rss[min(n, len(rss)) - 1] for n in (10, 50, len(rss))}
    return {
        "trials": len(rss),
        "epochs": epochs,
        "workers": workers,
        "recycle_mb": recycle_mb,
        "limit_train": limit_train,
        "replaced_workers": replaced,
        "rss_mb_after": {str(n): round(v, 1) for n, v in at.items()},
        "ratio_last_to_10th": round(at[len(rss)] / at[10], 3),
        "max_rss_mb": round(max(rss), 1),
        "seconds": round(time.time() - start, 1),
        "load": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--recycle-mb", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-train", type=int, default=400)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if args.trials < 10:
        raise SystemExit("--trials must be at least 10: the ratio is to the 10th trial")
    result = measure(args.trials, args.epochs, args.workers, args.recycle_mb, args.seed, args.limit_train)
    print(json.dumps(result))
    append_entry(args.out, result)


if __name__ == "__main__":
    main()
