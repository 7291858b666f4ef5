"""Storage URLs that cannot work are one line and exit 2 for every command and option
that takes one, including where the database drivers are not installed (CI installs
them all: these tests hide them), and a SQLite file a command only reads stays byte
for byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, one_line_error

# Put first on the path: makes the database drivers fail to import, as on a machine without them.
HIDE_DRIVERS = """
import sys
class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("psycopg2", "psycopg", "pymysql", "MySQLdb"):
            raise ImportError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, _Hide())
"""


def run(args: list[str], cwd: Path, hide_drivers: bool = False) -> subprocess.CompletedProcess:
    path = [str(ROOT)]
    if hide_drivers:
        hook = cwd / "hide"
        hook.mkdir(exist_ok=True)
        (hook / "sitecustomize.py").write_text(HIDE_DRIVERS)
        path.insert(0, str(hook))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, str(ROOT / "run_search.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


URLS = {
    # url: (words, drivers hidden)
    "notascheme://x": (["unknown database scheme 'notascheme'", "sqlite:///"], False),
    "redis://localhost/0": (["unknown database scheme 'redis'"], False),
    "postgresql://u@127.0.0.1:1/db": (
        ["needs a database driver that is not installed", "pip install -e '.[postgres]'"],
        True,
    ),
    "postgresql+pg8000://u@127.0.0.1:1/db": (
        ["needs a database driver that is not installed", "pip install pg8000"],
        False,
    ),
    "mysql+pymysql://u@127.0.0.1:1/db": (
        ["needs a database driver that is not installed", "pip install -e '.[mysql]'"],
        True,
    ),
}
COMMANDS = {
    "search": lambda url: ["--study", "s", "--storage", url, "--trials", "1"],
    "best": lambda url: ["best", "--study", "s", "--storage", url],
    "export": lambda url: ["export", "--study", "s", "--storage", url, "--out", "e.json"],
    "warm start": lambda url: ["--study", "s", "--warm-start", "old", "--warm-start-storage", url, "--trials", "1"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("url", list(URLS))
def test_an_unusable_storage_url_is_refused_in_one_line(tmp_path: Path, command: str, url: str):
    words, hide = URLS[url]
    if "pg8000" in url:
        pytest.importorskip("sqlalchemy.dialects.postgresql.pg8000")
        try:
            import pg8000  # noqa: F401

            pytest.skip("pg8000 is installed here")
        except ImportError:
            pass
    one_line_error(run(COMMANDS[command](url), tmp_path, hide_drivers=hide), *words)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "hide") == []  # nothing written


@pytest.mark.parametrize("command", ["best", "export", "report"])
def test_a_new_empty_sqlite_file_stays_empty_for_a_command_that_reads(tmp_path: Path, command: str):
    (tmp_path / "empty.db").write_bytes(b"")  # created a moment ago: no other process is making it a study
    import sqlite3

    with sqlite3.connect(tmp_path / "blank.db") as db:  # an SQLite file with no table at all
        db.execute("PRAGMA user_version = 7")
    blank = (tmp_path / "blank.db").read_bytes()
    for name, words in (("empty.db", ["empty file"]), ("blank.db", ["holds no study"])):
        one_line_error(run([command, "--study", "s", "--storage", f"sqlite:///{name}"], tmp_path), name, *words)
    assert (tmp_path / "empty.db").read_bytes() == b"" and (tmp_path / "blank.db").read_bytes() == blank


def test_a_sqlite_uri_file_name_is_refused(tmp_path: Path):
    one_line_error(
        run(["best", "--study", "s", "--storage", "sqlite:///file:studies/s.db?mode=ro&uri=true"], tmp_path),
        "SQLite URI file names",
        "sqlite:///studies/name.db",
    )


def test_a_study_name_with_a_trailing_newline_is_refused(tmp_path: Path):
    one_line_error(run(["--study", "nl\n", "--trials", "1"], tmp_path), "study name", "is not allowed")
    assert list(tmp_path.iterdir()) == []
