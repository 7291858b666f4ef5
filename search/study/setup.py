"""One setup for every search.  The command line (``search.cli.search``) and Python
(``search.api.run_search``) both make a ``SearchRequest`` and call ``prepare``, which
checks everything a bad argument can break (before the study is created or a trial
runs), loads the data, creates or resumes the study and returns a ``Search`` ready to
``run``: the same options, defaults, names and refusals; the command line only prints.

One default differs, on purpose: ``recycle_mb``.  The command line runs trials in a
worker process it replaces when its memory grows (512 MiB); from Python the trials run
in the caller's process (0), because a spawned worker imports the caller's ``__main__``
again, which a script without an ``if __name__ == "__main__":`` guard cannot survive.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.core.config import MAX_SEED, DataConfig, is_text_dataset, metric_names
from search.core.outputs import check_output_folder
from search.core.space_files import load_space
from search.core.spaces import Space
from search.errors import MetricNotFoundError, UsageError
from search.study.budgets import parse_budget, study_budget
from search.study.model_space import declare_model, model_spec
from search.study.objectives import check_objective_settings, parse_objectives
from search.study.patient import DEFAULT_WAIT, MAX_WAIT
from search.study.recovery import reap_dead
from search.study.runner import BUDGET_MAX_EPOCHS, build_objective, tracking_uri, with_recipe
from search.study.samplers import make_pruner, make_sampler
from search.study.settings import StudySettings, resolve_settings
from search.study.storage import (
    GRACE_FACTOR,
    check_study_name,
    check_writable,
    create_or_load,
    default_artifact_dir,
    default_storage,
    default_study_name,
    read_recorded,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import optuna
    from optuna.trial import FrozenTrial

    from search.core.data import Dataset
    from search.study.budget import BudgetPlan
    from search.study.placement import WorkerPlan
    from search.study.warmstart import Taken
    from search.study.workers import Outcome

__all__ = ["SearchRequest", "Search", "prepare", "default_study_name", "check_monitor"]

DEFAULTS = StudySettings.of(dataset="digits", epochs=10, baseline=True)
DEFAULT_SPACE = "cnn"
DEFAULT_TRIALS = 20
DEFAULT_RECYCLE_MB = 512  # the command line's; Python's is 0 (see the module's docstring)
MAX_HEARTBEAT = 3600  # an hour: longer and a crashed worker's trial waits half a day to run again
MAX_RECYCLE_MB = 2**20


@dataclass(frozen=True)
class SearchRequest:
    """What a search is asked for.  None means "not given": a new study takes the default,
    a resumed one what it recorded.  ``dataset``: a spec (``"fashion_mnist"``,
    ``"folder:PATH"``), a ``DataConfig``, or a ``Dataset`` already in memory."""

    dataset: str | DataConfig | Dataset | None = None
    data_dir: str | None = None
    space: str | Space | None = None
    study: str | None = None
    storage: str | None = None
    studies_dir: str | Path = "studies"
    trials: int | None = None
    budget: float | str | None = None
    timeout: float | None = None
    epochs: int | None = None
    seed: int | None = None
    val_split: float | None = None
    limit_train: int | None = None
    monitor: str | None = None
    objectives: str | None = None
    sampler: str | None = None
    pruner: str | None = None
    baseline: bool | None = None
    heartbeat: int | None = None
    warm_start: str | None = None
    warm_start_storage: str | None = None
    workers: int | None = None
    gpus: str | None = None
    mixed_precision: bool = False
    recycle_mb: float = 0.0
    storage_wait: float = DEFAULT_WAIT
    model: str | Callable[..., Any] | None = None  # a model function of your own (search.core.custom)
    max_params: int | None = None
    tensorboard: str | None = None  # a folder: each trial's run in TensorBoard (search.core.tensorboard)
    mlflow: str | None = None  # a tracking URI: each trial an MLflow run (search.study.tracking)

    @property
    def in_memory(self) -> Dataset | None:
        return None if self.dataset is None or isinstance(self.dataset, str | DataConfig) else self.dataset

    def data_config(self) -> DataConfig | None:
        """The data part of the request as a ``DataConfig`` (None: not given)."""
        if self.in_memory is not None:
            return DataConfig(self.in_memory.name)
        if isinstance(self.dataset, DataConfig):
            return self.dataset
        return DataConfig(self.dataset) if self.dataset is not None else None

    def budget_seconds(self) -> float | None:
        return parse_budget(str(self.budget)) if self.budget is not None else None


def check_request(r: SearchRequest) -> None:
    """The checks that need nothing loaded: one line each, before anything is written."""
    if r.trials is not None and r.trials < 1:
        raise UsageError(f"--trials must be at least 1, received {r.trials}")
    if r.epochs is not None and r.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, received {r.epochs}")
    if r.epochs is not None and r.epochs > 10000:
        raise UsageError(f"--epochs must be at most 10000, received {r.epochs}")
    if r.seed is not None and not 0 <= r.seed <= MAX_SEED:
        raise UsageError(f"--seed must be an integer from 0 to {MAX_SEED}, received {r.seed}")
    if r.timeout is not None and not (math.isfinite(r.timeout) and r.timeout > 0):
        raise UsageError(f"--timeout must be a positive number of seconds, received {r.timeout}")
    r.budget_seconds()
    if r.warm_start is not None and not [s for s in r.warm_start.split(",") if s.strip()]:
        raise UsageError(f"--warm-start {r.warm_start!r} names no study; write --warm-start STUDY[,STUDY...]")
    if r.warm_start_storage is not None and r.warm_start is None:
        raise UsageError("--warm-start-storage needs --warm-start STUDY; add it or drop --warm-start-storage")
    if r.val_split is not None and not 0 < r.val_split < 1:
        raise UsageError(f"--val-split must be a fraction between 0 and 1, received {r.val_split}")
    if r.workers is not None and r.workers < 1:
        raise UsageError(f"--workers must be at least 1, received {r.workers}")
    if not (math.isfinite(r.recycle_mb) and 0 <= r.recycle_mb <= MAX_RECYCLE_MB):
        raise UsageError(
            f"--recycle-mb must be 0 (never) or a number of MiB up to {MAX_RECYCLE_MB:,} (1 TiB), "
            f"received {r.recycle_mb:g}"
        )
    if not 0 <= r.storage_wait <= MAX_WAIT:  # NaN fails both comparisons
        raise UsageError(
            f"--storage-wait must be from 0 to {MAX_WAIT:g} seconds (how long a search waits for a database "
            f"server that went away), received {r.storage_wait:g}"
        )
    for option in ("tensorboard", "mlflow"):  # each the name of its package and of its extra
        if (value := getattr(r, option)) is not None and importlib.util.find_spec(option) is None:
            raise UsageError(f"--{option} needs the {option} package; run: pip install -e '.[{option}]'")
        if value is not None and "://" not in value:  # a folder of runs: new files only, beside what it holds
            check_output_folder(value, f"--{option}", ours=lambda _: True, what="runs")
    if r.max_params is not None and r.max_params < 1:
        raise UsageError(f"--max-params must be a positive number of parameters, received {r.max_params}")
    if r.heartbeat is not None and not 1 <= r.heartbeat <= MAX_HEARTBEAT:
        raise UsageError(
            f"--heartbeat must be from 1 to {MAX_HEARTBEAT} seconds (a crashed worker's trial is run "
            f"again after {GRACE_FACTOR}x that), received {r.heartbeat}"
        )


def check_monitor(monitor: str, text: bool = False) -> None:
    known = metric_names(text)
    if monitor not in known:
        raise MetricNotFoundError(f"unknown metric '{monitor}' for --monitor; use one of {', '.join(known)}")


def requested_settings(r: SearchRequest, space: Space | None) -> dict[str, Any]:
    """The study settings the request gives explicitly."""
    data = r.data_config()
    data_dir = r.data_dir if r.data_dir is not None else (data.data_dir if data is not None else None)
    given: dict[str, Any] = {
        "dataset": data.dataset if data is not None else None,
        "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
        "val_split": r.val_split
        if r.val_split is not None
        else (data.val_split if isinstance(r.dataset, DataConfig) else None),
        "limit_train": r.limit_train if r.limit_train is not None else (data.limit_train if data is not None else None),
        "epochs": r.epochs,
        "seed": r.seed,
        "sampler": r.sampler,
        "pruner": r.pruner if r.pruner is not None else ("none" if r.budget is not None else None),
        "monitor": r.monitor,
        "heartbeat": r.heartbeat,
        "baseline": r.baseline,
        "objectives": parse_objectives(r.objectives) if r.objectives is not None else None,
        "space": space.to_dict() if space is not None else None,
        "max_params": r.max_params,
    }  # with a budget the plan sets each trial's schedule length: no pruner unless asked
    return {k: v for k, v in given.items() if v is not None}


def _given(data: Any) -> Any:
    return data


@dataclass
class Search:
    """A checked, created (or resumed) search, ready to ``run``."""

    request: SearchRequest
    name: str
    url: str
    settings: StudySettings
    study: optuna.Study
    data: Dataset | None  # None once workers load their own
    load_data: functools.partial
    resumed: bool
    trials: int
    plans: list[WorkerPlan]
    budget: BudgetPlan | None = None
    deadline: float | None = None
    notes: list[str] = field(default_factory=list)  # what the setup did that a user should hear (warm start, joining)

    @property
    def space(self) -> Space:
        return self.settings.space_obj

    def run(self, printer: Callable[[], Callable[[optuna.Study, FrozenTrial], None]] | None = None) -> Outcome:
        """Run the trials: here, or in worker processes; ``printer`` builds each worker's
        callback after every trial (the command line's trial lines)."""
        from search.core.data import load_raw
        from search.study import workers

        r = self.request
        job = workers.SearchJob(
            study=self.name,
            url=self.url,
            settings=self.settings,
            trials=self.trials,
            deadline=self.deadline,
            load_data=self.load_data,
            make_objective=functools.partial(
                build_objective,
                self.settings,
                artifact_dir=default_artifact_dir(self.name, self.url, Path(r.studies_dir)),
                budget=self.budget,
                tensorboard=str(Path(r.tensorboard).resolve()) if r.tensorboard else None,
                mlflow=tracking_uri(r.mlflow) if r.mlflow else None,
            ),
            recycle_mb=r.recycle_mb or None,
            budget=self.budget,
            storage_wait=r.storage_wait,
            printer=printer,
        )
        data = self.data
        if workers.spawns(job, self.plans):
            self.data = data = None  # each worker loads its own copy
            load_raw.cache_clear()
        return workers.run(job, self.plans, data)


def prepare(r: SearchRequest, before_data: Callable[[], None] | None = None) -> Search:
    """Check ``r``, load the data, create or resume the study; raise (one line) on bad input.
    ``before_data`` runs after the checks that need nothing loaded (the command line checks
    that TensorFlow is installed there)."""
    from search.study import placement

    check_request(r)
    budget_s = r.budget_seconds()
    trials = r.trials if r.trials is not None else (10**6 if budget_s else DEFAULT_TRIALS)
    gpus = placement.parse_gpus(r.gpus)
    n_workers = min(r.workers or max(len(gpus), 1), trials)  # a worker without a trial would only start up
    plans = placement.plan_workers(n_workers, gpus, placement.available_cores(), r.mixed_precision)
    space = r.space if isinstance(r.space, Space) else load_space(r.space) if r.space is not None else None
    requested = requested_settings(r, space)
    space_name = Path(r.space).stem if isinstance(r.space, str) else space.name if space else DEFAULT_SPACE
    spec = model_spec(r.model)
    if spec is not None and r.space is None:
        space_name = spec.rpartition(":")[2]  # digits-build_model
    name = check_study_name(
        r.study if r.study is not None else default_study_name(requested.get("dataset", DEFAULTS.dataset), space_name)
    )
    url = r.storage or default_storage(name, Path(r.studies_dir))
    check_writable(url)
    recorded = read_recorded(name, url)
    declared = None
    if spec is not None:  # the function needs TensorFlow: declare_model runs before_data first
        declared, given = declare_model(spec, space, recorded, name, before_data)
        requested.update(given)
        before_data = None
    if "monitor" in requested:
        dataset = requested.get("dataset", recorded.dataset if recorded else DEFAULTS.dataset)
        check_monitor(requested["monitor"], text=is_text_dataset(dataset))
    defaults = dataclasses.replace(DEFAULTS, space=load_space(DEFAULT_SPACE).to_dict())
    settings = resolve_settings(name, requested, recorded, defaults)
    check_monitor(settings.monitor, text=is_text_dataset(settings.dataset))
    settings = check_objective_settings(settings, requested)  # several objectives: a sampler that can, no pruner
    if budget_s and settings.multi_objective:
        raise UsageError(
            f"--budget plans trials by one value, and --objectives {settings.objectives} has several; "
            "use --timeout for a Pareto search"
        )
    warm = None
    if r.warm_start:
        from search.study.warmstart import read_warm_start

        warm = read_warm_start(r.warm_start, r.warm_start_storage or r.storage, Path(r.studies_dir), name)
    make_sampler(settings.sampler, settings.seed)  # fail on a missing optional package now,
    make_pruner(settings.pruner, settings.epochs)  # not after the study exists

    if before_data is not None:
        before_data()
    from search.core.data import load_dataset

    if r.in_memory is not None:
        load_data = functools.partial(_given, r.in_memory)
    else:
        load_data = functools.partial(load_dataset, settings.config.data)
    data = load_data()  # here too with workers: bad data stops us before the study exists
    if declared is not None:
        declared.check(spec, data.input_shape, data.num_classes, text=bool(data.text_length))
    if recorded is None:
        settings = with_recipe(settings, data)
    taken: Taken | None = warm.for_space(settings.space_obj) if warm is not None else None

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = create_or_load(name, url, settings, wait=r.storage_wait)  # created once, before any worker starts
    reap_dead(study, GRACE_FACTOR * settings.heartbeat)  # trials of a killed run on this machine: queued again now
    search = Search(r, name, url, settings, study, data, load_data, recorded is not None, trials, plans)
    if taken is not None:
        taken.apply(study)
        search.notes.append(taken.describe())
    if budget_s:  # the study's running budget, if another command (or this one before a kill -9) started one
        plan = {"max_epochs": r.epochs or BUDGET_MAX_EPOCHS, "capped": bool(r.epochs), "sampler": settings.sampler}
        images = len(data.x_val) if settings.monitor == "val_accuracy" else None  # a branch must beat their noise
        search.budget, joined = study_budget(study, budget_s, **plan, val_images=images)  # the worker says the plan
        if joined:
            search.notes.append(joined)
    ends = (time.time() + r.timeout if r.timeout else None, search.budget.deadline if search.budget else None)
    search.deadline = min((d for d in ends if d), default=None)
    return search
