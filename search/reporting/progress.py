"""What a search prints: one line per finished trial and a summary at the end.

A multi-objective study prints each trial's values and the Pareto front instead of a
best value (Optuna has no single best trial there).
"""

from __future__ import annotations

import shlex
import sys
from typing import TextIO

import optuna
from optuna.trial import TrialState

from search.core.diagnose import Finding, explain
from search.study.budget import trial_epochs
from search.study.objectives import format_objective, is_multi_objective, pareto_front, study_metric_names
from search.study.ranking import TIED_BRANCHES, branching_settled, clear_win, validation_noise
from search.study.record import TrialRecord
from search.study.widen import stored_widening

__all__ = ["TrialPrinter", "findings", "summary", "front_text", "budget_summary"]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class TrialPrinter:
    """An Optuna callback: ``trial 7  COMPLETE  value 0.9123  best 0.9200 (#3)  41.2s``."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else 0.0
        if is_multi_objective(study):
            value_text, best_text = _values_and_front(study, trial)
        else:
            value = trial.value
            if trial.state != TrialState.COMPLETE and trial.intermediate_values:  # last epoch reported
                value = trial.intermediate_values[max(trial.intermediate_values)]
            value_text = f"value {_fmt(value)}"
            try:
                best = study.best_trial
                best_text = f"best {_fmt(best.value)} (#{best.number})"
            except ValueError:
                best_text = "best -"
        note = ""
        if trial.state == TrialState.PRUNED:
            note = f"  at epoch {trial.last_step}"
        elif trial.state == TrialState.FAIL:
            note = "  " + str(TrialRecord.of(trial).fail_reason or "failed")
        note += _plan_note(trial)
        print(
            f"trial {trial.number:>4}  {trial.state.name:<8}  {value_text}  {best_text}  {seconds:6.1f}s{note}",
            file=self.out,
            flush=True,
        )


def _plan_note(trial: optuna.trial.FrozenTrial) -> str:
    """``  [explore, 3 epochs, local around trial 4: lr, batch_size]`` for prior-sampled trials."""
    rec = TrialRecord.of(trial)
    parts = []
    if rec.phase:
        parts.append(
            f"{rec.phase}, {trial_epochs(trial) or '?'} epochs" + (", paced by the clock" if rec.paced else "")
        )
    if rec.baseline:
        parts.append("the recipe")
    elif rec.warm_start:
        parts.append(f"warm start {rec.warm_start}")
    elif rec.lever:
        parts.append(
            f"{rec.centre} with "
            + ", ".join(f"{k} {v}" for k, v in rec.lever.items())
            + (", continued" if rec.continued_from is not None else "")
        )
    elif rec.draw == "local":
        parts.append(f"near {rec.centre}: " + ", ".join(rec.changed or []))
    elif rec.draw == "replay" and rec.continued_from is not None:
        parts.append(f"trial {rec.continued_from} continued" + (" unchanged" if rec.control else ""))
    elif rec.draw in ("global", "replay"):
        parts.append("from the whole space" if rec.draw == "global" else f"{rec.centre} again")
    elif rec.draw == "sampled":
        parts.append("drawn by the sampler")
    if (rec.stopped or "").startswith("stopped at"):
        parts.append("stopped at the deadline")
    return f"  [{'; '.join(parts)}]" if parts else ""


def budget_summary(study: optuna.Study, budget) -> str:
    """What a budgeted run bought: trials and epochs per phase, and where the best came from."""
    trials = [t for t in study.get_trials(deepcopy=False) if TrialRecord.of(t).budget_start == budget.start]
    lines = [
        f"budget {budget.seconds:g}s bought {len(trials)} trials, "
        f"{sum(len(t.intermediate_values) for t in trials)} epochs:"
    ]
    widening = stored_widening(study, budget)  # the study's: with --workers, this process did not probe
    if widening is not None:  # every trial of this budget trained the wider net
        lines.append(f"  {widening.describe(budget.seconds)}")
    for phase in ("early", "explore", "branch", "promote", "final"):
        these = [t for t in trials if TrialRecord.of(t).phase == phase]
        if these:
            done = [t for t in these if t.state == TrialState.COMPLETE and t.value is not None]
            best = (
                max((t.value for t in done), default=None)
                if study.direction.name == "MAXIMIZE"
                else min((t.value for t in done), default=None)
            )
            epochs = sorted({e for e in map(trial_epochs, these) if e})  # a paced run: the epochs it ran
            lines.append(
                f"  {phase:<8} {len(these)} trials of {'/'.join(map(str, epochs))} epochs, "
                f"{sum(len(t.intermediate_values) for t in these)} epochs run, best {_fmt(best)}"
            )
    return "\n".join(lines + learned(study, trials, getattr(budget, "val_images", None)))


def learned(study: optuna.Study, trials: list[optuna.trial.FrozenTrial], images: int | None = None) -> list[str]:
    """What exploring found: each change to the recipe against the recipe at the same
    schedule length, and what the final run trained (the recipe or a found configuration).
    ``images``: the validation images of an accuracy; a change helped when it beat the
    recipe by more than their noise (``validation_noise``)."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    sign = 1 if study.direction.name == "MAXIMIZE" else -1
    recipe = {trial_epochs(t): t for t in done if _is_recipe(t)}
    lines = []
    for t in done:
        control = recipe.get(trial_epochs(t))
        if TrialRecord.of(t).phase not in ("explore", "branch") or _is_recipe(t) or control is None:
            continue
        what = TrialRecord.of(t).lever or {name: t.params.get(name) for name in (TrialRecord.of(t).changed or [])}
        if not what:
            continue
        change = ", ".join(f"{k} {v}" for k, v in what.items())
        delta = sign * (t.value - control.value)
        verdict = "helped" if clear_win(study, t, control, images) else "did not help"
        if delta > 0 and verdict != "helped":
            noise = validation_noise(control.value, images)
            verdict = f"within the noise of the validation images ({noise * 100:.1f} points)"
        lines.append(
            f"  {change}: {_fmt(t.value)} against the recipe's {_fmt(control.value)} at {trial_epochs(t)} "
            f"epochs ({delta * 100:+.1f} points): {verdict}"
        )
    finals = [t for t in trials if TrialRecord.of(t).phase == "final"]
    branches = [t for t in trials if TrialRecord.of(t).phase == "branch"]
    if finals and branches and branching_settled(study, branches, images):
        lines.append(
            f"  branching stopped after {TIED_BRANCHES} changes in a row did not beat the recipe: "
            "the rest of the budget went to the final run"
        )
    if finals and lines:
        source = TrialRecord.of(finals[-1]).source
        by_number = {t.number: t for t in trials}
        picked = by_number.get(source)
        if picked is not None and _is_recipe(picked):
            lines.append(
                "  the final run trained the recipe: no change beat it at the same schedule length"
                + (" by more than the noise of the validation images" if images else "")
            )
        elif picked is not None:
            what = TrialRecord.of(picked).lever or TrialRecord.of(picked).changed or "its configuration"
            lines.append(
                f"  the final run trained trial {picked.number} ({what}), which beat the recipe at "
                f"{trial_epochs(picked)} epochs"
            )
    return (["learned (each explored change against the recipe at the same schedule length):"] + lines) if lines else []


def _is_recipe(trial: optuna.trial.FrozenTrial) -> bool:
    """The recipe's own explore trial, or its branch that continues it unchanged (the control)."""
    return bool(
        (TrialRecord.of(trial).baseline and TrialRecord.of(trial).phase == "explore")
        or (TrialRecord.of(trial).control and TrialRecord.of(trial).phase == "branch")
    )


def _values_and_front(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> tuple[str, str]:
    """``val_accuracy 0.9123  params 12,345`` and ``front #3 #7 (2 trials)``."""
    names = study_metric_names(study)
    values = trial.values or [None] * len(names)
    value_text = "  ".join(f"{n} {format_objective(n, v)}" for n, v in zip(names, values))
    front = [t.number for t in pareto_front(study)]
    shown = " ".join(f"#{n}" for n in front[:6]) + (" ..." if len(front) > 6 else "")
    return value_text, f"front {shown} ({len(front)} trial{'s' * (len(front) != 1)})" if front else "front -"


def findings(trials: list[optuna.trial.FrozenTrial]) -> list[Finding]:
    """What the finished trials' diagnoses add up to (see search.core.diagnose)."""
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
    return explain([((TrialRecord.of(t).diagnosis or []), t.params) for t in finished])


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
    where = f"--study {shlex.quote(study.study_name)}{location_args}"
    front = pareto_front(study) if is_multi_objective(study) else []
    if front:
        print(front_text(study, front), file=out)
    else:
        try:
            best = study.best_trial
        except (ValueError, RuntimeError):  # RuntimeError: several objectives
            print("no trial completed yet", file=out)
        else:
            print(f"best value {best.value:.4f} (trial #{best.number})", file=out)
            for k, v in best.params.items():
                print(f"  {k:<18} {v:.4g}" if isinstance(v, float) else f"  {k:<18} {v}", file=out)
    for finding in findings(trials):
        print(finding.sentence(), file=out)
    print(f"database: {storage_display}", file=out)
    print(f"dashboard: python run_search.py dashboard {where}", file=out)
    if front:
        numbers = ", ".join(str(t.number) for t in front)
        print(
            f"export:    python run_search.py export {where} --trial "
            f"{front[0].number}   (any point of the front: {numbers})",
            file=out,
        )
    elif counts[TrialState.COMPLETE]:
        print(f"export:    python run_search.py export {where}", file=out)


def front_text(study: optuna.Study, front: list[optuna.trial.FrozenTrial]) -> str:
    """The Pareto front as a small table, best monitored value first."""
    names = study_metric_names(study)
    header = ["trial", *names]
    rows = [[f"#{t.number}", *(format_objective(n, v) for n, v in zip(names, t.values))] for t in front]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  " + "  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in [header, *rows]]
    title = (
        f"Pareto front of {names[0]} against {' and '.join(names[1:])}: {len(front)} trial{'s' * (len(front) != 1)} "
        "(no other trial is as good in every objective and better in one)"
    )
    return "\n".join([title, *lines])
