"""The tools the benchmark compares, each a function ``(Bench, Recorder) -> None`` that
searches until the recorder's budget ends.

* ``cnn-search``: the harness as ``search --budget`` runs it (same settings object,
  study creation, objective, default recipe as the base and first trial, prior-guided
  sampler with the budget plan, ``search.study.budget``), a SQLite study in a temporary
  folder; it plans its own epochs from the budget (``--epochs`` caps the peers' trials);
* ``recipe``: the default recipe (``search.core.recipe``) trained once for its 15 epochs, no search;
* ``recipe-paced``: the default recipe trained once with the whole budget, its schedule
  paced by the clock (what ``search --budget`` does when the budget buys under 60
  recipe epochs), no search: the bar a search must clear at a rich budget;
* ``random``: the same harness with random sampling and no pruning;
* ``tpe-median``: the same harness with the defaults it had before the benchmark (TPE,
  median pruner), and ``cnn-search-baseline`` (its defaults with the baseline trial first,
  ``search --baseline``), to weigh defaults against each other (run only when named);
* ``cnn-search-tpe``: ``search --budget --sampler tpe``, the same plan with TPE drawing
  (run only when named): what the prior adds under the same plan;
* ``optuna-example``: a hand-written Optuna script (``optuna_example.py``);
* ``kt-hyperband``, ``kt-bayesian``: KerasTuner (``keras_tuner_tools.py``), imported
  only when asked for, since keras-tuner is an optional (``bench``) dependency.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import optuna
from optuna.trial import FixedTrial, TrialState

from benchmarks.clock import BudgetClock
from benchmarks.record import BudgetSpent, Recorder
from search.core.config import DataConfig, RunConfig
from search.core.data import Dataset, load_raw, prepare
from search.core.pipeline import TensorCache, make_pipeline
from search.core.recipe import DataShape, recipe
from search.core.spaces import Space
from search.core.training import fit, keras_session
from search.errors import DataError, TrialError
from search.study.budget import BudgetPlan
from search.study.budgets import study_budget
from search.study.loop import plan_budget
from search.study.record import TrialRecord
from search.study.runner import BUDGET_MAX_EPOCHS  # as ``search --budget`` without --epochs
from search.study.samplers import DEFAULT_PRUNER, DEFAULT_SAMPLER
from search.study.settings import StudySettings
from search.study.storage import create_or_load, default_storage
from search.study.trial import Objective

__all__ = [
    "Bench",
    "TOOLS",
    "KERAS_TUNER_TOOLS",
    "load_data",
    "warm_up",
    "get_tool",
    "config_from_params",
    "retrain_and_test",
]

MONITOR = "val_accuracy"
OPTUNA_STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}


@dataclass(frozen=True)
class Bench:
    """What every tool gets: the same data, space and base config, a seed and a scratch folder."""

    data: Dataset
    space: Space
    base: RunConfig  # data settings, epochs per trial; ``seed`` is the benchmark seed
    workdir: Path

    @property
    def seed(self) -> int:
        return self.base.seed


def load_data(dataset: str, data_dir: str | None, limit_train: int | None, val_size: int) -> tuple[DataConfig, Dataset]:
    """The benchmark's fixed data: ``val_size`` validation images carved from the training
    split, at most ``limit_train`` training images, the dataset's whole test split.
    The split seed is always 0: seeds vary the searches, never the data."""
    raw = load_raw(dataset, data_dir)
    if not 0 < val_size < len(raw.x_train):
        raise DataError(
            f"--val-size must be between 0 and {len(raw.x_train)} images for {dataset}, received {val_size}"
        )
    cfg = DataConfig(dataset, data_dir, val_size / len(raw.x_train), limit_train)
    return cfg, prepare(raw, cfg)


def config_from_params(bench: Bench, params: dict) -> RunConfig:
    """Replay sampled params through the space (``FixedTrial``): one source of truth."""
    return bench.space.sample(FixedTrial(params), bench.base)


def optuna_recorder_callback(bench: Bench, rec: Recorder) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    def config(trial: optuna.trial.FrozenTrial) -> RunConfig:
        # The config the trial trained, as the objective stored it (with its base config and
        # planned epochs); replaying params through the space for tools that store none.
        stored = TrialRecord.of(trial).config
        return RunConfig.from_dict(stored) if isinstance(stored, dict) else config_from_params(bench, trial.params)

    def on_trial_end(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        rec.trial_done(OPTUNA_STATES.get(trial.state, "failed"), trial.value, lambda: config(trial))
        record = TrialRecord.of(trial)
        if record.phase is not None:  # a budgeted search: what it tried, at which length, and what came of it
            from search.study.budget import trial_epochs

            change = (
                "recipe"
                if record.baseline
                else "control"
                if record.control
                else record.lever or record.changed or record.draw
            )
            rec.explored(
                {
                    "trial": trial.number,
                    "phase": record.phase,
                    "state": OPTUNA_STATES.get(trial.state, "failed"),
                    "change": change,
                    "source": record.source,
                    "continued_from": record.continued_from,
                    "epochs": trial_epochs(trial),
                    "value": trial.value,
                }
            )

    return on_trial_end


def bench_recipe(bench: Bench, epochs: int | None = None) -> RunConfig:
    """The default recipe for the benchmark's data (``epochs`` None: the recipe's own)."""
    return recipe(DataShape.of(bench.data, bench.base.data.dataset), bench.base.data, epochs=epochs, seed=bench.seed)


def run_harness(
    bench: Bench, rec: Recorder, sampler: str, pruner: str, baseline: bool = False, budgeted: bool = False
) -> None:
    """Search with cnn-search's own code path, as ``search.cli.search.run`` wires it.  ``budgeted``:
    as ``search --budget`` (the recipe as base config, the budget plan over the time left)."""
    base = bench_recipe(bench, epochs=bench.base.train.epochs) if budgeted else bench.base
    settings = StudySettings(
        config=base, space=bench.space.to_dict(), sampler=sampler, pruner=pruner, baseline=baseline
    )
    name = f"{rec.run.tool}-{bench.seed}"
    storage = default_storage(name, bench.workdir)
    budget = None
    if budgeted:  # as search --budget (search.study.setup): the study records its budget, then its sampler plans
        # from it; the sampler decides the plan's shape (only the prior sampler branches; another draws its
        # explore trials from scratch), and a branch must beat the noise of the validation images
        images = len(bench.data.x_val) if settings.monitor == "val_accuracy" else None
        created = create_or_load(name, storage, settings)
        budget, _ = study_budget(
            created, rec.remaining(), max_epochs=BUDGET_MAX_EPOCHS, sampler=sampler, val_images=images
        )
    study = create_or_load(name, storage, settings, budget=budget)
    objective = Objective(
        bench.space,
        bench.data,
        settings.config,
        callbacks=[BudgetClock(rec)],
        deadline=budget.deadline if budget else None,
        epochs=(1, budget.max_epochs) if budget else None,
        checkpoint_dir=bench.workdir / "checkpoints" if budget else None,
    )
    if budget is not None:  # as a search's worker does, within the budget: the probe, a wider net, the plan line
        plan_budget(budget, objective, study)
    try:
        study.optimize(
            objective,
            timeout=max(rec.remaining(), 1e-9),
            catch=(TrialError,),
            callbacks=[optuna_recorder_callback(bench, rec), *([_stop_when_finished(budget)] if budget else [])],
        )
    except BudgetSpent:
        pass  # the running trial was stopped (and counted as cut) when the budget ended


def _stop_when_finished(budget: BudgetPlan) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """As a search's worker loop does (search.study.loop.run_trials): no trial after the final
    run when the time left would not finish a short schedule."""

    def stop(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if budget.finished(study):
            study.stop()

    return stop


def run_cnn_search(bench: Bench, rec: Recorder) -> None:
    """``search --budget`` with every default: recipe first, prior sampler, budget plan."""
    run_harness(bench, rec, DEFAULT_SAMPLER, "none", baseline=True, budgeted=True)


def run_cnn_search_tpe(bench: Bench, rec: Recorder) -> None:
    """``search --budget --sampler tpe``: the same budget plan (recipe first, its phases and
    lengths, the final run), TPE drawing the explore trials after the recipe instead of
    the prior sampler's levers: how much the prior adds under the same plan."""
    run_harness(bench, rec, "tpe", "none", baseline=True, budgeted=True)


def run_recipe(bench: Bench, rec: Recorder) -> None:
    """The default recipe trained once, validated every epoch: what a user gets with no search."""
    config = bench_recipe(bench)
    history: dict[str, list[float]] = {}
    try:
        with keras_session():
            history = fit(config, bench.data, callbacks=[BudgetClock(rec), _History(history)]).history
    except BudgetSpent:
        pass
    values = history.get(MONITOR) or []
    if len(values) == config.train.epochs:  # a run the budget cut was counted as cut by the clock
        rec.trial_done("complete", max(values), lambda: config)


def run_recipe_paced(bench: Bench, rec: Recorder) -> None:
    """The default recipe trained once with the whole budget: its epoch timed by the probe
    a budgeted search runs (inside the budget), its one-cycle schedule paced by the clock
    to anneal just before the budget ends (``search.core.deadline.Pace``), as a budgeted
    search's final run is paced.  No search, no early answer: one run, one result."""
    from search.core.training import probe_epoch_seconds

    config = bench_recipe(bench)
    per_epoch = probe_epoch_seconds(config, bench.data)
    plan = BudgetPlan(rec.remaining())
    until = plan.deadline - plan.finish(per_epoch)
    epochs = max(1, int((until - time.time()) / per_epoch))  # sizes the schedule; the clock decides
    config = config.replace(train=dataclasses.replace(config.train, epochs=epochs))
    history: dict[str, list[float]] = {}
    try:
        with keras_session():
            result = fit(config, bench.data, callbacks=[BudgetClock(rec), _History(history)], until=until)
    except BudgetSpent:
        return  # cut by the budget before its schedule ended: counted as cut, no result
    ran = config.replace(train=dataclasses.replace(config.train, epochs=result.epochs_run))
    rec.trial_done("complete", max(history[MONITOR]), lambda: ran)  # retrained as a plain schedule of the epochs it ran


def run_cnn_search_baseline(bench: Bench, rec: Recorder) -> None:
    """The prior sampler and default pruner without a budget, first trial ``RunConfig()``'s
    defaults where the space takes them (no recipe base): cnn-search before the recipe."""
    run_harness(bench, rec, DEFAULT_SAMPLER, DEFAULT_PRUNER, baseline=True)


class _History(keras.callbacks.Callback):
    """Keeps the epochs' logs in ``into`` even when the budget ends the run."""

    def __init__(self, into: dict[str, list[float]]) -> None:
        super().__init__()
        self.into = into

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.into.setdefault(key, []).append(float(value))


def run_tpe_median(bench: Bench, rec: Recorder) -> None:
    """cnn-search's defaults before the benchmark changed them: TPE, median pruner, no baseline trial."""
    run_harness(bench, rec, "tpe", "median")


def run_random(bench: Bench, rec: Recorder) -> None:
    run_harness(bench, rec, "random", "none")


def run_optuna_example(bench: Bench, rec: Recorder) -> None:
    from benchmarks import optuna_example

    try:
        optuna_example.search(
            bench.data,
            bench.space,
            bench.base,
            timeout=max(rec.remaining(), 1e-9),
            extra_callbacks=[BudgetClock(rec)],
            study_callbacks=[optuna_recorder_callback(bench, rec)],
        )
    except BudgetSpent:
        pass


def _keras_tuner(kind: str) -> Callable[[Bench, Recorder], None]:
    def run(bench: Bench, rec: Recorder) -> None:
        from benchmarks import keras_tuner_tools

        keras_tuner_tools.search(kind, bench, rec)

    return run


TOOLS: dict[str, Callable[[Bench, Recorder], None]] = {
    "cnn-search": run_cnn_search,
    "recipe": run_recipe,
    "recipe-paced": run_recipe_paced,
    "kt-hyperband": _keras_tuner("hyperband"),
    "kt-bayesian": _keras_tuner("bayesian"),
    "optuna-example": run_optuna_example,
    "random": run_random,
    "tpe-median": run_tpe_median,
    "cnn-search-tpe": run_cnn_search_tpe,
    "cnn-search-baseline": run_cnn_search_baseline,
}
KERAS_TUNER_TOOLS = ("kt-hyperband", "kt-bayesian")


def get_tool(name: str) -> Callable[[Bench, Recorder], None]:
    if name not in TOOLS:
        raise ValueError(f"tool: expected one of {', '.join(TOOLS)}, received {name!r}")
    return TOOLS[name]


def warm_up(data: Dataset) -> None:
    """One epoch of a tiny model through both input paths (tf.data and numpy arrays),
    untimed: TensorFlow's one-time start-up costs must not land on the first tool."""
    import keras

    from search.core.config import CNNConfig, TrainConfig

    config = RunConfig(
        model=CNNConfig(blocks=1, convs_per_block=1, base_filters=4, dense_units=0), train=TrainConfig(epochs=1)
    )
    with keras_session():
        model = fit(config, data).model
        model.fit(data.x_train, keras.utils.to_categorical(data.y_train, data.num_classes), epochs=1, verbose=0)


def retrain_and_test(config: RunConfig, data: Dataset) -> tuple[float, float, float]:
    """Train ``config`` the same way for every tool (our ``fit``, all its epochs, the
    training split, validated every epoch as ``train --keep-val`` does) and return (test
    accuracy, seconds, best validation accuracy: the trial's value, if it repeats)."""
    start = time.perf_counter()
    with keras_session():
        result = fit(config, data)
        x, y = TensorCache.get(data, data.x_test, data.y_test)
        test_ds = make_pipeline(x, y, data.num_classes, 512, shuffle=False, seed=0)
        _, accuracy = result.model.evaluate(test_ds, verbose=0)
    if not math.isfinite(accuracy):
        raise TrialError(f"test accuracy is {accuracy}")
    return float(accuracy), time.perf_counter() - start, max(result.history["val_accuracy"])
