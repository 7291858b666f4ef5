"""``export``: write the best (or a chosen) trial's run config, and its provenance, as JSON.

A multi-objective study has no best trial: ``--trial N`` picks a point of its front."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from search.cli import add_study_arguments, study_location


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_study_arguments(p)
    p.add_argument(
        "--trial", type=int, help="export this trial number instead of the best one (needed with several objectives)"
    )
    p.add_argument("--out", help="file to write (default: <studies-dir>/<study>-best.json, or -trialN.json)")


def run(args: argparse.Namespace) -> int:
    from search.core.outputs import check_output_file
    from search.reporting.export import choose_trial, export_trial, write_export
    from search.study.storage import load_study_for_reading

    name, url = study_location(args)
    suffix = "best" if args.trial is None else f"trial{args.trial}"
    out = Path(args.out) if args.out else Path(args.studies_dir) / f"{name}-{suffix}.json"
    replaced = check_output_file(out, "--out", "export")  # before the study is read: nothing of ours is overwritten
    study = load_study_for_reading(name, url)
    trial = choose_trial(study, args.trial)
    export = export_trial(study, trial, url)
    write_export(export, out)
    from search.study.objectives import format_objective

    values = export.source.get("values") or {export.source["monitor"]: export.source["value"]}
    shown = ", ".join(f"{k} {format_objective(k, v)}" for k, v in values.items())
    print(
        f"exported trial {trial.number} ({trial.state.name}, {shown}) of study '{name}' to {out}"
        + (" (replaced the earlier export there)" if replaced else "")
    )
    print(f"train it: python run_search.py train --config {shlex.quote(str(out))}")
    return 0
