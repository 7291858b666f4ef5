"""``report``: write one self-contained HTML report of a study, a trained model, or both."""

from __future__ import annotations

import argparse
from pathlib import Path

from search.cli import add_study_arguments, study_location
from search.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_study_arguments(p, required=False)
    p.add_argument(
        "--model",
        metavar="DIR",
        help="a folder 'train' wrote: its test scores, per-class precision/recall/F1, confusion matrix and "
        "mistakes (with --study: added to the study's report)",
    )
    p.add_argument("--out", help="HTML file to write (default: <studies-dir>/<study>-report.html, or DIR/report.html)")
    p.add_argument("--top", type=int, default=10, help="best trials to list (default: 10)")


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise UsageError(f"--top must be at least 1, received {args.top}")
    if not args.study and not args.model:
        raise UsageError("report: name a study (--study NAME) or a trained model's folder (--model DIR), or both")
    from search.core.outputs import check_output_file
    from search.reporting.model_report import model_section, render_model_report
    from search.reporting.report import write_report

    name, url = study_location(args) if args.study else ("", "")
    if args.out:
        out = Path(args.out)
    else:
        out = Path(args.studies_dir) / f"{name}-report.html" if args.study else Path(args.model) / "report.html"
    replaced = check_output_file(out, "--out", "report")  # before anything is read: nothing of ours is overwritten
    if not args.study:
        text = render_model_report(args.model)
        write_report(text, out)
    else:
        from search.reporting.report import render_report
        from search.study.storage import load_study_for_reading, recorded_settings, safe_url

        section = model_section(args.model) if args.model else ""  # a bad folder stops before the study is read
        study = load_study_for_reading(name, url)
        text = render_report(study, recorded_settings(study, url), safe_url(url), args.top)
        text = text.replace("</body></html>", f"{section}\n</body></html>") if section else text
        write_report(text, out)
    print(
        f"wrote {out} ({len(text) / 2**20:.1f} MiB, self-contained: open it in any browser)"
        + (" (replaced the earlier report there)" if replaced else "")
    )
    return 0
