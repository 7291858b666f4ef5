"""Several worker processes against a real PostgreSQL server, as on several machines:
every trial stored exactly once, and the password in the URL never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from pg_server import PASSWORD, USER, throwaway_server

TRIALS = 6
TINY_SPACE = str(Path(__file__).parents[1] / "tiny_space.toml")


@pytest.fixture(scope="module")
def pg_url():
    with throwaway_server() as url:
        yield url


@pytest.fixture(scope="module")
def three_workers(pg_url, tmp_path_factory):
    """One search: 3 worker processes, 6 trials, on the server."""
    cwd = tmp_path_factory.mktemp("pg")
    result = run_cli(
        "--study",
        "pg-workers",
        "--storage",
        pg_url,
        "--workers",
        "3",
        "--trials",
        str(TRIALS),
        "--epochs",
        "1",
        "--limit-train",
        "300",
        "--heartbeat",
        "2",
        "--space",
        TINY_SPACE,
        cwd=cwd,
    )
    return result


def test_three_workers_store_every_trial_once(pg_url, three_workers):
    import optuna
    from optuna.trial import TrialState

    assert three_workers.returncode == 0, three_workers.stderr[-3000:]
    assert "3 worker processes" in three_workers.stdout
    trials = optuna.load_study(study_name="pg-workers", storage=pg_url).get_trials()
    assert sorted(t.number for t in trials) == list(range(TRIALS))  # none lost, none twice
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), [t.state for t in trials]
    assert len({t.user_attrs["worker"] for t in trials}) >= 2  # really shared between processes
    assert all(t.user_attrs["rss_mb"] > 0 for t in trials)
    # each trial got its own parameters: workers do not replay one another's samples
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == TRIALS


def test_password_is_never_shown_or_stored(pg_url, three_workers):
    output = three_workers.stdout + three_workers.stderr
    assert PASSWORD not in output
    assert f"{USER}:***@127.0.0.1" in three_workers.stdout  # the masked URL is what is shown
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(pg_url)
    with engine.connect() as conn:  # every row of every table, as text
        dump = [
            row[0]
            for table in inspect(engine).get_table_names()
            for row in conn.execute(text(f'SELECT t::text FROM "{table}" t'))
        ]
    engine.dispose()
    assert any("pg-workers" in row for row in dump)
    assert not [row for row in dump if PASSWORD in row]


def test_unreachable_database_on_the_server_is_one_line(pg_url, tmp_path: Path):
    """A wrong database name on a live server: one line, the password masked, nothing created."""
    url = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    result = run_cli("--study", "x", "--storage", url, "--trials", "1", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot open storage"), result.stderr
    assert "no_such_database" in lines[0] and PASSWORD not in result.stderr


def _dump(url: str) -> dict[str, list[str]]:
    """Every table of the database and every row in it, as text."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table: sorted(row[0] for row in conn.execute(text(f'SELECT t::text FROM "{table}" t')))
                for table in inspect(engine).get_table_names()
            }
    finally:
        engine.dispose()


BAD_ON_A_SERVER = {  # bad input, each also refused with SQLite in tests/cli/test_bad_input.py
    "--epochs 10001": ["--epochs", "10001"],
    "--timeout nan": ["--timeout", "nan"],
    "--seed -1": ["--seed", "-1"],
    "--budget 5x": ["--budget", "5x"],
    "unknown sampler": ["--sampler", "nosuch"],
    "warm start from a missing study": ["--warm-start", "nosuch"],
}


@pytest.mark.parametrize("which", ["an empty database", "a database holding a study"])
def test_bad_input_leaves_a_server_database_row_for_row(pg_url, three_workers, tmp_path: Path, which: str):
    """The hash-before/after check of tests/cli/test_bad_input.py, for a PostgreSQL storage:
    no table created in an empty database, no row changed in one that holds a study."""
    from sqlalchemy import create_engine, text

    url = pg_url
    if which == "an empty database":
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("DROP DATABASE IF EXISTS untouched"))
            conn.execute(text("CREATE DATABASE untouched"))
        admin.dispose()
        url = pg_url.rsplit("/", 1)[0] + "/untouched"
    before = _dump(url)
    for case, args in BAD_ON_A_SERVER.items():
        result = run_cli("--study", "fresh", "--storage", url, "--trials", "1", *args, cwd=tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (case, result.stderr)
        assert PASSWORD not in result.stdout + result.stderr
        assert _dump(url) == before, f"{case} changed the database"
    assert (before == {}) == (which == "an empty database")
