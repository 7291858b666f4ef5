"""``search --mlflow URI``: a real search logs each trial as a run of a real local MLflow
file store, read back with MLflow's own client: the study as the experiment, each trial's
params, its per-epoch metrics (the same values Optuna stored), and its status."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
from conftest import run_cli

pytest.importorskip("mlflow", reason="--mlflow needs the mlflow-skinny package (the test extra has it)")

STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def _runs(store: Path, experiment: str):
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    return client, {r.data.tags["optuna.trial"]: r for r in client.search_runs([found.experiment_id])}


def test_each_trial_is_an_mlflow_run_with_params_metrics_and_status(tmp_path: Path):
    result = run_cli(
        "--study", "ml", "--trials", "3", "--epochs", "2", "--limit-train", "300", "--mlflow", "mlruns",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    failing = run_cli(
        "--study", "ml-small", "--trials", "1", "--epochs", "1", "--limit-train", "300", "--max-params", "10",
        "--mlflow", "mlruns", cwd=tmp_path,
    )  # fmt: skip
    assert failing.returncode == 0, failing.stderr[-3000:]

    study = optuna.load_study(study_name="ml", storage=f"sqlite:///{tmp_path / 'studies' / 'ml.db'}")
    client, runs = _runs(tmp_path / "mlruns", "ml")
    assert sorted(runs) == [str(t.number) for t in study.trials]
    for trial in study.trials:
        run = runs[str(trial.number)]
        assert run.info.run_name == f"trial {trial.number}"
        assert run.info.status == STATUS[trial.state.name] and run.data.tags["optuna.state"] == trial.state.name
        assert run.data.params == {k: str(v) for k, v in trial.params.items()}
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == sorted(trial.intermediate_values)
        assert [round(m.value, 5) for m in history] == [
            round(v, 5) for _, v in sorted(trial.intermediate_values.items())
        ]
        assert {"loss", "accuracy", "val_loss", "learning_rate"} <= set(run.data.metrics)

    _, small = _runs(tmp_path / "mlruns", "ml-small")
    (run,) = small.values()
    assert run.info.status == "FAILED" and "over --max-params 10" in run.data.tags["reason"]
