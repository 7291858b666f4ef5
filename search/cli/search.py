"""``search`` (the default command): run a new search or resume one.

The command parses its options into a ``search.study.setup.SearchRequest``; the setup,
the same one ``search.run_search`` uses, checks everything a bad argument can break
before the study is created or a trial runs (study name, storage URL, space file,
dataset, metric, objectives, sampler and pruner) and creates or resumes the study.
This module prints what it did, runs it, and prints the summary.
Trials run here, or in ``--workers`` / ``--gpus`` processes (see ``search.study.workers``).
"""

from __future__ import annotations

import argparse
import functools
import shlex
import time

from search.reporting.progress import TrialPrinter
from search.study.model_space import DEFAULT_MODEL_SPACE
from search.study.patient import DEFAULT_WAIT
from search.study.runner import BUDGET_MAX_EPOCHS
from search.study.samplers import DEFAULT_PRUNER, DEFAULT_SAMPLER, PRUNERS, SAMPLERS
from search.study.setup import DEFAULT_RECYCLE_MB, DEFAULT_SPACE, DEFAULT_TRIALS, DEFAULTS, SearchRequest, prepare
from search.study.storage import GRACE_FACTOR, safe_url


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", help="study name (default: <dataset>-<space>); an existing study is resumed")
    p.add_argument(
        "--dataset",
        help="digits (default), mnist, fashion_mnist, cifar10, cifar100, folder:PATH, npz:PATH, "
        "textfolder:PATH (text images), captcha or captcha:N (generated 4-digit captchas)",
    )
    p.add_argument("--data-dir", help="folder with the dataset's files when it cannot be downloaded")
    p.add_argument(
        "--space",
        help=f"built-in space name or a .toml file (default: {DEFAULT_SPACE}; with --model: {DEFAULT_MODEL_SPACE})",
    )
    p.add_argument(
        "--model",
        metavar="FILE.py:FUNCTION",
        help="search your own Keras model: a function of hp (KerasTuner's hp.Int, hp.Float, hp.Choice, ... or "
        "Optuna's suggest_*) that returns a keras.Model; the space samples the training around it",
    )
    p.add_argument(
        "--max-params",
        type=int,
        metavar="N",
        help="fail a trial whose model has more than N parameters (it does not train; the search goes on)",
    )
    p.add_argument("--trials", type=int, default=None, help=f"trials to run now (default: {DEFAULT_TRIALS})")
    p.add_argument(
        "--budget",
        help="the whole search's wall clock: 600, 90s, 10m, 2h. Plans each trial's epochs "
        "(short schedules, then longer ones for the best, then the best with the time left) and stops "
        "the running trial at the deadline; the main knob of a search",
    )
    p.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    p.add_argument(
        "--warm-start",
        metavar="STUDY[,STUDY...]",
        help="queue the best configurations of earlier studies (that this space can take) and centre the prior on them",
    )
    p.add_argument(
        "--warm-start-storage",
        metavar="URL",
        help=(
            "storage of the --warm-start studies (default: --storage, or each study's own database under --studies-dir)"
        ),
    )
    p.add_argument("--epochs", type=int, help=f"maximum epochs per trial (default: {DEFAULTS.epochs})")
    p.add_argument("--sampler", choices=SAMPLERS, help=f"default: {DEFAULT_SAMPLER}")
    p.add_argument("--pruner", choices=PRUNERS, help=f"default: {DEFAULT_PRUNER}")
    p.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "a new study's first trial trains the default recipe (default: "
            "on; --no-baseline leaves every trial to the sampler)"
        ),
    )
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///studies/<study>.db)")
    p.add_argument("--studies-dir", default="studies", help="where default databases go (default: studies)")
    p.add_argument("--seed", type=int, help="seed for the sampler, the splits and each trial (default: 0)")
    p.add_argument("--val-split", type=float, help="fraction of the training split kept for validation (default: 0.1)")
    p.add_argument("--limit-train", type=int, help="use only this many training images (quick searches)")
    p.add_argument("--monitor", help="metric to optimize and prune on (default: val_accuracy)")
    p.add_argument(
        "--objectives",
        help="accuracy (the --monitor metric; the default), or it against model size and "
        "speed: accuracy,params or accuracy,params,latency (a Pareto front; no pruning; recorded by the study)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes on this machine sharing the study (default: 1, or one per --gpus entry)",
    )
    p.add_argument("--gpus", help="GPU ids, one worker each, each seeing only its own: 0,1,2,3")
    p.add_argument("--mixed-precision", action="store_true", help="train in mixed_float16 (for GPUs with tensor cores)")
    p.add_argument(
        "--recycle-mb",
        type=float,
        default=DEFAULT_RECYCLE_MB,
        metavar="MB",
        help="replace a worker process by a fresh one, between trials, once its memory has grown this many MiB "
        f"since its first trial (default: {DEFAULT_RECYCLE_MB}; 0: never, and one worker runs in this process)",
    )
    p.add_argument(
        "--storage-wait",
        type=float,
        default=DEFAULT_WAIT,
        metavar="SECONDS",
        help="how long workers wait for a PostgreSQL or MySQL server that went away before they stop (one line, "
        f"exit 2; the same command resumes); training goes on meanwhile (default: {DEFAULT_WAIT:g})",
    )
    p.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="each trial's epoch scalars and hyperparameters as a TensorBoard run, DIR/trial-NNNN "
        "(watch with: tensorboard --logdir DIR; needs pip install -e '.[tensorboard]')",
    )
    p.add_argument(
        "--mlflow",
        metavar="URI",
        help="each trial an MLflow run of the experiment named after the study: params, per-epoch metrics, status "
        "(a tracking URI: http://host:5000, sqlite:///mlflow.db, or a folder; needs pip install -e '.[mlflow]')",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also show TensorFlow's own start-up and C++ log lines (hidden by default)",
    )
    p.add_argument(
        "--heartbeat",
        type=int,
        help=f"seconds between a running trial's heartbeats; a trial silent for "
        f"{GRACE_FACTOR}x that is failed and run again (default: {DEFAULTS.heartbeat}; recorded by the study)",
    )


def request_of(args: argparse.Namespace) -> SearchRequest:
    """The options as a request: what was not given stays None (the study's or the default)."""
    fields = {k: v for k, v in vars(args).items() if k in SearchRequest.__dataclass_fields__}
    return SearchRequest(**fields)


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
            found.append(
                f"the {split} split holds {counts.min()} image(s) of class {data.class_names[worst]!r} "
                f"({len(y)} images for {data.num_classes} classes); fewer than {MIN_PER_CLASS} a class "
                f"{'ranks trials on noise' if split == 'validation' else 'teaches a class little'}: "
                "change --val-split or --limit-train"
            )
    return found


def data_warnings(data, space) -> list[str]:
    """Input-scale warnings for the normalization modes the space can choose."""
    from search.core.diagnose import input_warnings

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
    from search.cli import require_tensorflow

    # installed? (after the cheap checks; it loads where trials run)
    search = prepare(request_of(args), before_data=functools.partial(require_tensorflow, import_now=False))
    data, space, settings, plans = search.data, search.space, search.settings, search.plans
    print(f"{'resuming' if search.resumed else 'new'} study '{search.name}' in {safe_url(search.url)}")
    for warning in data_warnings(data, space):
        print(f"warning: {warning}")
    epochs = (
        f"epochs planned from the budget (at most {args.epochs or BUDGET_MAX_EPOCHS})"
        if search.budget
        else f"up to {settings.epochs} epochs a trial"
    )
    if settings.model:
        own = [p.name for p in space.params if p.section == "model"]
        print(f"model {settings.model} (your function; {len(own)} hyperparameters: {', '.join(own) or 'none'})")
    print(
        f"data {data.describe()}; space '{space.name}' ({len(space.params)} parameters); "
        f"{epochs}; sampler {settings.sampler}, pruner {settings.pruner}"
    )
    if settings.multi_objective:
        from search.study.objectives import describe_objectives

        print(
            f"objectives: {describe_objectives(settings)}; a Pareto front, and no pruning "
            "(Optuna prunes single-objective studies only): every trial runs all its epochs"
        )
    if len(plans) > 1 or plans[0].env:
        where = [p.describe().split(": ", 1)[1] for p in plans]
        print(f"{len(plans)} worker processes: " + (f"each {where[0]}" if len(set(where)) == 1 else "; ".join(where)))
    for note in search.notes:
        print(note)
    start = time.perf_counter()
    outcome = search.run(printer=TrialPrinter)
    if outcome.exit_code == 2:
        return 2  # a worker printed the error
    print(
        f"\nran {outcome.trials} trials in {time.perf_counter() - start:.0f}s"
        + (f" with {len(plans)} workers" if len(plans) > 1 else "")
    )
    from search.reporting.progress import budget_summary, summary

    summary(search.study, safe_url(search.url), location_args=location_args(args, search.url))
    if search.budget is not None:
        print(budget_summary(search.study, search.budget))
    return outcome.exit_code
