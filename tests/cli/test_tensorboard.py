"""``search --tensorboard DIR``: a real search writes one TensorBoard run a trial, read
back here with TensorBoard's own event reader: the epoch scalars of both splits, the
learning rate, and the trial's hyperparameters for the HParams dashboard."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from conftest import run_cli

pytest.importorskip("tensorboard", reason="--tensorboard needs the tensorboard package (the test extra has it)")


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return {
        tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]
        for tag in events.Tags()["tensors"]
    }


def _hparams(folder: Path) -> dict[str, object]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(folder))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    out = {}
    for name, value in info.hparams.items():
        kind = value.WhichOneof("kind")
        out[name] = getattr(value, kind)
    return out


def test_each_trial_is_a_tensorboard_run_with_its_scalars_and_hyperparameters(tmp_path: Path):
    result = run_cli(
        "--study", "tb", "--trials", "2", "--epochs", "2", "--limit-train", "300", "--tensorboard", "tb",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="tb", storage=f"sqlite:///{tmp_path / 'studies' / 'tb.db'}")
    for trial in study.trials:
        run = tmp_path / "tb" / f"trial-{trial.number:04d}"
        train, validation = _scalars(run / "train"), _scalars(run / "validation")
        assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= set(train)
        assert {"epoch_loss", "epoch_accuracy"} <= set(validation)
        epochs = len(trial.intermediate_values) or 2
        assert [step for step, _ in validation["epoch_accuracy"]] == list(range(epochs))
        stored = [trial.intermediate_values[e] for e in sorted(trial.intermediate_values)]
        if stored:  # what Optuna stored each epoch is what TensorBoard shows
            assert [round(v, 5) for _, v in validation["epoch_accuracy"]] == [round(v, 5) for v in stored]
        assert all(rate > 0 for _, rate in train["epoch_learning_rate"])
        hparams = _hparams(run)
        assert hparams["trial"] == trial.number
        for name, value in trial.params.items():
            assert hparams[name] == pytest.approx(value) if isinstance(value, float) else hparams[name] == value


def test_tensorboard_without_its_package_is_refused_before_anything_is_written(tmp_path: Path, monkeypatch):
    import importlib.util

    from search.errors import UsageError
    from search.study.setup import SearchRequest, check_request

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(UsageError, match=r"pip install -e '\.\[tensorboard\]'"):
        check_request(SearchRequest(tensorboard=str(tmp_path / "tb")))
    assert not (tmp_path / "tb").exists()
