"""The Optuna objective: sample a config, train it with the reporting callback, score it.

Every outcome of a trial is handled here, in one place: complete (the best monitored
value over its epochs), pruned (reason stored), failed by a ``TrialError`` (reason
stored; the study goes on), or stopped by a ``UsageError`` (the study stops).
With several objectives (``search.objectives``) a complete trial's values are, in
order, the best monitored value, the parameter count and the latency in ms per image
(``search.latency``, measured after training and stored as ``latency_ms``).
With an artifact folder, every trial that trained (complete, pruned or failed) also
gets its learning curves and model summary as Optuna artifacts for the dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import keras
import optuna

from search.artifacts import upload_trial_artifacts
from search.deadline import Deadline
from search.config import RunConfig
from search.data import Dataset
from search.diagnose import diagnose_history
from search.errors import TrialError
from search.memory import rss_mb
from search.objectives import DEFAULT_OBJECTIVES, objective_names
from search.pruning import TrialReporter
from search.spaces import Space
from search.training import fit, keras_session

__all__ = ["Objective", "best_of"]


def best_of(values: list[float | None], direction: str) -> float:
    finite = [v for v in values if v is not None]
    if not finite:
        raise TrialError("the monitored metric was never finite")
    return max(finite) if direction == "maximize" else min(finite)


class Objective:
    """``callbacks`` are extra Keras callbacks for every trial (a budget clock, TensorBoard).
    They run before the reporting callback, so they see the epoch a trial is pruned at,
    and must be reusable across trials."""

    def __init__(
        self,
        space: Space,
        data: Dataset,
        base: RunConfig,
        monitor: str,
        direction: str,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        artifact_dir: Path | None = None,
        objectives: str = DEFAULT_OBJECTIVES,
        deadline: float | None = None,
        epochs: tuple[int, int] | None = None,
    ) -> None:
        self.space = space
        self.data = data
        self.base = base
        self.monitor = monitor
        self.direction = direction
        self.artifact_dir = artifact_dir
        self.callbacks = tuple(callbacks)
        self.objectives = objective_names(objectives)
        self.deadline = deadline  # time.time() at which a budgeted search ends: the running trial stops there
        self.epochs = epochs  # (low, high): each trial's schedule length is its ``epochs`` param (budgeted search)

    def config_for(self, trial: optuna.trial.BaseTrial) -> RunConfig:
        """The run config of ``trial``: sampled from the space, seeded by trial number."""
        return self.space.sample(trial, self.base.replace(seed=self.base.seed + trial.number), epochs=self.epochs)

    def __call__(self, trial: optuna.trial.Trial) -> float | tuple[float, ...]:
        config = self.config_for(trial)
        trial.set_user_attr("config", config.to_dict())
        multi = len(self.objectives) > 1
        reporter = TrialReporter(trial, self.monitor, intermediate=not multi)  # Optuna prunes one objective only
        fail_reason = None
        measured: dict[str, float] = {}
        # A promotion or final run was sized to the time left from measured epochs: only the
        # deadline itself stops it, never a projection from one slower epoch; a final run's
        # schedule runs on the clock until ``pace_until`` (``search.deadline.Pace``).
        # (read from the storage: the sampler wrote the plan after this Trial cached its attributes)
        plan = trial.storage.get_trial_user_attrs(trial._trial_id)
        planned = plan.get("phase") in ("early", "promote", "final")
        until = plan.get("pace_until")
        deadline = [Deadline(self.deadline, project=not planned)] if self.deadline is not None else []
        try:
            with keras_session():
                try:
                    result = fit(config, self.data, callbacks=[*self.callbacks, *deadline, reporter], monitor=self.monitor,
                                 until=until)
                    if until is not None:  # what it trained: the schedule over the epochs it ran
                        config = config.replace(train=replace(config.train, epochs=result.epochs_run))
                        trial.set_user_attr("config", config.to_dict())
                        trial.set_user_attr("paced", f"schedule paced by the clock: {result.epochs_run} epochs "
                                                     f"in {sum(result.epoch_seconds):.0f}s")
                    measured["params"] = float(result.params)
                    if "latency" in self.objectives:
                        from search.latency import measure_latency

                        measured["latency"], how = measure_latency(result.model, self.data.x_val)
                        trial.set_user_attr("latency_ms", measured["latency"])
                        trial.set_user_attr("latency_measured", how)
                except TrialError as e:
                    fail_reason = str(e)
                    trial.set_user_attr("fail_reason", fail_reason)
                    raise
                finally:  # complete, pruned or failed: the dashboard shows what it trained
                    self.save_artifacts(trial, reporter)
        finally:
            trial.set_user_attr("rss_mb", rss_mb())  # after clean-up: shows whether memory stays flat
            trial.set_user_attr("diagnosis", diagnose_history(reporter.history, self.data.num_classes, fail_reason))
        stopped = deadline[0].reason if deadline else None
        if stopped:
            trial.set_user_attr("stopped", stopped)
            if not stopped.startswith("stopped at"):  # it would not have finished: no result to rank
                trial.set_user_attr("prune_reason", stopped)
                raise optuna.TrialPruned(stopped)
        measured["accuracy"] = best_of(reporter.history.get(self.monitor, []), self.direction)
        return tuple(measured[n] for n in self.objectives) if multi else measured["accuracy"]

    def save_artifacts(self, trial: optuna.trial.Trial, reporter: TrialReporter) -> None:
        """Curves and model summary for the dashboard; a failure here only warns."""
        if self.artifact_dir is not None:
            upload_trial_artifacts(trial, self.artifact_dir, reporter.history, reporter.model)
