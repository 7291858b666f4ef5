"""Stress one SQLite study with N worker processes, through the same code path as
``search --workers N`` (spawned workers, shared trial budget, heartbeats), but with an
objective that trains nothing and writes as much as a real trial does, as fast as it
can: 5 "epochs", each a report plus history and timing attributes.

    PYTHONPATH=. python benchmarks/sqlite_writers.py WORKERS TRIALS [HEARTBEAT_S]

Prints the trials stored by state, the workers' exit codes and trials per second.  A
'database is locked' error would fail a trial or stop a worker, and show here.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter

import optuna

from search.core.space_files import load_space
from search.study.placement import plan_workers
from search.study.settings import StudySettings
from search.study.storage import create_or_load
from search.study.workers import SearchJob, run


def no_setup(plan) -> None:
    pass


def no_data() -> None:
    return None


def busy_objective(data):
    return _busy


def _busy(trial: optuna.trial.Trial) -> float:
    x = trial.suggest_float("x", -2.0, 2.0)
    trial.set_user_attr("config", {"x": x, "pad": "y" * 2000})  # about a real config's size
    history: dict[str, list[float]] = {"loss": [], "val_accuracy": []}
    for epoch in range(1, 6):
        history["loss"].append(x * x / epoch)
        history["val_accuracy"].append(1 - x * x / epoch)
        trial.set_user_attr("history", history)
        trial.set_user_attr("epoch_seconds", [0.01] * epoch)
        trial.report(x * x / epoch, epoch)
    trial.set_user_attr("rss_mb", 1.0)
    return x * x


def main() -> None:
    workers, trials = int(sys.argv[1]), int(sys.argv[2])
    heartbeat = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{os.path.join(tmp, 'stress.db')}"
        settings = StudySettings.of(
            dataset="digits",
            space=load_space("cnn").to_dict(),
            direction="minimize",
            pruner="none",
            heartbeat=heartbeat,
        )
        create_or_load("stress", url, settings)
        job = SearchJob("stress", url, settings, trials, None, no_data, busy_objective, setup=no_setup)
        start = time.perf_counter()
        outcome = run(job, plan_workers(workers, (), cores=os.cpu_count() or 1))
        seconds = time.perf_counter() - start
        stored = optuna.load_study(study_name="stress", storage=url).get_trials()
    numbers = sorted(t.number for t in stored)
    print(
        f"workers {workers}: {len(stored)} trials stored ({dict(Counter(t.state.name for t in stored))}), "
        f"numbers 0..{trials - 1} each once: {numbers == list(range(trials))}, exit code {outcome.exit_code}, "
        f"{seconds:.1f}s, {len(stored) / seconds:.1f} trials/s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
