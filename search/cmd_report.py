"""``report``: write one self-contained HTML report of a study."""

from __future__ import annotations

import argparse
from pathlib import Path

from search.cli import add_study_arguments, study_location
from search.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_study_arguments(p)
    p.add_argument("--out", help="HTML file to write (default: <studies-dir>/<study>-report.html)")
    p.add_argument("--top", type=int, default=10, help="best trials to list (default: 10)")


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise UsageError(f"--top must be at least 1, received {args.top}")
    from search.report import render_report, write_report
    from search.study import load_study_for_reading, recorded_settings, safe_url

    name, url = study_location(args)
    study = load_study_for_reading(name, url)
    text = render_report(study, recorded_settings(study, url), safe_url(url), args.top)
    out = write_report(text, args.out or Path(args.studies_dir) / f"{name}-report.html")
    print(f"wrote {out} ({len(text) / 2**20:.1f} MiB, self-contained: open it in any browser)")
    return 0
