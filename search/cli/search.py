"""``search`` (the default command): run a new search or resume one.

Everything a bad argument can break is checked before the study is created or a trial
runs: the study name, storage URL, space file, dataset, metric, objectives, sampler and
pruner.
Trials run here, or in ``--workers`` / ``--gpus`` processes (see ``workers``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import shlex
import time
from pathlib import Path
from typing import Any

from search.core.config import MAX_SEED, is_text_dataset, metric_names
from search.study.budgets import parse_budget, study_budget
from search.errors import MetricNotFoundError, UsageError
from search.study.objectives import check_objective_settings, describe_objectives, parse_objectives
from search.core.space_files import load_space
from search.study.patient import DEFAULT_WAIT, MAX_WAIT
from search.study.recovery import reap_dead
from search.study.runner import BUDGET_MAX_EPOCHS, build_objective, with_recipe
from search.study.samplers import (
    DEFAULT_PRUNER,
    DEFAULT_SAMPLER,
    PRUNERS,
    SAMPLERS,
    make_pruner,
    make_sampler,
)
from search.study.settings import StudySettings, resolve_settings
from search.study.storage import (
    GRACE_FACTOR,
    check_study_name,
    check_writable,
    create_or_load,
    default_artifact_dir,
    default_storage,
    read_recorded,
    safe_url,
)

DEFAULTS = StudySettings.of(dataset="digits", epochs=10, baseline=True)
DEFAULT_SPACE = "cnn"
DEFAULT_TRIALS = 20
DEFAULT_RECYCLE_MB = 512


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", help="study name (default: <dataset>-<space>); an existing study is resumed")
    p.add_argument("--dataset", help="digits (default), mnist, fashion_mnist, cifar10, cifar100, folder:PATH, npz:PATH, "
                   "textfolder:PATH (text images), captcha or captcha:N (generated 4-digit captchas)")
    p.add_argument("--data-dir", help="folder with the dataset's files when it cannot be downloaded")
    p.add_argument("--space", help=f"built-in space name or a .toml file (default: {DEFAULT_SPACE})")
    p.add_argument("--trials", type=int, default=None, help=f"trials to run now (default: {DEFAULT_TRIALS})")
    p.add_argument("--budget", help="the whole search's wall clock: 600, 90s, 10m, 2h. Plans each trial's epochs "
                   "(short schedules, then longer ones for the best, then the best with the time left) and stops "
                   "the running trial at the deadline; the main knob of a search")
    p.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    p.add_argument("--warm-start", metavar="STUDY[,STUDY...]",
                   help="queue the best configurations of earlier studies (that this space can take) and centre the prior on them")
    p.add_argument("--warm-start-storage", metavar="URL",
                   help="storage of the --warm-start studies (default: --storage, or each study's own database under --studies-dir)")
    p.add_argument("--epochs", type=int, help=f"maximum epochs per trial (default: {DEFAULTS.epochs})")
    p.add_argument("--sampler", choices=SAMPLERS, help=f"default: {DEFAULT_SAMPLER}")
    p.add_argument("--pruner", choices=PRUNERS, help=f"default: {DEFAULT_PRUNER}")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=None,
                   help="a new study's first trial trains the default recipe (default: on; --no-baseline leaves every trial to the sampler)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///studies/<study>.db)")
    p.add_argument("--studies-dir", default="studies", help="where default databases go (default: studies)")
    p.add_argument("--seed", type=int, help="seed for the sampler, the splits and each trial (default: 0)")
    p.add_argument("--val-split", type=float, help="fraction of the training split kept for validation (default: 0.1)")
    p.add_argument("--limit-train", type=int, help="use only this many training images (quick searches)")
    p.add_argument("--monitor", help="metric to optimize and prune on (default: val_accuracy)")
    p.add_argument("--objectives", help="accuracy (the --monitor metric; the default), or it against model size and "
                   "speed: accuracy,params or accuracy,params,latency (a Pareto front; no pruning; recorded by the study)")
    p.add_argument("--workers", type=int, help="worker processes on this machine sharing the study (default: 1, or one per --gpus entry)")
    p.add_argument("--gpus", help="GPU ids, one worker each, each seeing only its own: 0,1,2,3")
    p.add_argument("--mixed-precision", action="store_true", help="train in mixed_float16 (for GPUs with tensor cores)")
    p.add_argument("--recycle-mb", type=float, default=DEFAULT_RECYCLE_MB, metavar="MB",
                   help="replace a worker process by a fresh one, between trials, once its memory has grown this many MiB "
                   f"since its first trial (default: {DEFAULT_RECYCLE_MB}; 0: never, and one worker runs in this process)")
    p.add_argument("--storage-wait", type=float, default=DEFAULT_WAIT, metavar="SECONDS",
                   help="how long workers wait for a PostgreSQL or MySQL server that went away before they stop (one line, "
                   f"exit 2; the same command resumes); training goes on meanwhile (default: {DEFAULT_WAIT:g})")
    p.add_argument("--heartbeat", type=int, help=f"seconds between a running trial's heartbeats; a trial silent for "
                   f"{GRACE_FACTOR}x that is failed and run again (default: {DEFAULTS.heartbeat}; recorded by the study)")


def requested_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The study settings the user gave explicitly (None means 'not given')."""
    given = {
        "dataset": args.dataset,
        "data_dir": str(Path(args.data_dir).resolve()) if args.data_dir else None,
        "val_split": args.val_split,
        "limit_train": args.limit_train,
        "epochs": args.epochs,
        "seed": args.seed,
        "sampler": args.sampler,
        "pruner": args.pruner,
        "monitor": args.monitor,
        "heartbeat": args.heartbeat,
        "baseline": args.baseline,
    }
    if args.objectives is not None:
        given["objectives"] = parse_objectives(args.objectives)
    if args.space:
        given["space"] = load_space(args.space).to_dict()
    return {k: v for k, v in given.items() if v is not None}


def default_study_name(dataset: str, space: str) -> str:
    stem = Path(dataset.split(":", 1)[1]).name if ":" in dataset and not dataset.startswith("captcha:") else dataset.replace(":", "")
    return f"{stem}-{Path(space).stem}"


def check_arguments(args: argparse.Namespace) -> None:
    if args.trials is not None and args.trials < 1:
        raise UsageError(f"--trials must be at least 1, received {args.trials}")
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, received {args.epochs}")
    if args.epochs is not None and args.epochs > 10000:
        raise UsageError(f"--epochs must be at most 10000, received {args.epochs}")
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        raise UsageError(f"--seed must be an integer from 0 to {MAX_SEED}, received {args.seed}")
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise UsageError(f"--timeout must be a positive number of seconds, received {args.timeout}")
    if args.budget is not None:
        parse_budget(args.budget)
    if args.warm_start is not None and not [s for s in args.warm_start.split(",") if s.strip()]:
        raise UsageError(f"--warm-start {args.warm_start!r} names no study; write --warm-start STUDY[,STUDY...]")
    if args.warm_start_storage is not None and args.warm_start is None:
        raise UsageError("--warm-start-storage needs --warm-start STUDY; add it or drop --warm-start-storage")
    if args.val_split is not None and not 0 < args.val_split < 1:
        raise UsageError(f"--val-split must be a fraction between 0 and 1, received {args.val_split}")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, received {args.workers}")
    if not (math.isfinite(args.recycle_mb) and 0 <= args.recycle_mb <= MAX_RECYCLE_MB):
        raise UsageError(f"--recycle-mb must be 0 (never) or a number of MiB up to {MAX_RECYCLE_MB:,} (1 TiB), "
                         f"received {args.recycle_mb:g}")
    if not 0 <= args.storage_wait <= MAX_WAIT:  # NaN fails both comparisons
        raise UsageError(f"--storage-wait must be from 0 to {MAX_WAIT:g} seconds (how long a search waits for a database "
                         f"server that went away), received {args.storage_wait:g}")
    if args.heartbeat is not None and not 1 <= args.heartbeat <= MAX_HEARTBEAT:
        raise UsageError(f"--heartbeat must be from 1 to {MAX_HEARTBEAT} seconds (a crashed worker's trial is run "
                         f"again after {GRACE_FACTOR}x that), received {args.heartbeat}")


MAX_HEARTBEAT = 3600  # an hour: longer and a crashed worker's trial waits half a day to run again
MAX_RECYCLE_MB = 2**20


def check_monitor(monitor: str, text: bool = False) -> None:
    known = metric_names(text)
    if monitor not in known:
        raise MetricNotFoundError(f"unknown metric '{monitor}' for --monitor; use one of {', '.join(known)}")


MIN_PER_CLASS = 5  # fewer training or validation images of a class than this: a split that measures little


def split_warnings(data) -> list[str]:
    """A split that leaves some class with fewer than MIN_PER_CLASS images (training or
    validation): the search would rank on a handful of images, or learn a class from them."""
    import numpy as np

    if data.text_length:
        return []  # labels are characters, not classes
    found = []
    for split, y in (("training", data.y_train), ("validation", data.y_val)):
        counts = np.bincount(np.asarray(y, dtype=np.int64).reshape(-1), minlength=data.num_classes)
        if counts.min() < MIN_PER_CLASS:
            worst = int(np.argmin(counts))
            found.append(f"the {split} split holds {counts.min()} image(s) of class {data.class_names[worst]!r} "
                         f"({len(y)} images for {data.num_classes} classes); fewer than {MIN_PER_CLASS} a class "
                         f"{'ranks trials on noise' if split == 'validation' else 'teaches a class little'}: "
                         "change --val-split or --limit-train")
    return found


def data_warnings(data, space) -> list[str]:
    """Input-scale warnings for the normalization modes the space can choose."""
    from search.reporting.diagnose import input_warnings

    modes = {"scale"}
    for p in space.params:
        if (p.section, p.key) == ("data", "normalization"):
            modes = set(p.possible_values() or ())
    found = input_warnings(data.x_train, data.pixel_max, data.mean, data.variance, sorted(modes))
    found += split_warnings(data)
    if data.text_length and any((p.section, p.key) == ("augment", "horizontal_flip") for p in space.params):
        found.append("augment.horizontal_flip is not sampled for text data (a mirrored text is not its text)")
    return found


def location_args(args: argparse.Namespace, url: str) -> str:
    """The options that find this study again, for the commands the summary suggests."""
    if args.storage:
        return f" --storage {shlex.quote(safe_url(url))}"
    return f" --studies-dir {shlex.quote(args.studies_dir)}" if args.studies_dir != "studies" else ""


def run(args: argparse.Namespace) -> int:
    from search.study import placement, workers

    check_arguments(args)
    budget_s = parse_budget(args.budget) if args.budget is not None else None
    trials = args.trials if args.trials is not None else (10**6 if budget_s else DEFAULT_TRIALS)
    gpus = placement.parse_gpus(args.gpus)
    n_workers = min(args.workers or max(len(gpus), 1), trials)  # a worker without a trial would only start up
    plans = placement.plan_workers(n_workers, gpus, placement.available_cores(), args.mixed_precision)
    requested = requested_settings(args)
    if budget_s and "pruner" not in requested:
        requested["pruner"] = "none"  # the budget plan sets each trial's schedule length; nothing to cut short
    name = check_study_name(args.study if args.study is not None else default_study_name(requested.get("dataset", DEFAULTS.dataset), args.space or DEFAULT_SPACE))
    url = args.storage or default_storage(name, Path(args.studies_dir))
    check_writable(url)
    recorded = read_recorded(name, url)
    if "monitor" in requested:
        check_monitor(requested["monitor"], text=is_text_dataset(requested.get("dataset", recorded.dataset if recorded else DEFAULTS.dataset)))
    defaults = dataclasses.replace(DEFAULTS, space=load_space(DEFAULT_SPACE).to_dict())
    settings = resolve_settings(name, requested, recorded, defaults)
    check_monitor(settings.monitor, text=is_text_dataset(settings.dataset))
    settings = check_objective_settings(settings, requested)  # several objectives: a sampler that can, no pruner
    if budget_s and settings.multi_objective:
        raise UsageError(f"--budget plans trials by one value, and --objectives {settings.objectives} has several; "
                         "use --timeout for a Pareto search")
    warm = None
    if args.warm_start:
        from search.study.warmstart import read_warm_start

        warm = read_warm_start(args.warm_start, args.warm_start_storage or args.storage, Path(args.studies_dir), name)
    make_sampler(settings.sampler, settings.seed)  # fail on a missing optional package now,
    make_pruner(settings.pruner, settings.epochs)  # not after the study exists

    from search.cli import require_tensorflow

    require_tensorflow(import_now=False)  # TensorFlow loads where trials run, after the cheap checks
    from search.core.data import load_dataset, load_raw

    load_data = functools.partial(load_dataset, settings.config.data)
    data = load_data()  # here too with workers: bad data stops us before the study exists
    if recorded is None:
        settings = with_recipe(settings, data)
    space = settings.space_obj
    taken = None
    if warm is not None:
        taken = warm.for_space(space)
    print(f"{'resuming' if recorded else 'new'} study '{name}' in {safe_url(url)}")
    for warning in data_warnings(data, space):
        print(f"warning: {warning}")
    epochs = (f"epochs planned from the budget (at most {args.epochs or BUDGET_MAX_EPOCHS})" if budget_s
              else f"up to {settings.epochs} epochs a trial")
    print(f"data {data.describe()}; space '{space.name}' ({len(space.params)} parameters); "
          f"{epochs}; sampler {settings.sampler}, pruner {settings.pruner}")
    if settings.multi_objective:
        print(f"objectives: {describe_objectives(settings)}; a Pareto front, and no pruning "
              "(Optuna prunes single-objective studies only): every trial runs all its epochs")
    if len(plans) > 1 or plans[0].env:
        where = [p.describe().split(": ", 1)[1] for p in plans]
        print(f"{len(plans)} worker processes: " + (f"each {where[0]}" if len(set(where)) == 1 else "; ".join(where)))

    import optuna

    from search.reporting.progress import summary

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = create_or_load(name, url, settings, wait=args.storage_wait)  # created once, before any worker starts
    reap_dead(study, GRACE_FACTOR * settings.heartbeat)  # trials of a killed run on this machine: queued again now
    if taken is not None:
        taken.apply(study)
        print(taken.describe())
    start = time.perf_counter()
    budget = None
    if budget_s:  # the study's running budget, if another command (or this one before a kill -9) started one
        budget, joined = study_budget(study, budget_s, max_epochs=args.epochs or BUDGET_MAX_EPOCHS, capped=bool(args.epochs),
                                      sampler=settings.sampler)  # the worker says the plan
        if joined:
            print(joined)
    deadlines = [d for d in (time.time() + args.timeout if args.timeout else None, budget.deadline if budget else None) if d]
    job = workers.SearchJob(
        study=name, url=url, settings=settings, trials=trials,
        deadline=min(deadlines) if deadlines else None,
        load_data=load_data,
        make_objective=functools.partial(
            build_objective, settings, artifact_dir=default_artifact_dir(name, url, Path(args.studies_dir)), budget=budget
        ),
        recycle_mb=args.recycle_mb or None,
        budget=budget,
        storage_wait=args.storage_wait,
    )
    if workers.spawns(job, plans):
        data = None  # each worker loads its own copy
        load_raw.cache_clear()
    outcome = workers.run(job, plans, data)
    if outcome.exit_code == 2:
        return 2  # a worker printed the error
    print(f"\nran {outcome.trials} trials in {time.perf_counter() - start:.0f}s"
          + (f" with {len(plans)} workers" if len(plans) > 1 else ""))
    summary(study, safe_url(url), location_args=location_args(args, url))
    if budget is not None:
        from search.reporting.progress import budget_summary

        print(budget_summary(study, budget))
    return outcome.exit_code
