"""Database URLs and files, checked before Optuna sees them: a malformed URL, an unknown
scheme, a missing driver, an in-memory, empty, foreign or table-less SQLite file, and a
folder that cannot be written are each one line (``StorageError``), and nothing is
created or written by a check.  Passwords are masked in every message."""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

import sqlalchemy
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from search.errors import StorageError

__all__ = [
    "parse_url",
    "safe_url",
    "driver_message",
    "engine_for",
    "missing_driver",
    "check_writable",
    "check_sqlite_file",
    "check_sqlite_for_reading",
    "sqlite_tables",
    "missing_sqlite_file",
    "has_optuna_tables",
    "DRIVER_EXTRAS",
]


# The extra of this project that installs a URL's driver: (backend, driver) -> extra.
def check_writable(url: str) -> None:
    """For a SQLite URL, check that the database (and its folder) can be written, creating nothing."""
    parsed = parse_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return
    path = Path(parsed.database)
    fix = "choose a writable folder with --studies-dir or a writable --storage"
    if path.is_dir():
        raise StorageError(f"the study database {path} is a folder; {fix}")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise StorageError(f"cannot create the study database {path}: {existing} is a file, not a folder; {fix}")
    if not os.access(existing, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        where = path if path.exists() else existing
        raise StorageError(f"cannot write the study database {path}: {where} is not writable; {fix}")


def safe_url(url: str) -> str:
    """The storage URL with any password masked, for output, logs and exports."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def check_sqlite_file(database: str | None, url: str) -> None:
    """Refuse an in-memory SQLite URL, and an existing file that is not an Optuna
    database (empty, or another program's tables): Optuna would add its tables to it."""
    if not database or database == ":memory:":
        raise StorageError(
            f"storage {safe_url(url)!r} is an in-memory database: it would vanish when the command ends, with every "
            "trial; give a file, e.g. sqlite:///studies/name.db"
        )
    path = Path(database)
    if not path.is_file():
        return
    if path.stat().st_size == 0 and time.time() - path.stat().st_mtime > 10:  # not one another process is creating now
        raise StorageError(
            f"{path} is an empty file, not a study database; it was left as it is; "
            "delete it, or choose another --study or --storage"
        )
    tables = sqlite_tables(path)
    if tables is None:
        return  # not SQLite at all: opening it says so (and writes nothing)
    if tables and "studies" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise StorageError(
            f"{path} is another program's SQLite database (tables {shown}), not a study database; "
            "it was left as it is; choose another --study or --storage"
        )


def sqlite_tables(path: Path) -> set[str] | None:
    """The tables of an SQLite file, read without writing (None: not an SQLite database)."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError:
        return None


def check_sqlite_for_reading(url: str) -> None:
    """A SQLite file a command only reads must already be a study database: an empty one,
    however new, or one without Optuna's tables is refused and left byte for byte."""
    parsed = parse_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return
    path = Path(parsed.database)
    if path.is_file() and path.stat().st_size == 0:
        raise StorageError(
            f"{path} is an empty file, not a study database; it was left as it is; "
            "check --study, --storage or --studies-dir"
        )
    tables = sqlite_tables(path)
    if tables is None:
        return  # not SQLite at all: opening it says so (and writes nothing)
    if "studies" not in tables:
        raise StorageError(
            f"{path} holds no study (no Optuna tables); it was left as it is; check --study, --storage or --studies-dir"
        )


def missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite database that does not exist yet; None otherwise."""
    parsed = parse_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database and not Path(parsed.database).exists():
        return parsed.database
    return None


def has_optuna_tables(url: str) -> bool:
    """Whether a server database holds Optuna's tables, looked at without creating them
    (opening an ``RDBStorage`` would)."""
    engine = engine_for(url)
    try:
        with engine.connect():
            tables = set(sqlalchemy.inspect(engine).get_table_names())
    except ImportError as e:
        raise missing_driver(url, e) from e
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise StorageError(
            f"cannot open storage {safe_url(url)} ({driver_message(e, url)}); check the URL, the server and the file"
        ) from e
    finally:
        engine.dispose()
    return {"studies", "trials"} <= tables


# The extra of this project that installs a URL's driver: (backend, driver) -> extra.
DRIVER_EXTRAS = {
    ("postgresql", "psycopg2"): "postgres",
    ("postgresql", "psycopg"): "postgres",
    ("mysql", "pymysql"): "mysql",
}


def missing_driver(url: str, error: BaseException) -> StorageError:
    """One line naming the package to install for a URL whose driver is not installed."""
    parsed = parse_url(url)
    extra = DRIVER_EXTRAS.get((parsed.get_backend_name(), parsed.get_driver_name()))
    module = getattr(error, "name", None) or parsed.get_driver_name()
    fix = (
        f"pip install -e '.[{extra}]'"
        if extra
        else f"pip install {module.split('.')[0]}, or use a URL of an extra (postgresql://)"
    )
    return StorageError(
        f"storage {safe_url(url)} needs a database driver that is not installed ({driver_message(error, url)}); {fix}"
    )


def engine_for(url: str) -> sqlalchemy.engine.Engine:
    """A SQLAlchemy engine for ``url``; an unknown scheme or a missing driver is one line."""
    try:
        return sqlalchemy.create_engine(url, pool_pre_ping=True)
    except sqlalchemy.exc.NoSuchModuleError as e:
        scheme = parse_url(url).drivername
        raise StorageError(
            f"storage {safe_url(url)}: unknown database scheme {scheme!r}; write sqlite:///PATH, "
            "postgresql://USER@HOST/DB or mysql+pymysql://USER@HOST/DB"
        ) from e
    except ImportError as e:
        raise missing_driver(url, e) from e
    except sqlalchemy.exc.ArgumentError as e:
        raise StorageError(
            f"storage URL {safe_url(url)!r} is malformed ({driver_message(e, url)}); "
            "write e.g. sqlite:///studies/name.db or postgresql://user@host/db"
        ) from e


def driver_message(e: BaseException, url: str) -> str:
    """The first line of a driver error, with the URL's password (if any) masked."""
    lines = str(getattr(e, "orig", None) or e).strip().splitlines()
    text = lines[0] if lines else type(e).__name__
    try:
        password = make_url(url).password
    except Exception:
        password = None
    return text.replace(str(password), "***") if password else text


def parse_url(url: str):
    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError) as e:  # ValueError: e.g. a port that is not a number
        raise StorageError(
            f"storage URL {safe_url(url)!r} is malformed; write e.g. sqlite:///studies/name.db or postgresql://user@host/db"
        ) from e
    if parsed.drivername.startswith("sqlite") and (
        parsed.query.get("uri") or (parsed.database or "").startswith("file:")
    ):
        raise StorageError(
            f"storage {safe_url(url)!r}: SQLite URI file names (file:...?uri=true) are not supported; "
            "write the path itself, e.g. sqlite:///studies/name.db"
        )
    return parsed
