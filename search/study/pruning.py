"""The Keras callback that reports to an Optuna trial, and prunes it.

At every epoch end it records the epoch's metrics and time on the trial (so a live
dashboard shows them), reports the monitored metric as an intermediate value, and raises
``optuna.TrialPruned`` with the reason when the pruner says so (the trial's runner,
``search.study.trial.TrialRunner``, stores the outcome).  It is ``fit``'s epoch timer
too: epoch times are measured once.  Unlike the optuna-integration
callbacks, a monitored metric missing from the logs is an error, not a warning that
leaves pruning silently off.

In a multi-objective study (``intermediate=False``) it reports nothing: Optuna refuses
intermediate values and pruning with several objectives.  It still records the history.
"""

from __future__ import annotations

import math

import optuna

from search.core.training import EpochTimer
from search.errors import MetricNotFoundError
from search.study.record import write

__all__ = ["TrialReporter"]


class TrialReporter(EpochTimer):
    def __init__(
        self, trial: optuna.trial.BaseTrial, monitor: str, prune: bool = True, intermediate: bool = True
    ) -> None:
        super().__init__()
        self.trial = trial
        self.monitor = monitor
        self.prune = prune
        self.intermediate = intermediate  # False: no trial.report (multi-objective studies), hence no pruning
        self.history: dict[str, list[float]] = {}

    @property
    def epoch_seconds(self) -> list[float]:
        return self.seconds

    def on_train_begin(self, logs=None):
        write(self.trial, params_count=int(self.model.count_params()))

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.monitor not in logs:
            raise MetricNotFoundError(
                f"monitored metric '{self.monitor}' is not logged by Keras; "
                f"available: {', '.join(sorted(logs))}; pass one of them to --monitor"
            )
        super().on_epoch_end(epoch, logs)  # the epoch's time
        for key, value in logs.items():  # NaN is not JSON: store it as null
            value = float(value)
            self.history.setdefault(key, []).append(value if math.isfinite(value) else None)
        write(self.trial, history=self.history)
        write(self.trial, epoch_seconds=[round(s, 3) for s in self.epoch_seconds])
        value = float(logs[self.monitor])
        if not math.isfinite(value) or not self.intermediate:
            return  # the NaN guard fails the trial (a NaN must not reach the pruner); nothing to report
        step = epoch + 1  # epochs completed: the resource Hyperband and SHA count
        self.trial.report(value, step)
        last_epoch = step >= (self.params or {}).get("epochs", math.inf)
        # Pruning after the last epoch saves nothing and would discard a finished result.
        if self.prune and not last_epoch and self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after epoch {step}: {self.monitor}={value:.4f} ranked below other trials at this epoch"
            )
