"""What a search prints: one line per finished trial and a summary at the end."""

from __future__ import annotations

import shlex
import sys
from typing import TextIO

import optuna
from optuna.trial import TrialState

from search.diagnose import Finding, explain

__all__ = ["TrialPrinter", "findings", "summary"]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class TrialPrinter:
    """An Optuna callback: ``trial 7  COMPLETE  value 0.9123  best 0.9200 (#3)  41.2s``."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else 0.0
        value = trial.value
        if trial.state != TrialState.COMPLETE and trial.intermediate_values:  # last epoch reported
            value = trial.intermediate_values[max(trial.intermediate_values)]
        try:
            best = study.best_trial
            best_text = f"best {_fmt(best.value)} (#{best.number})"
        except ValueError:
            best_text = "best -"
        note = ""
        if trial.state == TrialState.PRUNED:
            note = f"  at epoch {trial.last_step}"
        elif trial.state == TrialState.FAIL:
            note = "  " + str(trial.user_attrs.get("fail_reason", "failed"))
        print(
            f"trial {trial.number:>4}  {trial.state.name:<8}  value {_fmt(value)}  {best_text}  {seconds:6.1f}s{note}",
            file=self.out,
            flush=True,
        )


def findings(trials: list[optuna.trial.FrozenTrial]) -> list[Finding]:
    """What the finished trials' diagnoses add up to (see search.diagnose)."""
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
    return explain([(t.user_attrs.get("diagnosis", []), t.params) for t in finished])


def summary(study: optuna.Study, storage_display: str, out: TextIO = sys.stdout, *, location_args: str = "") -> None:
    """Counts, the best trial, and the commands that watch and export this study.

    ``location_args`` are the options that find the study again (``--storage ...``).
    """
    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    print(
        f"\nstudy '{study.study_name}': {len(trials)} trials, {counts[TrialState.COMPLETE]} complete, "
        f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed",
        file=out,
    )
    try:
        best = study.best_trial
    except ValueError:
        print("no trial completed yet", file=out)
    else:
        print(f"best value {best.value:.4f} (trial #{best.number})", file=out)
        for k, v in best.params.items():
            print(f"  {k:<18} {v:.4g}" if isinstance(v, float) else f"  {k:<18} {v}", file=out)
    for finding in findings(trials):
        print(finding.sentence(), file=out)
    print(f"database: {storage_display}", file=out)
    where = f"--study {shlex.quote(study.study_name)}{location_args}"
    print(f"dashboard: python run_search.py dashboard {where}", file=out)
    if counts[TrialState.COMPLETE]:
        print(f"export:    python run_search.py export {where}", file=out)
