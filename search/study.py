"""Studies: storage URLs, samplers and pruners by name, create-or-resume with checks.

A study records the settings it was created with (dataset, split, space, metric, objectives) as a
study user attribute.  Storages record a heartbeat for each running trial, so a trial
whose worker was killed is failed and queued again (see ``recovery``).  Resuming with different data or a different space is refused:
their trials would not be comparable.  Settings that do not change what a value means
(epochs, sampler, pruner, the data folder's location) may change between runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import random
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from search.errors import StorageError, UsageError
from search.objectives import DEFAULT_OBJECTIVES, objective_directions, objective_metric_names, objective_names
from search.recovery import RequeueStale
from search.spaces import Space

__all__ = [
    "SAMPLERS",
    "DEFAULT_PRUNER",
    "DEFAULT_SAMPLER",
    "PRUNERS",
    "StudySettings",
    "check_study_name",
    "default_storage",
    "check_writable",
    "safe_url",
    "sampler_seed",
    "make_sampler",
    "make_pruner",
    "open_storage",
    "read_recorded",
    "recorded_settings",
    "load_study_for_reading",
    "default_artifact_dir",
    "resolve_settings",
    "create_or_load",
]

DEFAULT_SAMPLER = "prior"  # search.prior: draws around the recipe and the best trial (docs/benchmarks.md)
SAMPLERS = ("prior", "tpe", "random", "cmaes", "gp", "qmc", "nsga2")
# Successive halving from epoch 1 judged one-cycle and cosine schedules in their warm-up
# and pruned 17 of 19 trials (issue 11): the default prunes from a schedule's halfway point.
DEFAULT_PRUNER = "halfway"
PRUNERS = ("halfway", "median", "percentile", "successive_halving", "hyperband", "patient", "none")
WARM_START_ATTR = "warm_start"
SETTINGS_ATTR = "cnn_search"
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
GRACE_FACTOR = 3  # a running trial silent for 3 heartbeats is failed and queued again
CONNECT_TIMEOUT_S = 10  # an unreachable database server fails fast instead of hanging
# Optuna 4.9 renamed failed_trial_callback to heartbeat_stale_trial_callback.
_STALE_KW = (
    "heartbeat_stale_trial_callback"
    if "heartbeat_stale_trial_callback" in inspect.signature(optuna.storages.RDBStorage).parameters
    else "failed_trial_callback"
)


@dataclass(frozen=True)
class StudySettings:
    """What a study was created with; stored on the study and checked on resume."""

    dataset: str
    space: dict[str, Any]  # Space.to_dict(): what the space samples
    monitor: str = "val_accuracy"
    direction: str = "maximize"
    val_split: float = 0.1
    limit_train: int | None = None
    data_dir: str | None = None
    epochs: int = 10
    seed: int = 0
    sampler: str = DEFAULT_SAMPLER
    pruner: str = DEFAULT_PRUNER
    heartbeat: int = 10  # seconds between a running trial's heartbeats; the same for every worker
    objectives: str = DEFAULT_OBJECTIVES  # "accuracy" (the monitor alone) or e.g. "accuracy,params" (see objectives)
    baseline: bool = False  # True: a new study's first trial trains the run config's defaults (Space.baseline)
    # The run config trials start from (the default recipe for the data, recorded when the
    # study is created); None: RunConfig()'s defaults, as studies made before the recipe.
    base_config: dict[str, Any] | None = None

    # Changing any of these changes what a trial's value means.
    IDENTITY = ("dataset", "val_split", "limit_train", "monitor", "direction", "seed", "objectives")

    @property
    def space_obj(self) -> Space:
        return Space.from_dict(self.space)

    @property
    def multi_objective(self) -> bool:
        return len(objective_names(self.objectives)) > 1

    @property
    def directions(self) -> list[str]:
        return objective_directions(self.objectives, self.direction)

    @property
    def metric_names(self) -> list[str]:
        return objective_metric_names(self.objectives, self.monitor)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def base_run_config(self) -> Any:
        """The run config every trial starts from: data settings, epochs and seed from
        these settings, everything else from the recorded base (or the defaults)."""
        from search.config import DataConfig, RunConfig, TrainConfig

        data = DataConfig(self.dataset, self.data_dir, self.val_split, self.limit_train)
        if self.base_config is None:
            return RunConfig(data=data, train=TrainConfig(epochs=self.epochs), seed=self.seed)
        base = RunConfig.from_dict(self.base_config, where="the study's base config")
        data = dataclasses.replace(data, normalization=base.data.normalization)
        return base.replace(data=data, train=dataclasses.replace(base.train, epochs=self.epochs), seed=self.seed)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StudySettings:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def check_study_name(name: str) -> str:
    if not STUDY_NAME.match(name):
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


def make_sampler(
    name: str, seed: int | None, settings: StudySettings | None = None, budget: Any = None, prior: dict[str, Any] | None = None
) -> optuna.samplers.BaseSampler:
    """The sampler ``name``; the prior-guided one needs the study's ``settings`` (its
    space and base config), takes the ``budget`` plan of a budgeted run, and centres on
    ``prior`` params (a warm start's) over the space's own priors."""
    if name == "prior" and settings is not None and settings.multi_objective:
        name = "tpe"  # the prior sampler ranks one value; a Pareto front needs a multi-objective sampler
    if name == "prior":
        from search.prior import PriorSampler

        if settings is None:
            return PriorSampler({}, [], seed=seed, budget=budget)
        space, base = settings.space_obj, settings.base_run_config()
        return PriorSampler({**space.priors(base), **(prior or {})}, space.changeable(base), seed=seed, budget=budget)
    if name == "tpe":
        # multivariate + group: model the interactions (optimizer x learning rate) and
        # the conditional parameters; constant_liar keeps parallel workers apart.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=8
            )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError as e:
            raise UsageError("sampler 'cmaes' needs the cmaes package: pip install cmaes") from e
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        try:
            import torch  # noqa: F401
        except ImportError as e:
            raise UsageError("sampler 'gp' needs PyTorch: pip install torch (or choose --sampler tpe)") from e
        return optuna.samplers.GPSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if name == "nsga2":
        # Generations of 20 trials: searches here run tens of trials, not thousands.
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    raise UsageError(f"unknown sampler {name!r}; use one of {', '.join(SAMPLERS)}")


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    """Pruners compare epochs (step = epochs completed); none prunes in the first epoch."""
    if name == "halfway":
        # The median of other trials at the same epoch, from the schedule's halfway point:
        # a one-cycle or cosine run is annealing by then, no longer warming up.
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=max(1, max_epochs // 2))
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(25.0, n_startup_trials=4, n_warmup_steps=1)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 1), reduction_factor=3)
    if name == "patient":
        return optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1), patience=2)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UsageError(f"unknown pruner {name!r}; use one of {', '.join(PRUNERS)}")


def sampler_seed(seed: int, done: int, worker: int | None = None) -> int:
    """The sampler seed of a (resumed) run: offset by the trials done, distinct per worker.

    One process keeps ``seed + done``; parallel workers each get their own stream, so
    they do not all propose the same start-up trials.
    """
    if worker is None:
        return seed + done
    import numpy as np

    return int(np.random.SeedSequence([seed, done, worker]).generate_state(1)[0])


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
            raise StorageError(
                f"storage {safe_url(url)} needs a database driver that is not installed ({_message(e, url)}); "
                "for PostgreSQL: pip install -e '.[postgres]', for MySQL: pip install -e '.[mysql]'"
            ) from e
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
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError:
        return  # not SQLite at all: opening it says so (and writes nothing)
    if tables and "studies" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise StorageError(f"{path} is another program's SQLite database (tables {shown}), not a study database; "
                           "it was left as it is; choose another --study or --storage")


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
    engine = sqlalchemy.create_engine(url, pool_pre_ping=True)
    try:
        with engine.connect():
            tables = set(sqlalchemy.inspect(engine).get_table_names())
    except ImportError as e:
        raise StorageError(f"storage {safe_url(url)} needs a database driver that is not installed ({_message(e, url)}); "
                           "for PostgreSQL: pip install -e '.[postgres]', for MySQL: pip install -e '.[mysql]'") from e
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise StorageError(f"cannot open storage {safe_url(url)} ({_message(e, url)}); check the URL, the server and the file") from e
    finally:
        engine.dispose()
    return {"studies", "trials"} <= tables


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


def resolve_settings(
    name: str, requested: dict[str, Any], recorded: StudySettings | None, defaults: StudySettings
) -> StudySettings:
    """Merge what the user asked for with what the study recorded (or the defaults).

    On resume, identity settings and the space must match what the study recorded.
    """
    if recorded is None:
        return dataclasses.replace(defaults, **requested)
    for key in StudySettings.IDENTITY:
        if key in requested and requested[key] != getattr(recorded, key):
            raise StorageError(
                f"study '{name}' was created with {key}={getattr(recorded, key)!r}, not {requested[key]!r}; "
                "drop that option to resume it, or start a new --study"
            )
    if "space" in requested and Space.from_dict(requested["space"]).fingerprint != recorded.space_obj.fingerprint:
        raise StorageError(
            f"study '{name}' was created with space '{recorded.space['name']}' and this space samples "
            "something else; drop --space to resume it, or start a new --study"
        )
    changeable = {k: v for k, v in requested.items() if k not in StudySettings.IDENTITY}
    # The same space (same fingerprint) may move its priors: the file as given now is used.
    return dataclasses.replace(recorded, **changeable)


def create_or_load(
    name: str, url: str, settings: StudySettings, worker: int | None = None, budget: Any = None
) -> optuna.Study:
    """Create the study (recording its settings) or load it, with sampler and pruner.

    ``worker`` (0, 1, ...) is set in parallel workers: each samples with its own seed.
    ``budget`` (a ``search.budget.BudgetPlan``) plans each trial's epochs (prior sampler).
    """
    storage = open_storage(url, heartbeat=settings.heartbeat)
    try:
        existing = optuna.load_study(study_name=name, storage=storage) if name in _study_names(storage, url) else None
        done = len(existing.trials) if existing is not None else 0
        warm = (existing.user_attrs.get(WARM_START_ATTR) or {}) if existing is not None else {}
        # A fixed seed would replay the same start-up trials on every resume: offset it.
        sampler = make_sampler(settings.sampler, sampler_seed(settings.seed, done, worker), settings, budget, warm.get("prior"))
        pruner = make_pruner(settings.pruner, settings.epochs)
        # Several objectives: one direction each (see search.objectives); one: as it always was.
        direction: dict[str, Any] = {"directions": settings.directions} if settings.multi_objective else {"direction": settings.direction}
        study = optuna.create_study(
            study_name=name, storage=storage, **direction,
            sampler=sampler, pruner=pruner, load_if_exists=True,
        )
        if SETTINGS_ATTR in study.user_attrs:
            _check_same_study(name, study.user_attrs[SETTINGS_ATTR], settings)  # created by another command meanwhile
        else:
            study.set_user_attr(SETTINGS_ATTR, settings.to_dict())
            # Two commands creating one study at once both get here; the last write wins.
            # Read it back after a moment: the command whose settings lost stops here,
            # before it runs a trial under settings the study does not record.
            time.sleep(0.3 + 0.2 * random.random())
            _check_same_study(name, storage.get_study_user_attrs(study._study_id)[SETTINGS_ATTR], settings)
            if settings.baseline and not study.trials:
                _enqueue_baseline(study, settings)
            with warnings.catch_warnings():  # names the values in plots and optuna-dashboard
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(settings.metric_names)
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise StorageError(f"cannot create study '{name}' in {safe_url(url)} ({_message(e, url)}); check the storage") from e
    return study


def _check_same_study(name: str, recorded: Any, settings: StudySettings) -> None:
    """Refuse to run under ``settings`` a study that records other identity settings."""
    if not isinstance(recorded, dict):
        return
    other = StudySettings.from_dict(recorded)
    for key in StudySettings.IDENTITY:
        if getattr(other, key) != getattr(settings, key):
            raise StorageError(
                f"study '{name}' was created at the same moment by another command with {key}={getattr(other, key)!r}, "
                f"not {getattr(settings, key)!r}; nothing was run; rerun to resume it with its settings, or choose another --study"
            )
    if other.space_obj.fingerprint != settings.space_obj.fingerprint:
        raise StorageError(f"study '{name}' was created at the same moment by another command with another space; "
                           "nothing was run; rerun to resume it, or choose another --study")


def _enqueue_baseline(study: optuna.Study, settings: StudySettings) -> None:
    """Queue the run config's defaults as the first trial: a search then has a sound,
    known result early (the recipe ``fit`` trains with no search), and everything after
    it is measured against that, not against whatever the first random draw was."""
    params = settings.space_obj.baseline(settings.base_run_config())
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
        return make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError) as e:  # ValueError: e.g. a port that is not a number
        raise StorageError(
            f"storage URL {safe_url(url)!r} is malformed; write e.g. sqlite:///studies/name.db or postgresql://user@host/db"
        ) from e
