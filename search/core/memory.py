"""Process memory over a long search: measure it, and say when a worker should be replaced.

Keras 3.15 on TensorFlow 2.21 keeps two traced train-step graphs alive per
``model.fit`` even after ``keras.backend.clear_session(free_memory=True)`` and after the
model is gone (a plain Keras loop shows it; ``malloc_trim`` does not help), so a process
that runs trial after trial grows by roughly 10-15 MiB a trial.  Nothing inside the
process gives that memory back; a fresh process does.  ``MemoryWatch`` measures the
resident memory after each trial, taking the first trial's as the baseline (the first
``fit`` allocates TensorFlow's runtime once), and says when the growth since then has
passed the limit; ``workers`` then lets that process finish and starts a fresh one.
"""

from __future__ import annotations

import os

__all__ = ["rss_mb", "MemoryWatch"]


def rss_mb() -> float | None:
    """Resident memory of this process in MiB, or None where ``/proc`` is missing (not Linux)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


class MemoryWatch:
    """Growth of this process's memory since its first trial, against ``limit_mb``."""

    def __init__(self, limit_mb: float) -> None:
        self.limit_mb = limit_mb
        self.baseline: float | None = None
        self.trials = 0

    def trial_done(self) -> None:
        self.trials += 1
        if self.baseline is None:
            self.baseline = rss_mb()

    @property
    def growth(self) -> float:
        now = rss_mb()
        return 0.0 if now is None or self.baseline is None else now - self.baseline

    def exceeded(self) -> bool:
        return self.growth > self.limit_mb
