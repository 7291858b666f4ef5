"""One self-contained HTML report of a study: Optuna's plotly figures, the best trials,
and what happened to the trials that did not complete.

The page needs no network: plotly's JavaScript is embedded once, inline, with the
first figure.  A figure Optuna cannot draw yet (parameter importances need at least
two completed trials) becomes a short note instead.  A multi-objective study gets its
Pareto front (a table and Optuna's plot) instead of a best trial; its history and
parallel coordinates show the monitored metric, its importances every objective.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.reporting.leaderboard import Leaderboard, format_value, leaderboard, param_importances, table_cells
from search.reporting.progress import findings, learned
from search.study.objectives import describe_objectives, is_multi_objective, study_metric_names
from search.study.record import BUDGET, TrialRecord
from search.study.settings import StudySettings
from search.study.widen import Widening

__all__ = ["FIGURES", "MULTI_OBJECTIVE_FIGURES", "render_report", "write_report"]

# div id -> (title, what it shows)
FIGURES = {
    "plot-history": ("Optimization history", "each completed trial's value and the best so far"),
    "plot-importances": ("Parameter importances", "how much each parameter explains the value (PED-ANOVA)"),
    "plot-parallel": ("Parallel coordinates", "parameters of every completed trial, coloured by value"),
    "plot-intermediate": ("Intermediate values", "the monitored metric after each epoch, pruned trials included"),
}
MULTI_OBJECTIVE_FIGURES = {
    "plot-pareto": ("Pareto front plot", "every completed trial's objectives; the front's trials are highlighted"),
}
PRUNED_AT = re.compile(r"pruned after epoch (\d+)")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2rem; } .meta { color: #555; } .note { color: #8a5a00; font-style: italic; }
table { border-collapse: collapse; display: block; overflow-x: auto; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
section { margin-bottom: 2rem; }
"""


def _figures(study: optuna.Study, importances: dict[str, float], target: str) -> dict[str, Callable[[], object] | str]:
    """div id -> a function drawing the figure, or a note saying why it cannot be drawn."""
    vis = optuna.visualization
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    has_intermediate = any(t.intermediate_values for t in study.get_trials(deepcopy=False))
    top_params = sorted(importances, key=importances.get, reverse=True)[:10] or None
    multi = is_multi_objective(study)
    # Several objectives: history and parallel coordinates show the first (the monitored metric).
    first: dict = {"target": lambda t: t.values[0]} if multi else {}
    out: dict[str, Callable[[], object] | str] = {}
    if multi:
        out["plot-pareto"] = (
            (lambda: vis.plot_pareto_front(study, target_names=study_metric_names(study)))
            if complete
            else "no completed trial yet"
        )
    out |= {
        "plot-history": (lambda: vis.plot_optimization_history(study, target_name=target, **first))
        if complete
        else "no completed trial yet",
        "plot-importances": (lambda: vis.plot_param_importances(study, params=list(importances), target_name=target))
        if importances
        else "needs at least two completed trials whose parameters differ",
        "plot-parallel": (lambda: vis.plot_parallel_coordinate(study, params=top_params, target_name=target, **first))
        if complete >= 2
        else "needs at least two completed trials",
        "plot-intermediate": (lambda: vis.plot_intermediate_values(study))
        if has_intermediate
        else "a multi-objective study reports no per-epoch values (Optuna cannot prune it); "
        "each trial's history is in the dashboard"
        if multi
        else "no trial has reported an epoch yet",
    }
    return out


def _figure_html(draw: Callable[[], object], div_id: str, with_js: bool) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = draw()
    fig.update_layout(height=480, margin={"t": 40})  # type: ignore[attr-defined]
    return fig.to_html(full_html=False, include_plotlyjs=with_js, div_id=div_id)  # type: ignore[attr-defined]


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{html.escape(c)}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _best_table(board: Leaderboard, max_columns: int = 10) -> str:
    header, rows = table_cells(board, max_columns)
    values = len(board.objectives) or 1
    text = _table(header, rows, numeric={0, 1, *range(2, 2 + values), 3 + values})
    if len(board.rows) < board.front_size:
        shown = f"The first {len(board.rows)} of {board.front_size} trials on the front"
        text += f"<p class=meta>{shown} (--top shows more).</p>"
    if board.columns[max_columns:]:
        text += f"<p class=meta>More parameters differ: {html.escape(', '.join(board.columns[max_columns:]))}</p>"
    if board.constant:
        same = ", ".join(f"{k}={format_value(v)}" for k, v in board.constant.items())
        text += f"<p class=meta>Same in every row: {html.escape(same)}</p>"
    return text


def _front_note(board: Leaderboard) -> str:
    return (
        "<p class=meta>The trials no other trial matches in every objective and beats in one, by "
        f"{html.escape(board.objectives[0])}; export any of them with <code>export --trial N</code>.</p>"
    )


def _outcomes(study: optuna.Study) -> str:
    """Counts of pruned and failed trials, grouped by why."""
    trials = study.get_trials(deepcopy=False)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    parts = [f"<p>{len(pruned)} pruned, {len(failed)} failed, out of {len(trials)} trials.</p>"]
    if pruned:
        by_epoch: dict[str, list[int]] = defaultdict(list)
        for t in pruned:
            match = PRUNED_AT.search(str(TrialRecord.of(t).prune_reason or ""))
            by_epoch[f"after epoch {match.group(1)}" if match else "no reason recorded"].append(t.number)
        rows = [[when, str(len(ns)), ", ".join(f"#{n}" for n in ns)] for when, ns in sorted(by_epoch.items())]
        parts.append("<h3>Pruned</h3>" + _table(["when", "trials", "which"], rows, numeric={1}))
        detail = [[f"#{t.number}", str(TrialRecord.of(t).prune_reason or "-")] for t in pruned]
        parts.append(_table(["trial", "reason"], detail))
    if failed:
        reasons = Counter(str(TrialRecord.of(t).fail_reason or "no reason recorded") for t in failed)
        which: dict[str, list[int]] = defaultdict(list)
        for t in failed:
            which[str(TrialRecord.of(t).fail_reason or "no reason recorded")].append(t.number)
        rows = [[reason, str(n), ", ".join(f"#{x}" for x in which[reason])] for reason, n in reasons.most_common()]
        parts.append("<h3>Failed</h3>" + _table(["reason", "trials", "which"], rows, numeric={1}))
    return "\n".join(parts)


def _findings(trials: list) -> str:
    """The diagnoses of all trials, as sentences (see search.core.diagnose for the thresholds)."""
    found = findings(trials)
    if not found:
        return "<p class=note>No trial diverged, stayed near chance, overfitted or dropped sharply.</p>"
    return "<ul>" + "".join(f"<li>{html.escape(f.sentence())}</li>" for f in found) + "</ul>"


def _budget_section(study: optuna.Study, trials: list) -> str:
    """What each budget of the study bought: its phases, and each explored change against
    the recipe at the same schedule length (the end-of-search summary's lines)."""
    from search.study.budget import trial_epochs

    budgets = sorted({TrialRecord.of(t).budget_start for t in trials if TrialRecord.of(t).budget_start})
    if not budgets:
        return ""
    parts = []
    for start in budgets:
        mine = [t for t in trials if TrialRecord.of(t).budget_start == start]
        when = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        rows = [
            [
                f"#{t.number}",
                str(TrialRecord.of(t).phase or ""),
                str(trial_epochs(t) or ""),
                format_value(t.value) if t.value is not None else t.state.name.lower(),
                (
                    "the recipe"
                    if TrialRecord.of(t).baseline
                    else f"trial {TrialRecord.of(t).source} continued unchanged"
                    if TrialRecord.of(t).control
                    else ", ".join(f"{k} {v}" for k, v in (TrialRecord.of(t).lever or {}).items())
                    or (
                        f"trial {TrialRecord.of(t).source} again"
                        + (", continued from its weights" if TrialRecord.of(t).continued_from is not None else "")
                        if TrialRecord.of(t).source is not None
                        else ", ".join(TrialRecord.of(t).changed or []) or "drawn"
                    )
                ),
            ]
            for t in mine
        ]
        stored = study.user_attrs.get(BUDGET) or {}
        lines = learned(study, mine, stored.get("val_images"))
        widening = Widening.from_dict(stored.get("widening")) if stored.get("start") == start else None
        if widening is not None:  # the study keeps its running budget's record: the latest budget's
            lines = [lines[0] if lines else "", f"  {widening.describe(stored['seconds'])}"] + lines[1:]
        parts.append(
            f"<h3>Budget started {html.escape(when)}</h3>"
            + _table(["trial", "phase", "epochs", "value", "what"], rows, numeric={2, 3})
            + (
                "<ul>" + "".join(f"<li>{html.escape(line.strip())}</li>" for line in lines[1:]) + "</ul>"
                if lines
                else ""
            )
        )
    return "<section><h2>What the budget bought</h2>" + "".join(parts) + "</section>"


def render_report(study: optuna.Study, settings: StudySettings, storage_display: str, top: int = 10) -> str:
    """The whole report as one HTML string."""
    importances = param_importances(study)
    board = leaderboard(study, top, importances)
    trials = study.get_trials(deepcopy=False)
    counts = ", ".join(f"{n} {s.lower()}" for s, n in board.counts.items() if n) or "no trials"
    multi = is_multi_objective(study)
    if multi:
        best_text = (
            f"Pareto front: {board.front_size} trial{'s' * (board.front_size != 1)} "
            f"({', '.join(f'#{r.number}' for r in board.rows)}"
            f"{', ...' if len(board.rows) < board.front_size else ''})"
            if board.rows
            else "no completed trial yet"
        )
        target = describe_objectives(settings)
    else:
        target = f"{settings.monitor} ({settings.direction})"
        try:
            best = study.best_trial
            best_text = f"best {settings.monitor} {best.value:.4f} (trial #{best.number})"
        except ValueError:
            best_text = "no completed trial yet"
    sections = []
    js_done = False
    for div_id, draw in _figures(study, importances, settings.monitor).items():
        title, what = {**MULTI_OBJECTIVE_FIGURES, **FIGURES}[div_id]
        if isinstance(draw, str):
            body = f"<p class=note>Not drawn: {html.escape(draw)}.</p>"
        else:
            body = _figure_html(draw, div_id, with_js=not js_done)
            js_done = True
        sections.append(f"<section><h2>{title}</h2><p class=meta>{html.escape(what)}</p>{body}</section>")
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    name = html.escape(study.study_name)
    front_note = _front_note(board) if multi else ""
    best_table = _best_table(board) if board.rows else "<p class=note>No completed or pruned trial yet.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cnn-search report: {name}</title>
<style>{_STYLE}</style></head>
<body>
<h1>Study {name}</h1>
<p class=meta>dataset {html.escape(settings.dataset)}; space {html.escape(str(settings.space.get("name", "?")))};
{html.escape(target)}; {len(trials)} trials: {html.escape(counts)};
{html.escape(best_text)}<br>storage {html.escape(storage_display)}; generated {generated}</p>
<section><h2>{"Pareto front" if multi else "Best trials"}</h2>{front_note}{best_table}</section>
{"".join(sections)}
{_budget_section(study, trials)}
<section><h2>What went wrong</h2>{_findings(trials)}</section>
<section><h2>Pruned and failed trials</h2>{_outcomes(study)}</section>
</body></html>
"""


def write_report(text: str, path: str | Path) -> Path:
    from search.core.outputs import atomic_write

    return atomic_write(path, text)
