"""Each trial as an MLflow run (``search --mlflow URI``): the study is the experiment,
each trial a run named ``trial N`` with its params, every epoch's metrics (loss,
accuracy, their ``val_`` twins and the learning rate; step = epoch, from 1 as Optuna counts), its status (FINISHED for
a complete trial, KILLED for a pruned one, FAILED for a failed one, with the reason as a
tag) and its Optuna state and number as tags.

Optuna's ``optuna_integration.MLflowCallback`` is the reference, and not used: it logs
a trial once it has finished (params and the final value), so a running search shows
nothing per epoch, and it knows nothing of pruned trials' curves.  This logs as the trial
trains, through MLflow's client (no global active run, so worker processes and a caller's
own MLflow runs do not interfere).

``URI`` is any MLflow tracking URI: a server (``http://host:5000``), a database
(``sqlite:///mlflow.db``, with MLflow's database extras), or a folder (``mlruns`` or
``file:///path``): MLflow 3 keeps that file store in maintenance mode behind
``MLFLOW_ALLOW_FILE_STORE``, which is set here for folder URIs only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import keras
import optuna

from search.core.tensorboard import with_learning_rate

__all__ = ["mlflow_run"]


class _EpochMetrics(keras.callbacks.Callback):
    def __init__(self, client: Any, run_id: str, trial: optuna.trial.Trial) -> None:
        super().__init__()
        self.client, self.run_id, self.trial = client, run_id, trial

    def on_train_begin(self, logs=None):
        from mlflow.entities import Param

        params = [Param(k, str(v)) for k, v in self.trial.params.items()]
        if params:
            self.client.log_batch(self.run_id, params=params)

    def on_epoch_end(self, epoch, logs=None):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        logs = with_learning_rate(self.model, logs)
        # step: the epoch counted from 1, as Optuna stores intermediate values (the dashboard shows)
        metrics = [Metric(k, float(v), now, epoch + 1) for k, v in logs.items() if isinstance(v, (int, float))]
        self.client.log_batch(self.run_id, metrics=metrics)


@contextmanager
def mlflow_run(uri: str, trial: optuna.trial.Trial) -> Iterator[list[keras.callbacks.Callback]]:
    """An MLflow run for ``trial`` while the block runs; yields the Keras callbacks that log
    its epochs.  The run ends FINISHED, KILLED (pruned) or FAILED as the block does."""
    from mlflow.tracking import MlflowClient

    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=uri)
    name = trial.study.study_name
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            experiment_id = client.create_experiment(name)
        except Exception:  # another worker created it meanwhile
            experiment_id = client.get_experiment_by_name(name).experiment_id
    else:
        experiment_id = experiment.experiment_id
    run = client.create_run(
        experiment_id, run_name=f"trial {trial.number}", tags={"optuna.trial": str(trial.number), "optuna.study": name}
    )
    run_id = run.info.run_id
    try:
        yield [_EpochMetrics(client, run_id, trial)]
    except optuna.TrialPruned as e:
        client.set_tag(run_id, "optuna.state", "PRUNED")
        client.set_tag(run_id, "reason", str(e)[:5000])
        client.set_terminated(run_id, "KILLED")
        raise
    except BaseException as e:
        client.set_tag(run_id, "optuna.state", "FAIL")
        client.set_tag(run_id, "reason", f"{type(e).__name__}: {e}"[:5000])
        client.set_terminated(run_id, "FAILED")
        raise
    else:
        client.set_tag(run_id, "optuna.state", "COMPLETE")
        client.set_terminated(run_id, "FINISHED")
