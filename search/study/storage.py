"""Study storage: opening a storage (its URL checked by ``search.study.databases``), and create-or-resume.

A study records the settings it was created with (``search.study.settings``) as a study
user attribute; a command that only reads a study never creates one, nor a database
file, nor Optuna's tables in a server database.  Storages record a heartbeat for each
running trial, so a trial whose worker was killed is failed and queued again (see
``recovery``).
"""

from __future__ import annotations

import inspect
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
from search.study.databases import (
    check_sqlite_file,
    check_sqlite_for_reading,
    check_writable,
    driver_message,
    engine_for,
    has_optuna_tables,
    missing_driver,
    missing_sqlite_file,
    parse_url,
    safe_url,
)
from search.study.optuna_access import study_id
from search.study.patient import DEFAULT_WAIT, PatientStorage
from search.study.record import SETTINGS, WARM_START, attrs
from search.study.recovery import RequeueStale
from search.study.samplers import make_pruner, make_sampler, sampler_seed
from search.study.settings import StudySettings, check_same_study

__all__ = [
    "SETTINGS_ATTR",
    "WARM_START_ATTR",
    "GRACE_FACTOR",
    "check_study_name",
    "default_study_name",
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

WARM_START_ATTR = WARM_START  # the study attributes of search.study.record, by their old names here
SETTINGS_ATTR = SETTINGS
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


def open_storage(url: str, heartbeat: int | None = None, wait: float | None = None) -> optuna.storages.BaseStorage:
    """Open (and for SQLite, create) an Optuna storage, translating driver errors.

    With ``heartbeat`` (seconds), running trials record heartbeats and a trial silent
    for ``GRACE_FACTOR`` heartbeats is failed and queued again.  SQLite waits up to 60 s
    for a lock held by another worker; server databases fail fast when unreachable, or
    with ``wait`` (a search's workers), wait up to that many seconds for a database that
    went away once opened (``search.study.patient``).
    """
    parsed = parse_url(url)
    driver = parsed.drivername
    if driver.startswith("sqlite"):
        check_sqlite_file(parsed.database, url)
    else:
        engine_for(url).dispose()  # an unknown scheme or a missing driver: one line, before Optuna sees the URL
    if driver.startswith("sqlite") and parsed.database:
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(
                f"cannot create folder {folder} for the study database "
                f"({e.strerror}); choose a writable place with --storage"
            ) from e
    if driver.startswith("sqlite"):
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
        if driver in (
            "postgresql",
            "postgresql+psycopg2",
            "postgresql+psycopg",
            "mysql+pymysql",
            "mysql+mysqldb",
            "mysql",
        ):
            engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    kwargs: dict[str, Any] = {}
    if heartbeat:
        grace = GRACE_FACTOR * heartbeat
        kwargs = {"heartbeat_interval": heartbeat, "grace_period": grace, _STALE_KW: RequeueStale(grace)}
    for attempt in range(4):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
            if wait is None or driver.startswith("sqlite"):
                return storage
            return PatientStorage(
                optuna.storages.get_storage(storage),
                safe_url(url),
                wait,  # with Optuna's cache
                grace=GRACE_FACTOR * heartbeat if heartbeat else 0.0,
            )
        except ImportError as e:
            raise missing_driver(url, e) from e
        except sqlalchemy.exc.SQLAlchemyError as e:
            # Processes creating the schema at the same moment: one wins, the others retry.
            if attempt < 3 and (isinstance(e, sqlalchemy.exc.IntegrityError) or "already exists" in str(e)):
                time.sleep(0.2 + random.random())
                continue
            if driver.startswith("sqlite") and "not a database" in str(e):
                raise StorageError(
                    f"{parsed.database} is not an SQLite database ({driver_message(e, url)}); move it away, "
                    "or choose another --study or --storage"
                ) from e
            raise StorageError(
                f"cannot open storage {safe_url(url)} ({driver_message(e, url)}); "
                "check the URL, the server and the file"
            ) from e
        except (ValueError, RuntimeError) as e:  # RuntimeError: a schema from another Optuna version
            raise StorageError(
                f"cannot open storage {safe_url(url)} ({driver_message(e, url)}); check the URL, or upgrade the schema "
                "with: optuna storage upgrade --storage URL"
            ) from e
    raise AssertionError("unreachable")


def read_recorded(name: str, url: str) -> StudySettings | None:
    """The settings study ``name`` was created with, or None if it does not exist yet.

    A SQLite file that does not exist is not created here, nor Optuna's tables in a
    server database: nothing is written before the caller has checked the rest of its input.
    """
    if missing_sqlite_file(url):
        return None
    if not parse_url(url).drivername.startswith("sqlite") and not has_optuna_tables(url):
        return None  # a server database without Optuna's tables: they are created with the study, not before
    storage = open_storage(url)
    summaries = _study_names(storage, url)
    if name not in summaries:
        return None
    return recorded_settings(optuna.load_study(study_name=name, storage=storage), url)


def recorded_settings(study: optuna.Study, url: str) -> StudySettings:
    """The settings ``study`` recorded when cnn-search created it."""
    raw = study.user_attrs.get(SETTINGS_ATTR)
    if not isinstance(raw, dict):
        raise StorageError(
            f"study '{study.study_name}' in {safe_url(url)} was not created by cnn-search; use another --study name"
        )
    return StudySettings.from_dict(raw)


def load_study_for_reading(name: str, url: str) -> optuna.Study:
    """Load an existing study to read it (export, best, report, dashboard); never creates one."""
    missing = missing_sqlite_file(url)
    if missing:
        raise StorageError(
            f"no study database at {missing}; run a search first (python run_search.py --study {name}) "
            "or point --storage / --studies-dir at the database"
        )
    check_sqlite_for_reading(url)
    if not parse_url(url).drivername.startswith("sqlite") and not has_optuna_tables(url):
        raise StorageError(
            f"no study '{name}' in {safe_url(url)}: that database holds no Optuna tables, and it was "
            "left as it is; check --storage (or --warm-start-storage)"
        )
    storage = open_storage(url)
    names = _study_names(storage, url)
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise StorageError(f"no study '{name}' in {safe_url(url)} (studies there: {known}); check --study")
    return optuna.load_study(study_name=name, storage=storage)


def default_artifact_dir(name: str, url: str, studies_dir: Path) -> Path:
    """Where trial artifacts (curves, model summaries) go: next to a SQLite database,
    else under the studies folder."""
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        parsed = None
    if (
        parsed is not None
        and parsed.drivername.startswith("sqlite")
        and parsed.database
        and parsed.database != ":memory:"
    ):
        return Path(parsed.database).parent / f"{name}-artifacts"
    return studies_dir / f"{name}-artifacts"


def create_or_load(
    name: str,
    url: str,
    settings: StudySettings,
    worker: int | None = None,
    budget: Any = None,
    wait: float | None = DEFAULT_WAIT,
) -> optuna.Study:
    """Create the study (recording its settings) or load it, with sampler and pruner.

    ``worker`` (0, 1, ...) is set in parallel workers: each samples with its own seed.
    ``budget`` (a ``search.study.budget.BudgetPlan``) plans each trial's epochs (prior sampler).
    ``wait``: seconds a server database that goes away is waited for (None: not at all).
    """
    storage = open_storage(url, heartbeat=settings.heartbeat, wait=wait)
    try:
        existing = optuna.load_study(study_name=name, storage=storage) if name in _study_names(storage, url) else None
        done = len(existing.trials) if existing is not None else 0
        warm = (existing.user_attrs.get(WARM_START_ATTR) or {}) if existing is not None else {}
        # A fixed seed would replay the same start-up trials on every resume: offset it.
        sampler = make_sampler(
            settings.sampler, sampler_seed(settings.seed, done, worker), settings, budget, warm.get("prior")
        )
        pruner = make_pruner(settings.pruner, settings.epochs)
        # Several objectives: one direction each (see search.study.objectives); one: as it always was.
        direction: dict[str, Any] = (
            {"directions": settings.directions} if settings.multi_objective else {"direction": settings.direction}
        )
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            **direction,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
        if SETTINGS_ATTR in study.user_attrs:
            check_same_study(name, study.user_attrs[SETTINGS_ATTR], settings)  # created by another command meanwhile
        else:
            study.set_user_attr(SETTINGS_ATTR, settings.to_dict())
            # Two commands creating one study at once both get here; the last write wins.
            # Read it back after a moment: the command whose settings lost stops here,
            # before it runs a trial under settings the study does not record.
            time.sleep(0.3 + 0.2 * random.random())
            check_same_study(name, storage.get_study_user_attrs(study_id(study))[SETTINGS_ATTR], settings)
            if settings.baseline and not study.trials:
                _enqueue_baseline(study, settings)
            with warnings.catch_warnings():  # names the values in plots and optuna-dashboard
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(settings.metric_names)
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise StorageError(
            f"cannot create study '{name}' in {safe_url(url)} ({driver_message(e, url)}); check the storage"
        ) from e
    return study


def _enqueue_baseline(study: optuna.Study, settings: StudySettings) -> None:
    """Queue the run config's defaults as the first trial: a search then has a sound,
    known result early (the recipe ``fit`` trains with no search), and everything after
    it is measured against that, not against whatever the first random draw was."""
    params = settings.space_obj.baseline(settings.config)
    if params:
        study.enqueue_trial(
            params, user_attrs=attrs(baseline=True), skip_if_exists=True
        )  # two creators racing queue one


def _study_names(storage: optuna.storages.BaseStorage, url: str) -> set[str]:
    try:
        return {s.study_name for s in storage.get_all_studies()}
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise StorageError(
            f"cannot read storage {safe_url(url)} ({driver_message(e, url)}); check the URL, the server and the file"
        ) from e


def default_study_name(dataset: str, space: str) -> str:
    """``<dataset>-<space>``: a path's last folder (``folder:data/cats`` -> ``cats``), ``captcha:4`` -> ``captcha4``."""
    stem = (
        Path(dataset.split(":", 1)[1]).name
        if ":" in dataset and not dataset.startswith("captcha:")
        else dataset.replace(":", "")
    )
    return f"{stem}-{Path(space).stem}"
