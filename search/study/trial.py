"""A trial from sampling to its stored outcome.

``Objective`` samples a config, trains it with the reporting callback and scores it;
``TrialRunner`` asks the study for a trial, keeps its heartbeat while it trains, and
stores what became of it, in one place:

- complete: the best monitored value over its epochs;
- pruned: by the pruner at an epoch end, or cut by a budget's deadline (``prune_reason``);
- failed by a ``TrialError`` (diverged, out of memory, ...; ``fail_reason``): the study
  goes on, and no traceback is printed for a failure that is explained;
- interrupted (Ctrl-C, SIGTERM; ``fail_reason``): failed and queued to run again, then the
  search stops;
- failed by anything else (a bug, a full disk): stored as failed, then raised.

A trial whose worker was killed is found by the heartbeat (``search.study.recovery``).
With several objectives (``search.study.objectives``) a complete trial's values are, in
order, the best monitored value, the parameter count and the latency in ms per image
(``search.core.latency``, measured after training and stored as ``latency_ms``).
With an artifact folder, every trial that trained (complete, pruned or failed) also
gets its learning curves and model summary as Optuna artifacts for the dashboard.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import keras
import optuna
from optuna.trial import FrozenTrial, TrialState

from search.core.config import RunConfig, is_loss
from search.core.data import Dataset
from search.core.deadline import Deadline
from search.core.diagnose import diagnose_history
from search.core.memory import rss_mb
from search.core.spaces import Space
from search.core.training import fit, keras_session
from search.errors import TrialError, disk_full
from search.study.artifacts import upload_trial_artifacts
from search.study.objectives import DEFAULT_OBJECTIVES, objective_names
from search.study.optuna_access import get_trial, trial_id
from search.study.pruning import TrialReporter
from search.study.record import TrialRecord, write
from search.study.recovery import Heartbeat, StopRequest, fail_unstarted, requeue, worker_name

__all__ = ["Objective", "TrialRunner", "Heartbeat", "trial_config", "best_of", "INTERRUPTED"]

INTERRUPTED = "interrupted (Ctrl-C or SIGTERM); queued to run again"


def trial_config(
    space: Space, base: RunConfig, trial: optuna.trial.BaseTrial, epochs: tuple[int, int] | None = None
) -> RunConfig:
    """The run config of ``trial``: sampled from ``space`` around ``base``, seeded by the
    trial's number.  Given ``FixedTrial(params, number)`` of a stored trial, it rebuilds
    the config that trial trained (a budgeted trial's stored config also says how many
    epochs its clock-paced schedule ran)."""
    return space.sample(trial, base.replace(seed=base.seed + trial.number), epochs=epochs)


def best_of(values: list[float | None], direction: str) -> float:
    finite = [v for v in values if v is not None]
    if not finite:
        raise TrialError("the monitored metric was never finite")
    return max(finite) if direction == "maximize" else min(finite)


class Objective:
    """Trains the trials of a study: each samples its config from ``space`` around
    ``base`` (whose ``train.monitor`` is the trial's value).  ``callbacks`` are extra
    Keras callbacks for every trial (a budget clock, TensorBoard).  They run before the
    reporting callback, so they see the epoch a trial is pruned at, and must be reusable
    across trials.  Run by ``TrialRunner``, which stores each outcome with its reason;
    under a plain ``study.optimize`` the reason of a failed or pruned trial is only in the
    exception."""

    def __init__(
        self,
        space: Space,
        data: Dataset,
        base: RunConfig,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        artifact_dir: Path | None = None,
        objectives: str = DEFAULT_OBJECTIVES,
        deadline: float | None = None,
        epochs: tuple[int, int] | None = None,
        direction: str | None = None,
        checkpoint_dir: Path | None = None,
        max_params: int | None = None,
        tensorboard: str | None = None,
        mlflow: str | None = None,
    ) -> None:
        self.space = space
        self.data = data
        self.base = base
        self.monitor = base.train.monitor  # the trial's value; a loss is minimized unless ``direction`` says
        self.direction = direction or ("minimize" if is_loss(self.monitor) else "maximize")
        self.artifact_dir = artifact_dir
        self.callbacks = tuple(callbacks)
        self.objectives = objective_names(objectives)
        self.deadline = deadline  # time.time() at which a budgeted search ends: the running trial stops there
        self.epochs = epochs  # (low, high): each trial's schedule length is its ``epochs`` param (budgeted search)
        # A rich budget's explore trials leave their weights here; its final run continues from the winner's.
        self.checkpoint_dir = checkpoint_dir
        self.max_params = max_params  # a trial whose model has more parameters fails before it trains
        self.tensorboard = tensorboard  # a folder: each trial's run for TensorBoard
        self.mlflow = mlflow  # a tracking URI: each trial an MLflow run (search.study.tracking)

    def config_for(self, trial: optuna.trial.BaseTrial) -> RunConfig:
        """The run config of ``trial``: sampled from the space, seeded by trial number."""
        return trial_config(self.space, self.base, trial, self.epochs)

    def __call__(self, trial: optuna.trial.Trial) -> float | tuple[float, ...]:
        board = []
        if self.tensorboard is not None:
            from search.core.tensorboard import TensorBoardLog, run_folder

            hparams = lambda: {**trial.params, "trial": trial.number}  # noqa: E731 (drawn once the config is)
            board = [TensorBoardLog(run_folder(self.tensorboard, trial.number), hparams, str(trial.number))]
        if self.mlflow is None:
            return self._run(trial, board)
        from search.study.tracking import mlflow_run

        with mlflow_run(self.mlflow, trial) as logging:
            return self._run(trial, [*board, *logging])

    def _run(self, trial: optuna.trial.Trial, watch: list[keras.callbacks.Callback]) -> float | tuple[float, ...]:
        config = self.config_for(trial)
        write(trial, config=config.to_dict())
        multi = len(self.objectives) > 1
        reporter = TrialReporter(trial, self.monitor, intermediate=not multi)  # Optuna prunes one objective only
        fail_reason = None
        measured: dict[str, float] = {}
        # A promotion or final run was sized to the time left from measured epochs: only the
        # deadline itself stops it, never a projection from one slower epoch; a final run's
        # schedule runs on the clock until ``pace_until`` (``search.core.deadline.Pace``).
        # (read from the storage: the sampler wrote the plan after this Trial cached its attributes)
        plan = TrialRecord.of(trial.storage.get_trial_user_attrs(trial_id(trial)))
        planned = plan.phase in ("early", "branch", "promote", "final")
        until = plan.pace_until
        deadline = [Deadline(self.deadline, project=not planned)] if self.deadline is not None else []
        source = self._continued_from(trial, plan)
        try:
            with keras_session():
                try:
                    result = fit(
                        config,
                        self.data,
                        callbacks=[*self.callbacks, *watch, *deadline, reporter],
                        until=until,
                        initial_weights=source[1] if source else None,
                        max_params=self.max_params,
                    )
                    before = 0
                    if source and result.continued:  # the winner's explore epochs count toward what it trained
                        before = source[2]
                        write(trial, continued_from=source[0])
                        write(trial, continued_epochs=before)
                    if until is not None or before:  # what it trained: its source's epochs and the ones it ran
                        config = config.replace(train=replace(config.train, epochs=before + result.epochs_run))
                        write(trial, config=config.to_dict())
                    if until is not None:
                        write(
                            trial,
                            paced=f"schedule paced by the clock: {result.epochs_run} epochs "
                            f"in {sum(result.epoch_seconds):.0f}s"
                            + (f", continued from trial {source[0]}'s {before}" if before else ""),
                        )
                    self._keep_or_clear_weights(trial, plan, result.model)
                    measured["params"] = float(result.params)
                    if "latency" in self.objectives:
                        from search.core.latency import measure_latency

                        measured["latency"], how = measure_latency(result.model, self.data.x_val)
                        write(trial, latency_ms=measured["latency"])
                        write(trial, latency_measured=how)
                except TrialError as e:
                    fail_reason = str(e)  # stored with the outcome by TrialRunner
                    raise
                finally:  # complete, pruned or failed: the dashboard shows what it trained
                    self.save_artifacts(trial, reporter)
        finally:
            write(trial, rss_mb=rss_mb())  # after clean-up: shows whether memory stays flat
            write(trial, diagnosis=diagnose_history(reporter.history, self.data.num_classes, fail_reason))
        stopped = deadline[0].reason if deadline else None
        if stopped:
            write(trial, stopped=stopped)
            if not stopped.startswith("stopped at"):  # it would not have finished: no result to rank
                raise optuna.TrialPruned(stopped)
        measured["accuracy"] = best_of(reporter.history.get(self.monitor, []), self.direction)
        return tuple(measured[n] for n in self.objectives) if multi else measured["accuracy"]

    def _continued_from(self, trial: optuna.trial.Trial, plan: TrialRecord) -> tuple[int, str, int] | None:
        """For a branch or a final run: (trial number, weights file, epochs) of the explore
        trial or branch it continues, when that trial left its weights here (another
        machine's are not here)."""
        number = plan.source
        if self.checkpoint_dir is None or plan.phase not in ("branch", "final") or number is None:
            return None
        from search.study.budget import trial_epochs

        source = next((t for t in trial.study.get_trials(deepcopy=False) if t.number == number), None)
        path = TrialRecord.of(source).checkpoint if source is not None else None
        if not path or not Path(path).is_file() or TrialRecord.of(source).phase not in ("explore", "branch"):
            return None
        return number, str(path), int(trial_epochs(source) or 0)

    def _keep_or_clear_weights(self, trial: optuna.trial.Trial, plan: TrialRecord, model: keras.Model) -> None:
        """An explore trial of a rich budget keeps its weights for the final run; the final
        run, once done, removes its budget's kept weights."""
        if self.checkpoint_dir is None:
            return
        if plan.keep_weights:
            try:
                self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
                path = self.checkpoint_dir / f"trial-{trial.number}.weights.h5"
                model.save_weights(path)
                write(trial, checkpoint=str(path.resolve()))
            except OSError as e:  # a courtesy, as the artifacts: the final run then starts from scratch
                warnings.warn(
                    f"trial {trial.number}: could not keep its weights ({e}); a final run of it starts anew",
                    stacklevel=2,
                )
        elif plan.phase == "final":
            for t in trial.study.get_trials(deepcopy=False):
                kept = TrialRecord.of(t).checkpoint
                if kept and TrialRecord.of(t).budget_start == plan.budget_start:
                    Path(kept).unlink(missing_ok=True)

    def save_artifacts(self, trial: optuna.trial.Trial, reporter: TrialReporter) -> None:
        """Curves and model summary for the dashboard; a failure here only warns."""
        if self.artifact_dir is not None:
            upload_trial_artifacts(trial, self.artifact_dir, reporter.history, reporter.model)


class TrialRunner:
    """Runs trials of ``objective`` one at a time and stores each one's outcome (see the
    module's docstring).  ``stop`` is the process's Ctrl-C/SIGTERM handler: a stop
    requested during a trial ends it as interrupted, within a batch when ``objective``
    is an ``Objective``.  ``on_done(study, trial)`` runs after each stored outcome (the
    progress line).  ``grace``: seconds of silence after which other workers fail a trial."""

    def __init__(
        self,
        objective: Callable[[optuna.trial.Trial], float | tuple[float, ...]],
        stop: StopRequest,
        on_done: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
        grace: int | None = None,
    ) -> None:
        if isinstance(getattr(objective, "callbacks", None), tuple):  # an Objective: stop within a batch
            from search.core.deadline import StopCheck

            objective.callbacks = (*objective.callbacks, StopCheck(lambda: stop.requested))
        self.objective = objective
        self.stop = stop
        self.on_done = tuple(on_done)
        self.grace = grace
        self.worker = worker_name()
        self.interrupted: list[int] = []

    def run_one(self, study: optuna.Study) -> FrozenTrial | None:
        """Ask for a trial, run it, store its outcome; the stored trial, or None when
        another worker failed it meanwhile (this one's heartbeat was starved: it goes on)."""
        with warnings.catch_warnings():  # fail_stale_trials is experimental; study.optimize calls it the same way
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # ask() warns that a heartbeat storage belongs to study.optimize: this loop keeps the heartbeat itself
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
            optuna.storages.fail_stale_trials(study)
            fail_unstarted(study, self.grace)  # and those killed before their first heartbeat
            trial = study.ask()
        state, values, reason, error = TrialState.FAIL, None, None, None
        try:
            # The first heartbeat before anything else: Optuna never finds a RUNNING trial stale
            # that has no heartbeat, so a worker killed between ask and its first beat would
            # leave the trial running forever (the kill must land in those few milliseconds).
            with Heartbeat(study, trial_id(trial)):
                write(trial, worker=self.worker)
                state, values, reason, error = self._train(trial)
            if reason is not None and state == TrialState.PRUNED:
                write(trial, prune_reason=reason)
            elif reason is not None:
                write(trial, fail_reason=reason)
            if reason == INTERRUPTED:
                self.interrupted.append(trial.number)
                requeue(study, get_trial(study, trial), max_retry=None)
            frozen = study.tell(trial, values, state=state)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as e:
            if not isinstance(e, optuna.exceptions.UpdateFinishedTrialError) and not str(e).startswith("Cannot tell a"):
                raise
            # its trial was failed elsewhere as silent (no heartbeat within the grace) and
            # queued again: this worker is alive, so it goes on with the next trial
            print(
                f"worker {self.worker}: trial {trial.number} was marked failed by another worker (no heartbeat within "
                f"{self.grace or '?'}s: a busy machine?) and queued again; going on",
                file=sys.stderr,
                flush=True,
            )
            return None
        except Exception:
            if error is not None:  # storing the outcome failed the way training did (a full disk): say that
                raise error from None
            raise
        for callback in self.on_done:
            callback(study, frozen)
        if error is not None:
            raise error
        return frozen

    def _train(self, trial: optuna.trial.Trial) -> tuple[TrialState, object, str | None, BaseException | None]:
        """Run the objective: (state, values, reason, error to raise once stored)."""
        try:
            self.stop.in_trial = True
            if self.stop.requested:  # the signal came while the trial was being created
                raise KeyboardInterrupt
            values = self.objective(trial)
            if self.stop.requested:  # the interrupt was swallowed where Python could not raise it
                raise KeyboardInterrupt
            return TrialState.COMPLETE, values, None, None
        except KeyboardInterrupt:
            return TrialState.FAIL, None, INTERRUPTED, None
        except optuna.TrialPruned as e:
            return TrialState.PRUNED, None, str(e) or None, None
        except TrialError as e:
            return TrialState.FAIL, None, str(e), None
        except optuna.exceptions.UpdateFinishedTrialError:
            raise  # failed elsewhere meanwhile: run_one says so
        except Exception as e:
            if self.stop.requested and not disk_full(e):  # the interrupt surfaced as another error: code that
                return TrialState.FAIL, None, INTERRUPTED, None  # TensorFlow runs may catch it and raise e.g. TypeError
            return TrialState.FAIL, None, f"{type(e).__name__}: {e}", e
        finally:
            self.stop.in_trial = False
