"""Benchmark results as JSON files: one per dataset, written after every tool run so a
long benchmark can be stopped and resumed, and read back by the report writer."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.record import ToolRun
from search.errors import CnnSearchError, UsageError

__all__ = ["SearchResults", "append_entry", "environment", "load_json", "measure_and_append"]

PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "optuna", "optuna-integration", "keras-tuner", "numpy")


def environment() -> dict[str, Any]:
    """The machine and package versions: timings mean little without them."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "packages": versions,
    }


def append_entry(out: Path | None, entry: dict[str, Any]) -> None:
    """Add ``entry`` to the JSON list in ``out`` (created if missing; None: nothing), with
    the machine and package versions: the small measuring scripts keep one entry a run."""
    if out is None:
        return
    runs = json.loads(out.read_text()) if out.exists() else []
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([*runs, {**entry, "environment": environment()}], indent=1) + "\n")


def measure_and_append(measure: Callable[[], dict[str, Any]], out: Path | None, hide: str) -> int:
    """Run a measuring script's ``measure``, print its entry (less the long ``hide`` list)
    as one JSON line and append it to ``out``; exit status 0, or 2 with one line on bad
    input (nothing written)."""
    try:
        entry = measure()
    except CnnSearchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in entry.items() if k != hide}))
    append_entry(out, entry)
    return 0


def load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: cannot read benchmark results ({e}); delete the file or pass another --out") from e


@dataclass
class SearchResults:
    """Settings of a search benchmark (dataset, budget, ...) and the runs made with them."""

    settings: dict[str, Any]  # what makes runs comparable: data, space, budget, epochs
    runs: list[ToolRun] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    updated: str = ""

    def put(self, run: ToolRun) -> None:
        """Add ``run``, replacing an earlier run of the same tool and seed."""
        self.runs = [r for r in self.runs if (r.tool, r.seed) != (run.tool, run.seed)] + [run]

    def runs_of(self, tool: str) -> list[ToolRun]:
        return sorted((r for r in self.runs if r.tool == tool), key=lambda r: r.seed)

    @property
    def tools(self) -> list[str]:
        return list(dict.fromkeys(r.tool for r in self.runs))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "search",
            "settings": self.settings,
            "commands": self.commands,
            "environment": self.environment,
            "updated": self.updated,
            "runs": [r.to_dict() for r in self.runs],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SearchResults:
        return cls(
            settings=raw["settings"],
            runs=[ToolRun.from_dict(r) for r in raw.get("runs", [])],
            commands=list(raw.get("commands", [])),
            environment=raw.get("environment", {}),
            updated=raw.get("updated", ""),
        )

    @classmethod
    def open(cls, path: Path, settings: dict[str, Any], overwrite: bool) -> SearchResults:
        """Resume the results at ``path`` if they were made with ``settings``, else start anew."""
        if path.exists() and not overwrite:
            old = cls.from_dict(load_json(path))
            if old.settings != settings:
                changed = sorted(k for k in {*settings, *old.settings} if settings.get(k) != old.settings.get(k))
                raise UsageError(
                    f"{path} holds results made with other settings ({', '.join(changed)}); "
                    "pass --overwrite to replace them, or another --out"
                )
            return old
        return cls(settings)

    def save(self, path: Path) -> None:
        self.environment = environment()
        self.updated = datetime.now(UTC).isoformat(timespec="seconds")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        tmp.replace(path)
