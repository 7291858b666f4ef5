"""Merge benchmark results that ran in separate folders (one process a core, one seed at a
time) into one results file, then rewrite the report.

    python benchmarks/merge.py docs/benchmarks-rich /work/bench-out/fm-*/fashion_mnist.json

Runs are added by (tool, seed); a later file's run replaces an earlier one's.  Every
file must have been made with the same settings (dataset, budget, split, epochs),
except the space's fingerprint: a run of another fingerprint keeps it in its note (the
peers run once and are kept while the space grows a parameter they do not sample).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.results import SearchResults, load_json
from search.errors import CnnSearchError, UsageError

__all__ = ["merge", "main"]

SAME = ("dataset", "budget_s", "epochs", "limit_train", "val_size", "split", "space")


def merge(out_dir: Path, files: list[Path]) -> Path:
    merged: SearchResults | None = None
    for path in files:
        part = SearchResults.from_dict(load_json(path))
        if merged is None:
            merged = SearchResults(dict(part.settings))
        differ = [k for k in SAME if part.settings.get(k) != merged.settings.get(k)]
        if differ:
            raise UsageError(
                f"{path}: made with other settings ({', '.join(differ)}) than {files[0]}; merge it elsewhere"
            )
        fingerprint = part.settings.get("space_fingerprint")
        for run in part.runs:
            if fingerprint != merged.settings.get("space_fingerprint"):
                run.note = (run.note + "; " if run.note else "") + f"searched space fingerprint {fingerprint}"
            merged.put(run)
        merged.commands += [c for c in part.commands if c not in merged.commands]
    if merged is None:
        raise UsageError("name at least one results file to merge")
    stem = Path(str(merged.settings["dataset"]).split(":", 1)[-1]).name
    target = out_dir / f"{stem}.json"
    merged.save(target)
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Merge benchmark results files into one and rewrite the report.")
    p.add_argument("out", type=Path, help="results folder; the report is OUT.md")
    p.add_argument("files", type=Path, nargs="+", help="results files (the first one's settings are kept)")
    args = p.parse_args(argv)
    try:
        target = merge(args.out, args.files)
        from benchmarks.report import write_report

        write_report(args.out, args.out.with_suffix(".md"))
    except CnnSearchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"merged {len(args.files)} file(s) into {target}; report {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
