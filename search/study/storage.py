"""Study storage: URLs and their checks, opening a storage, and create-or-resume.

A study records the settings it was created with (``search.study.settings``) as a study
user attribute; a command that only reads a study never creates one, nor a database
file, nor Optuna's tables in a server database.  Storages record a heartbeat for each
running trial, so a trial whose worker was killed is failed and queued again (see
``recovery``).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import random
import re
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from search.errors import StorageError, UsageError
from search.study.recovery import RequeueStale
from search.study.samplers import make_pruner, make_sampler, sampler_seed
from search.study.settings import StudySettings, check_same_study

__all__ = [
    "SETTINGS_ATTR",
    "WARM_START_ATTR",
    "GRACE_FACTOR",
    "check_study_name",
    "default_storage",
    "check_writable",
    "safe_url",
    "open_storage",
    "read_recorded",
    "recorded_settings",
    "load_study_for_reading",
    "default_artifact_dir",
    "create_or_load",
]

WARM_START_ATTR = "warm_start"
SETTINGS_ATTR = "cnn_search"
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # matched whole (fullmatch): no trailing newline
GRACE_FACTOR = 3  # a running trial silent for 3 heartbeats is failed and queued again
CONNECT_TIMEOUT_S = 10  # an unreachable database server fails fast instead of hanging
# Optuna 4.9 renamed failed_trial_callback to heartbeat_stale_trial_callback.
_STALE_KW = (
    "heartbeat_stale_trial_callback"
    if "heartbeat_stale_trial_callback" in inspect.signature(optuna.storages.RDBStorage).parameters
    else "failed_trial_callback"
)


def check_study_name(name: str) -> str:
    if not isinstance(name, str) or not STUDY_NAME.fullmatch(name):
        raise UsageError(
            f"study name {name!r} is not allowed; use letters, digits, '_', '-' and '.', starting with a letter "
            "or digit (it names a file under studies/)"
        )
    return name


def default_storage(study: str, studies_dir: Path) -> str:
    return f"sqlite:///{(studies_dir / f'{study}.db').as_posix()}"


def check_writable(url: str) -> None:
    """For a SQLite URL, check that the database (and its folder) can be written, creating nothing."""
    parsed = _parse_url(url)
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


def open_storage(url: str, heartbeat: int | None = None) -> optuna.storages.BaseStorage:
    """Open (and for SQLite, create) an Optuna storage, translating driver errors.

    With ``heartbeat`` (seconds), running trials record heartbeats and a trial silent
    for ``GRACE_FACTOR`` heartbeats is failed and queued again.  SQLite waits up to 60 s
    for a lock held by another worker; server databases fail fast when unreachable.
    """
    parsed = _parse_url(url)
    driver = parsed.drivername
    if driver.startswith("sqlite"):
        _check_sqlite_file(parsed.database, url)
    else:
        _engine(url).dispose()  # an unknown scheme or a missing driver: one line, before Optuna sees the URL
    if driver.startswith("sqlite") and parsed.database:
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create folder {folder} for the study database ({e.strerror}); choose a writable place with --storage") from e
    if driver.startswith("sqlite"):
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
        if driver in ("postgresql", "postgresql+psycopg2", "postgresql+psycopg", "mysql+pymysql", "mysql+mysqldb", "mysql"):
            engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    kwargs: dict[str, Any] = {}
    if heartbeat:
        grace = GRACE_FACTOR * heartbeat
        kwargs = {"heartbeat_interval": heartbeat, "grace_period": grace, _STALE_KW: RequeueStale(grace)}
    for attempt in range(4):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
        except ImportError as e:
            raise _missing_driver(url, e) from e
        except sqlalchemy.exc.SQLAlchemyError as e:
            # Processes creating the schema at the same moment: one wins, the others retry.
            if attempt < 3 and (isinstance(e, sqlalchemy.exc.IntegrityError) or "already exists" in str(e)):
                time.sleep(0.2 + random.random())
                continue
            if driver.startswith("sqlite") and "not a database" in str(e):
                raise StorageError(
                    f"{parsed.database} is not an SQLite database ({_message(e, url)}); move it away, "
                    "or choose another --study or --storage"
                ) from e
            raise StorageError(f"cannot open storage {safe_url(url)} ({_message(e, url)}); check the URL, the server and the file") from e
        except (ValueError, RuntimeError) as e:  # RuntimeError: a schema from another Optuna version
            raise StorageError(
                f"cannot open storage {safe_url(url)} ({_message(e, url)}); check the URL, or upgrade the schema "
                "with: optuna storage upgrade --storage URL"
            ) from e
    raise AssertionError("unreachable")


def _check_sqlite_file(database: str | None, url: str) -> None:
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
        raise StorageError(f"{path} is an empty file, not a study database; it was left as it is; "
                           "delete it, or choose another --study or --storage")
    tables = _sqlite_tables(path)
    if tables is None:
        return  # not SQLite at all: opening it says so (and writes nothing)
    if tables and "studies" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise StorageError(f"{path} is another program's SQLite database (tables {shown}), not a study database; "
                           "it was left as it is; choose another --study or --storage")


def _sqlite_tables(path: Path) -> set[str] | None:
    """The tables of an SQLite file, read without writing (None: not an SQLite database)."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError:
        return None


def _check_sqlite_for_reading(url: str) -> None:
    """A SQLite file a command only reads must already be a study database: an empty one,
    however new, or one without Optuna's tables is refused and left byte for byte."""
    parsed = _parse_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return
    path = Path(parsed.database)
    if path.is_file() and path.stat().st_size == 0:
        raise StorageError(f"{path} is an empty file, not a study database; it was left as it is; "
                           "check --study, --storage or --studies-dir")
    tables = _sqlite_tables(path)
    if tables is None:
        return  # not SQLite at all: opening it says so (and writes nothing)
    if "studies" not in tables:
        raise StorageError(f"{path} holds no study (no Optuna tables); it was left as it is; "
                           "check --study, --storage or --studies-dir")


def read_recorded(name: str, url: str) -> StudySettings | None:
    """The settings study ``name`` was created with, or None if it does not exist yet.

    A SQLite file that does not exist is not created here, nor Optuna's tables in a
    server database: nothing is written before the caller has checked the rest of its input.
    """
    if _missing_sqlite_file(url):
        return None
    if not _parse_url(url).drivername.startswith("sqlite") and not _has_optuna_tables(url):
        return None  # a server database without Optuna's tables: they are created with the study, not before
    storage = open_storage(url)
    summaries = _study_names(storage, url)
    if name not in summaries:
        return None
    return recorded_settings(optuna.load_study(study_name=name, storage=storage), url)


def _missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite database that does not exist yet; None otherwise."""
    parsed = _parse_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database and not Path(parsed.database).exists():
        return parsed.database
    return None


def recorded_settings(study: optuna.Study, url: str) -> StudySettings:
    """The settings ``study`` recorded when cnn-search created it."""
    raw = study.user_attrs.get(SETTINGS_ATTR)
    if not isinstance(raw, dict):
        raise StorageError(f"study '{study.study_name}' in {safe_url(url)} was not created by cnn-search; use another --study name")
    return StudySettings.from_dict(raw)


def load_study_for_reading(name: str, url: str) -> optuna.Study:
    """Load an existing study to read it (export, best, report, dashboard); never creates one."""
    missing = _missing_sqlite_file(url)
    if missing:
        raise StorageError(
            f"no study database at {missing}; run a search first (python run_search.py --study {name}) "
            "or point --storage / --studies-dir at the database"
        )
    _check_sqlite_for_reading(url)
    if not _parse_url(url).drivername.startswith("sqlite") and not _has_optuna_tables(url):
        raise StorageError(f"no study '{name}' in {safe_url(url)}: that database holds no Optuna tables, and it was "
                           "left as it is; check --storage (or --warm-start-storage)")
    storage = open_storage(url)
    names = _study_names(storage, url)
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise StorageError(f"no study '{name}' in {safe_url(url)} (studies there: {known}); check --study")
    return optuna.load_study(study_name=name, storage=storage)


def _has_optuna_tables(url: str) -> bool:
    """Whether a server database holds Optuna's tables, looked at without creating them
    (opening an ``RDBStorage`` would)."""
    engine = _engine(url)
    try:
        with engine.connect():
            tables = set(sqlalchemy.inspect(engine).get_table_names())
    except ImportError as e:
        raise _missing_driver(url, e) from e
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise StorageError(f"cannot open storage {safe_url(url)} ({_message(e, url)}); check the URL, the server and the file") from e
    finally:
        engine.dispose()
    return {"studies", "trials"} <= tables


# The extra of this project that installs a URL's driver: (backend, driver) -> extra.
DRIVER_EXTRAS = {("postgresql", "psycopg2"): "postgres", ("postgresql", "psycopg"): "postgres",
                 ("mysql", "pymysql"): "mysql"}


def _missing_driver(url: str, error: BaseException) -> StorageError:
    """One line naming the package to install for a URL whose driver is not installed."""
    parsed = _parse_url(url)
    extra = DRIVER_EXTRAS.get((parsed.get_backend_name(), parsed.get_driver_name()))
    module = getattr(error, "name", None) or parsed.get_driver_name()
    fix = f"pip install -e '.[{extra}]'" if extra else f"pip install {module.split('.')[0]}, or use a URL of an extra (postgresql://)"
    return StorageError(f"storage {safe_url(url)} needs a database driver that is not installed "
                        f"({_message(error, url)}); {fix}")


def _engine(url: str) -> sqlalchemy.engine.Engine:
    """A SQLAlchemy engine for ``url``; an unknown scheme or a missing driver is one line."""
    try:
        return sqlalchemy.create_engine(url, pool_pre_ping=True)
    except sqlalchemy.exc.NoSuchModuleError as e:
        scheme = _parse_url(url).drivername
        raise StorageError(f"storage {safe_url(url)}: unknown database scheme {scheme!r}; write sqlite:///PATH, "
                           "postgresql://USER@HOST/DB or mysql+pymysql://USER@HOST/DB") from e
    except ImportError as e:
        raise _missing_driver(url, e) from e
    except sqlalchemy.exc.ArgumentError as e:
        raise StorageError(f"storage URL {safe_url(url)!r} is malformed ({_message(e, url)}); "
                           "write e.g. sqlite:///studies/name.db or postgresql://user@host/db") from e


def default_artifact_dir(name: str, url: str, studies_dir: Path) -> Path:
    """Where trial artifacts (curves, model summaries) go: next to a SQLite database,
    else under the studies folder."""
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        parsed = None
    if parsed is not None and parsed.drivername.startswith("sqlite") and parsed.database and parsed.database != ":memory:":
        return Path(parsed.database).parent / f"{name}-artifacts"
    return studies_dir / f"{name}-artifacts"


def create_or_load(
    name: str, url: str, settings: StudySettings, worker: int | None = None, budget: Any = None
) -> optuna.Study:
    """Create the study (recording its settings) or load it, with sampler and pruner.

    ``worker`` (0, 1, ...) is set in parallel workers: each samples with its own seed.
    ``budget`` (a ``search.study.budget.BudgetPlan``) plans each trial's epochs (prior sampler).
    """
    storage = open_storage(url, heartbeat=settings.heartbeat)
    try:
        existing = optuna.load_study(study_name=name, storage=storage) if name in _study_names(storage, url) else None
        done = len(existing.trials) if existing is not None else 0
        warm = (existing.user_attrs.get(WARM_START_ATTR) or {}) if existing is not None else {}
        # A fixed seed would replay the same start-up trials on every resume: offset it.
        sampler = make_sampler(settings.sampler, sampler_seed(settings.seed, done, worker), settings, budget, warm.get("prior"))
        pruner = make_pruner(settings.pruner, settings.epochs)
        # Several objectives: one direction each (see search.study.objectives); one: as it always was.
        direction: dict[str, Any] = {"directions": settings.directions} if settings.multi_objective else {"direction": settings.direction}
        study = optuna.create_study(
            study_name=name, storage=storage, **direction,
            sampler=sampler, pruner=pruner, load_if_exists=True,
        )
        if SETTINGS_ATTR in study.user_attrs:
            check_same_study(name, study.user_attrs[SETTINGS_ATTR], settings)  # created by another command meanwhile
        else:
            study.set_user_attr(SETTINGS_ATTR, settings.to_dict())
            # Two commands creating one study at once both get here; the last write wins.
            # Read it back after a moment: the command whose settings lost stops here,
            # before it runs a trial under settings the study does not record.
            time.sleep(0.3 + 0.2 * random.random())
            check_same_study(name, storage.get_study_user_attrs(study._study_id)[SETTINGS_ATTR], settings)
            if settings.baseline and not study.trials:
                _enqueue_baseline(study, settings)
            with warnings.catch_warnings():  # names the values in plots and optuna-dashboard
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(settings.metric_names)
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise StorageError(f"cannot create study '{name}' in {safe_url(url)} ({_message(e, url)}); check the storage") from e
    return study


def _enqueue_baseline(study: optuna.Study, settings: StudySettings) -> None:
    """Queue the run config's defaults as the first trial: a search then has a sound,
    known result early (the recipe ``fit`` trains with no search), and everything after
    it is measured against that, not against whatever the first random draw was."""
    params = settings.space_obj.baseline(settings.config)
    if params:
        study.enqueue_trial(params, user_attrs={"baseline": True}, skip_if_exists=True)  # two creators racing queue one


def _study_names(storage: optuna.storages.BaseStorage, url: str) -> set[str]:
    try:
        return {s.study_name for s in storage.get_all_studies()}
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise StorageError(f"cannot read storage {safe_url(url)} ({_message(e, url)}); check the URL, the server and the file") from e


def _message(e: BaseException, url: str) -> str:
    """The first line of a driver error, with the URL's password (if any) masked."""
    lines = str(getattr(e, "orig", None) or e).strip().splitlines()
    text = lines[0] if lines else type(e).__name__
    try:
        password = make_url(url).password
    except Exception:
        password = None
    return text.replace(str(password), "***") if password else text


def _parse_url(url: str):
    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError) as e:  # ValueError: e.g. a port that is not a number
        raise StorageError(
            f"storage URL {safe_url(url)!r} is malformed; write e.g. sqlite:///studies/name.db or postgresql://user@host/db"
        ) from e
    if parsed.drivername.startswith("sqlite") and (parsed.query.get("uri") or (parsed.database or "").startswith("file:")):
        raise StorageError(f"storage {safe_url(url)!r}: SQLite URI file names (file:...?uri=true) are not supported; "
                           "write the path itself, e.g. sqlite:///studies/name.db")
    return parsed
