"""A throwaway PostgreSQL server for tests, from the installed binaries (Debian's
``postgresql`` package puts them in /usr/lib/postgresql/VERSION/bin).

``CNN_SEARCH_TEST_PG_URL`` points the tests at a running server instead.  Without
either, the tests that need PostgreSQL skip and say how to get one.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ENV_URL = "CNN_SEARCH_TEST_PG_URL"
USER, PASSWORD, DATABASE = "cnn", "pg-s3cret-Xy7", "cnn_search_test"


def find_bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3].split(".")[0]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    """A running throwaway server: its URL, and ``stop``/``start`` to take it away and
    bring it back (same port, same data) as an operator restarting it would."""

    url: str
    stop: Callable[[], None]
    start: Callable[[], None]


@contextlib.contextmanager
def throwaway_server() -> Iterator[str]:
    """Start a PostgreSQL cluster on 127.0.0.1:<free port> with password auth; yield its URL."""
    if os.environ.get(ENV_URL):
        yield os.environ[ENV_URL]
        return
    with throwaway_cluster() as cluster:
        yield cluster.url


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """``throwaway_server``'s cluster, which a test may stop and start again (a server
    named by CNN_SEARCH_TEST_PG_URL is not ours to stop: such tests skip)."""
    if os.environ.get(ENV_URL):
        pytest.skip(f"{ENV_URL} names a server these tests must not stop; unset it to use a throwaway one")
    pytest.importorskip("psycopg2", reason="pip install -e '.[postgres]' for the PostgreSQL drivers")
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(f"PostgreSQL is not installed (apt-get install postgresql), and {ENV_URL} is not set")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="cnn-search-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as 'postgres'
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if as_user:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    data, port = root / "data", _free_port()

    def call(*args: str) -> None:
        out = subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise RuntimeError(f"{' '.join(args)} failed: {out.stderr.strip() or out.stdout.strip()}")

    try:
        call(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "-A",
            "scram-sha-256",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} "
            "-c fsync=off -c max_connections=50"
        )

        def start() -> None:
            call(
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            )

        def stop() -> None:  # as a restart for maintenance: clients are disconnected, nothing is lost
            call(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")

        start()
        try:
            import psycopg2

            conn = psycopg2.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD, dbname="postgres")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {DATABASE}")
            conn.close()
            yield Cluster(f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}", stop, start)
        finally:
            with contextlib.suppress(RuntimeError):  # a test may have left it stopped
                call(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
