"""What the benchmark records about one tool and seed.  No TensorFlow here: the report
reads these records without it.

Every tool reports finished trials to a ``Recorder`` and trains with a ``BudgetClock``
callback (``clock.py``), so all tools are measured by the same rules:

* the clock starts before the tool builds anything (study, tuner, oracle), so a tool's
  own set-up counts against its budget;
* a trial that finishes within the budget counts; the one running when the budget ends
  is stopped at its next training batch (``BudgetClock`` raises ``BudgetSpent``, which
  each tool lets end its search) and counted as ``cut``, as is a trial whose last
  validation pass ends after the budget (its value is not used);
* the timeline holds (seconds, best validation accuracy so far) at every improvement,
  counting only the trials the tool itself would rank (complete ones);
* epochs spent are the epochs that ended within the budget, whatever their trial's fate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from search.core.config import RunConfig

__all__ = ["STATES", "BudgetSpent", "Recorder", "ToolRun"]

STATES = ("complete", "pruned", "failed", "cut")


@dataclass
class ToolRun:
    """One tool's run on one seed: what the report is made of (plain JSON data)."""

    tool: str
    seed: int
    budget_s: float
    wall_s: float = 0.0
    timeline: list[tuple[float, float]] = field(default_factory=list)
    trials: dict[str, int] = field(default_factory=dict)
    epochs: int = 0
    best_val: float | None = None
    best_config: dict[str, Any] | None = None
    test_accuracy: float | None = None
    retrain_s: float | None = None
    retrain_val: float | None = None  # the retrained winner's best validation accuracy: does the trial value repeat?
    load_before: float | None = None  # 1-minute load average: the machine was shared or not
    note: str | None = None
    # what a budgeted search ran, trial by trial: phase, the change to the recipe, epochs, value, seconds
    explored: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["timeline"] = [list(point) for point in self.timeline]
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ToolRun:
        raw = dict(raw)
        raw["timeline"] = [(float(t), float(v)) for t, v in raw.get("timeline", [])]
        return cls(**raw)

    def best_by(self, seconds: float) -> float | None:
        """Best validation accuracy among results known ``seconds`` into the run."""
        known = [v for t, v in self.timeline if t <= seconds]
        return max(known) if known else None

    def time_to_reach(self, value: float) -> float | None:
        """Seconds until the best so far first reached ``value`` (None: never)."""
        return next((t for t, v in self.timeline if v >= value), None)


class Recorder:
    """Collects one tool's results while it runs; ``run`` is the finished record."""

    def __init__(self, tool: str, seed: int, budget: float) -> None:
        if budget <= 0:
            raise ValueError(f"budget: expected a positive number of seconds, received {budget!r}")
        self.run = ToolRun(tool, seed, budget, trials={s: 0 for s in STATES})
        self.budget = budget
        self._start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def remaining(self) -> float:
        return max(0.0, self.budget - self.elapsed())

    def over_budget(self) -> bool:
        return self.elapsed() >= self.budget

    def epoch_done(self) -> None:
        if not self.over_budget():
            self.run.epochs += 1

    def trial_cut(self) -> None:
        """The running trial was stopped because the budget ended."""
        self.run.trials["cut"] += 1

    def trial_done(self, state: str, value: float | None, config: Callable[[], RunConfig]) -> None:
        """A trial ended as ``state`` with ``value``; ``config`` rebuilds its run config."""
        if state not in STATES:
            raise ValueError(f"state: expected one of {', '.join(STATES)}, received {state!r}")
        seconds = self.elapsed()
        if seconds > self.budget:
            state = "cut"
        self.run.trials[state] += 1
        if state != "complete" or value is None or not math.isfinite(value):
            return
        if self.run.best_val is None or value > self.run.best_val:
            self.run.best_val = float(value)
            self.run.best_config = config().to_dict()
            self.run.timeline.append((round(seconds, 3), float(value)))

    def explored(self, entry: dict[str, Any]) -> None:
        """One trial of a budgeted search, as it ended (the report says what was explored and kept)."""
        self.run.explored.append({"at_s": round(self.elapsed(), 1), **entry})

    def finish(self, note: str | None = None) -> ToolRun:
        self.run.wall_s = round(self.elapsed(), 3)
        self.run.note = note
        return self.run


class BudgetSpent(Exception):
    """The budget has ended: raised inside the running trial to end the whole search."""
