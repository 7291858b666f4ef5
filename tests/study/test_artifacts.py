from __future__ import annotations

import optuna
import pytest

from search.core.plots import save_curves
from search.study.artifacts import ArtifactWarning, upload_trial_artifacts, write_trial_files


def test_every_trial_of_a_search_has_its_curves_and_model_summary(tiny_study):
    study = tiny_study.load()
    folder = tiny_study.studies_dir / "tiny-digits-artifacts"  # next to the database
    states = set()
    for trial in study.trials:
        metas = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
        assert sorted(m.filename for m in metas) == [
            f"trial-{trial.number}-curves.png",
            f"trial-{trial.number}-model.txt",
        ]
        assert {m.mimetype for m in metas} == {"image/png", "text/plain"}
        assert all((folder / m.artifact_id).is_file() for m in metas)
        states.add(trial.state.name)
    assert states == {"COMPLETE", "PRUNED"}  # pruned trials get them too


def test_a_failing_upload_warns_and_never_raises(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    study = optuna.create_study()
    trial = study.ask()
    with pytest.warns(ArtifactWarning, match="could not save its artifacts"):
        upload_trial_artifacts(trial, blocker / "artifacts", {"loss": [1.0, 0.5]}, None)
    study.tell(trial, 1.0)  # the trial is unaffected
    assert study.trials[0].state.name == "COMPLETE"


def test_files_exist_only_for_what_there_is(tmp_path):
    assert write_trial_files(3, {}, None, tmp_path) == []
    (png,) = write_trial_files(3, {"loss": [2.0, 1.0], "accuracy": [0.1, 0.4]}, None, tmp_path)
    assert png.name == "trial-3-curves.png" and png.read_bytes()[:4] == b"\x89PNG"


def test_curves_without_validation_or_accuracy(tmp_path):
    path = save_curves({"loss": [3.0, 2.0, 1.5]}, tmp_path / "sub" / "c.png", title="t")
    assert path.read_bytes()[:4] == b"\x89PNG"
