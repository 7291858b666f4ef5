"""The benchmark report: a markdown table and a plot per dataset, from the JSON results.

``write_report(results_dir, markdown)`` reads every ``*.json`` in ``results_dir`` (search
results written by ``run.py``, overhead and pruning results by ``overhead.py``), draws one
PNG per dataset beside its JSON and writes the markdown, after a hand-written
``results_dir/summary.md`` if there is one.  It needs nothing but the JSON,
so a report can be regenerated at any time:

    python benchmarks/report.py docs/benchmarks        # writes docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.record import ToolRun
from benchmarks.report_overhead import overhead_section, pruning_section
from benchmarks.results import SearchResults, load_json
from benchmarks.run import EXTRA_TOOLS, TOOL_NAMES

__all__ = ["FRACTIONS", "summary_rows", "targets", "plot", "write_report", "main"]

FRACTIONS = (0.25, 0.5, 1.0)
REFERENCE = "kt-hyperband"  # "time to reach" is measured against its final best
OURS = "cnn-search"
# Rows in this order (cnn-search and its variants first), then any other tool as it came.
ORDER = (TOOL_NAMES[0], *EXTRA_TOOLS, *TOOL_NAMES[1:])


def ordered_tools(results: SearchResults) -> list[str]:
    rank = {tool: i for i, tool in enumerate(ORDER)}
    return sorted(results.tools, key=lambda tool: rank.get(tool, len(ORDER)))
SMOKE_BUDGET = 60  # seconds per tool (or a single seed) below which a report says its numbers rank nothing
SHORT_BUDGET = 600  # seconds per tool below which a report warns that few trials ran


def _mean_sd(values: list[float | None], digits: int = 4) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    text = f"{statistics.fmean(known):.{digits}f}"
    if len(known) > 1:
        text += f" ± {statistics.stdev(known):.{digits}f}"
    if len(known) < len(values):
        text += f" ({len(known)}/{len(values)})"
    return text


def _mean(values: list[float]) -> str:
    return f"{statistics.fmean(values):.1f}" if values else "-"


def summary_rows(results: SearchResults) -> list[dict[str, str]]:
    """One row per tool, means over its seeds (± standard deviation where > 1 seed)."""
    budget = float(results.settings["budget_s"])
    reference = {r.seed: r.best_val for r in results.runs_of(REFERENCE)}
    rows = []
    for tool in ordered_tools(results):
        runs = results.runs_of(tool)
        row = {"tool": tool, "seeds": str(len(runs))}
        for f in FRACTIONS:
            row[f"{int(f * 100)}%"] = _mean_sd([r.best_by(f * budget) for r in runs])
        reach = [r.time_to_reach(reference[r.seed]) for r in runs if reference.get(r.seed) is not None]
        reached = [t for t in reach if t is not None]
        if not reach:
            row["to_reference"] = "-"
        elif not reached:
            row["to_reference"] = f"never (0/{len(reach)})"
        else:
            row["to_reference"] = f"{statistics.fmean(reached):.0f}s ({len(reached)}/{len(reach)})"
        for state in ("pruned", "failed", "cut"):
            row[state] = _mean([r.trials.get(state, 0) for r in runs])
        row["trials"] = _mean([sum(r.trials.values()) for r in runs])
        row["epochs"] = _mean([r.epochs for r in runs])
        row["test"] = _mean_sd([r.test_accuracy for r in runs])
        rows.append(row)
    return rows


def _curve(run: ToolRun, grid: list[float]) -> list[float]:
    return [v if (v := run.best_by(t)) is not None else math.nan for t in grid]


def plot(results: SearchResults, png: Path, title: str) -> None:
    """Best validation accuracy so far against seconds, per tool: the mean over seeds
    (drawn from the time every seed has a result) and each seed faintly, with a dot
    at each improvement (so tools whose lines coincide stay visible)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budget = float(results.settings["budget_s"])
    grid = [budget * i / 400 for i in range(401)]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for i, tool in enumerate(ordered_tools(results)):
        color = f"C{i}"
        runs = results.runs_of(tool)
        curves = [_curve(r, grid) for r in runs]
        for run, c in zip(runs, curves):
            ax.step(grid, c, where="post", color=color, alpha=0.25, linewidth=0.8)
            ax.plot([t for t, _ in run.timeline], [v for _, v in run.timeline], "o", color=color, alpha=0.8, markersize=4, zorder=3)
        mean = [math.nan if any(math.isnan(v) for v in vs) else statistics.fmean(vs) for vs in zip(*curves)]
        ax.step(grid, mean, where="post", color=color, linewidth=2, label=f"{tool} ({len(curves)} seeds)")
    ax.set_xlabel("seconds into the budget")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title(title)
    ax.set_xlim(0, budget)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)


def _settings_text(results: SearchResults) -> str:
    s, env = results.settings, results.environment
    packages = env.get("packages", {})
    versions = ", ".join(f"{k} {v}" for k, v in packages.items())
    return (
        f"Budget **{s['budget_s']:g} s per tool and seed**, up to {s['epochs']} epochs a trial, space `{s['space']}`, "
        f"{s['split']}, seeds {', '.join(map(str, sorted({r.seed for r in results.runs})))}. "
        f"Machine: {env.get('cpus', '?')} CPUs, {env.get('platform', '?')}; {versions}. Updated {results.updated}."
    )


TABLE_HEAD = (
    "| tool | best val @25% | @50% | @100% | time to Hyperband's final best | trials | pruned | failed | cut "
    "| epochs | test acc of winner |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def _size_warning(results: SearchResults, rows: list[dict[str, str]]) -> list[str]:
    budget, seeds = float(results.settings["budget_s"]), len({r.seed for r in results.runs})
    if budget < SMOKE_BUDGET or seeds < 2:
        return [
            f"*A smoke-size run ({budget:g} s per tool, {seeds} seed{'s' * (seeds != 1)}): it shows that every tool "
            "runs and is recorded; its numbers do not rank the tools.*\n"
        ]
    if budget < SHORT_BUDGET:
        trials = ", ".join(f"{r['tool']} {r['trials']}" for r in rows)
        return [
            f"*A short budget ({budget:g} s per tool): each tool ran only a few trials (mean per seed: {trials}), so "
            "the first configurations a tool happens to try weigh heavily; differences within the ± spread are noise.*\n"
        ]
    return []


def targets(results: SearchResults) -> list[str]:
    """The issue's two search targets, checked per seed: cnn-search's final best against
    KerasTuner Hyperband's (mean over seeds, target >=), and the time cnn-search took to
    match Hyperband's final best against half the time Hyperband took (target <=)."""
    ours = {r.seed: r for r in results.runs_of(OURS)}
    theirs = {r.seed: r for r in results.runs_of(REFERENCE) if r.best_val is not None}
    seeds = sorted(set(ours) & set(theirs))
    if not seeds:
        return []
    ours_best = statistics.fmean(ours[s].best_val or 0.0 for s in seeds)
    theirs_best = statistics.fmean(theirs[s].best_val for s in seeds)
    per_seed = []
    fast = 0
    for s in seeds:
        kt_time = theirs[s].time_to_reach(theirs[s].best_val)
        our_time = ours[s].time_to_reach(theirs[s].best_val)
        fast += our_time is not None and kt_time is not None and our_time <= 0.5 * kt_time
        per_seed.append(f"seed {s}: {'never' if our_time is None else f'{our_time:.0f} s'} against {kt_time:.0f} s")
    met = lambda ok: "**met**" if ok else "**missed**"  # noqa: E731
    return [
        f"Targets ({len(seeds)} seeds): final best validation accuracy, {OURS} {ours_best:.4f} against "
        f"{REFERENCE} {theirs_best:.4f} (target ≥): {met(ours_best >= theirs_best)}. "
        f"Time for {OURS} to match {REFERENCE}'s final best, against the time {REFERENCE} took to reach it "
        f"({'; '.join(per_seed)}; target ≤ half, every seed): {met(fast == len(seeds))} ({fast}/{len(seeds)} seeds).\n"
    ]


def search_section(results: SearchResults, json_path: Path, png: Path, markdown: Path) -> str:
    rows = summary_rows(results)
    lines = [f"## {results.settings['dataset']}\n", _settings_text(results) + "\n"]
    lines += _size_warning(results, rows)
    lines += targets(results)
    lines.append(TABLE_HEAD.rstrip("\n"))
    for r in rows:
        lines.append(
            f"| {r['tool']} | {r['25%']} | {r['50%']} | {r['100%']} | {r['to_reference']} | {r['trials']} "
            f"| {r['pruned']} | {r['failed']} | {r['cut']} | {r['epochs']} | {r['test']} |"
        )
    rel = lambda p: Path(os.path.relpath(p, markdown.parent)).as_posix()  # noqa: E731
    lines.append(f"\n![best validation accuracy so far]({rel(png)})\n")
    notes = [f"- {r.tool} seed {r.seed}: {r.note}" for r in results.runs if r.note]
    if notes:
        lines += ["Notes:", *notes, ""]
    lines.append(f"Raw results: [`{rel(json_path)}`]({rel(json_path)}). Commands:\n")
    lines += ["```bash", *results.commands, "```", ""]
    return "\n".join(lines)


HEADER = """# Benchmarks: `{dir}`

Generated by `benchmarks/report.py` from the JSON files in `{dir}/`; regenerate with
`python benchmarks/report.py {dir}`.  Means over seeds, ± one standard deviation;
`(k/n)`: only k of n seeds had a value.  How to read the columns:

- **best val @25/50/100%**: the best validation accuracy among trials finished by that
  fraction of the budget (only trials the tool itself ranks: complete ones);
- **time to Hyperband's final best**: seconds until the tool first matched KerasTuner
  Hyperband's best at the end of its budget, same seed (k/n: seeds where it did);
- **trials / pruned / failed / cut**: trials started; `cut` ones were running when the
  budget ended and were stopped (their values are not counted);
- **epochs**: epochs that ended within the budget, in every trial;
- **test acc of winner**: each tool's best configuration retrained the same way (all its
  epochs on the training split) and evaluated once on the held-out test split.
"""


def write_report(results_dir: Path, markdown: Path) -> None:
    """Regenerate ``markdown`` and the plots from the JSON files in ``results_dir``.

    A hand-written ``results_dir/summary.md`` (what the numbers say, what was changed
    because of them) is placed first, under the header, when there is one."""
    summary = results_dir / "summary.md"
    sections = [summary.read_text().rstrip("\n") + "\n"] if summary.exists() else []
    for json_path in sorted(results_dir.glob("*.json")):
        raw = load_json(json_path)
        if raw.get("kind") == "search":
            results = SearchResults.from_dict(raw)
            png = json_path.with_suffix(".png")
            title = f"{results.settings['dataset']}: {results.settings['budget_s']:g} s per tool"
            plot(results, png, title)
            sections.append(search_section(results, json_path, png, markdown))
        elif raw.get("kind") == "overhead":
            sections.append(overhead_section(raw))
        elif raw.get("kind") == "pruning":
            sections.append(pruning_section(raw))
    if not any(results_dir.glob("*.json")):
        sections.append(f"No results in `{results_dir}` yet: run `python benchmarks/run.py` (see README).\n")
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(HEADER.format(dir=results_dir.as_posix()) + "\n" + "\n".join(sections))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Regenerate the benchmark report from its JSON results.")
    p.add_argument("results_dir", type=Path, help="folder of JSON results (e.g. docs/benchmarks)")
    p.add_argument("--markdown", type=Path, help="report to write (default: RESULTS_DIR.md)")
    args = p.parse_args(argv)
    if not args.results_dir.is_dir():
        print(f"error: {args.results_dir} is not a folder of benchmark results", file=sys.stderr)
        return 2
    markdown = args.markdown or args.results_dir.with_suffix(".md")
    write_report(args.results_dir, markdown)
    print(f"wrote {markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
