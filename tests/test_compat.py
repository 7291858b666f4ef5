"""Files written by cnn-search before the one-config layout (commit e29264b), kept in
tests/data: a study database (digits, the tiny space, seed 3, 300 training images, 3
trials) and an export of its best trial.  Both must keep working."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
from conftest import run_cli

from search.core.config import RunConfig

DATA = Path(__file__).parent / "data"


def test_a_study_made_before_resumes_with_its_recorded_split(tmp_path: Path):
    studies = tmp_path / "studies"
    studies.mkdir()
    shutil.copy(DATA / "study-before-layout.db", studies / "old.db")
    result = run_cli("--study", "old", "--trials", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming study 'old'" in result.stdout
    study = optuna.load_study(study_name="old", storage=f"sqlite:///{studies / 'old.db'}")
    assert len(study.trials) == 4 and study.trials[-1].state.name in ("COMPLETE", "PRUNED")
    new = RunConfig.from_dict(study.trials[-1].user_attrs["config"])
    assert (new.data.split_seed, new.data.limit_train, new.train.epochs, new.seed) == (3, 300, 1, 6)  # seed 3 + trial 3
    assert study.user_attrs["cnn_search"]["seed"] == 3  # the old record is read, not rewritten

    out = tmp_path / "t0.json"
    exported = run_cli("export", "--study", "old", "--trial", "0", "--out", str(out), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-2000:]
    config = RunConfig.load(out)  # a trial stored before the config held its split: the study's seed fills it in
    assert (config.data.split_seed, config.train.monitor) == (3, "val_accuracy")
    assert json.loads(out.read_text())["source"]["split_seed"] == 3


def test_an_export_made_before_trains_on_its_own_split(tmp_path: Path):
    result = run_cli(
        "train", "--config", str(DATA / "export-before-layout.json"), "--out", "m", "--keep-val", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["split_seed"] == 3 and metrics["epochs_run"] == 1 and metrics["trained_on"] == "train"
    source = json.loads((DATA / "export-before-layout.json").read_text())["source"]
    assert abs(metrics["validation"]["best_accuracy"] - source["value"]) <= 0.03  # the trial's own validation images
