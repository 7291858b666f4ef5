from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli

from search.core.config import CNNConfig, RunConfig, TrainConfig
from search.errors import UsageError

SMALL = RunConfig(
    model=CNNConfig(blocks=2, convs_per_block=1, base_filters=8, dense_units=0),
    train=TrainConfig(batch_size=64, epochs=1),
)


def test_export_then_train_reproduces_the_trial(tiny_study, tmp_path):
    """The round trip a user makes: export the best trial, retrain it with its validation
    split kept; same seed, same epochs, so the same validation accuracy (within 1 point)."""
    export_path = tmp_path / "best.json"
    assert run_cli("export", *tiny_study.where, "--out", str(export_path), cwd=tiny_study.cwd).returncode == 0
    out = tmp_path / "model"
    result = run_cli("train", "--config", str(export_path), "--out", str(out), "--keep-val", cwd=tiny_study.cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    from search.final.train import FILES

    assert {p.name for p in out.iterdir()} == set(FILES)

    best = tiny_study.load().best_trial
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trained_on"] == "train" and metrics["epochs_run"] == 2
    assert best.value > 0.3  # the trial learned something, so matching it means something
    assert metrics["validation"]["best_accuracy"] == pytest.approx(best.value, abs=0.01)
    history = json.loads((out / "history.json").read_text())["history"]
    assert history["val_accuracy"] == pytest.approx(best.user_attrs["history"]["val_accuracy"], abs=0.01)

    test = metrics["test"]
    assert (
        test["class_names"] == [str(i) for i in range(10)] and list(test["per_class_accuracy"]) == test["class_names"]
    )
    confusion = np.array(test["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == test["images"] == 359
    assert test["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum(), abs=1e-6)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert RunConfig.load(out / "config.json") == RunConfig.load(export_path)
    assert f"(trial {best.number}: {best.value:.4f})" in result.stdout

    # The saved model loads in Keras' safe mode and scores what metrics.json says.
    import keras

    import search
    import search.core.models  # noqa: F401 - registers the custom layer and schedules for plain Keras
    import search.core.schedules  # noqa: F401
    from search.core.data import load_dataset

    data = load_dataset(RunConfig.load(export_path).data)
    for model in (search.load_model(out / "model.keras"), keras.saving.load_model(out / "model.keras", safe_mode=True)):
        predicted = np.argmax(model.predict(data.x_test.astype("float32"), verbose=0), axis=1)
        assert np.mean(predicted == data.y_test) == pytest.approx(test["accuracy"], abs=1e-6)


def test_train_final_defaults_to_train_plus_validation(digits, tmp_path):
    from search.final.train import train_final

    result = train_final(SMALL.replace(train=TrainConfig(batch_size=16, epochs=3)), tmp_path / "m", data=digits)
    assert result.metrics["trained_on"] == "train+validation"
    assert result.metrics["train_images"] == len(digits.x_train) + len(digits.x_val)
    assert "validation" not in result.metrics and not any(k.startswith("val_") for k in result.history)
    assert result.metrics["test"]["accuracy"] > 0.3  # three short epochs on digits (0.62 here): well above chance, 0.1
    assert (tmp_path / "m" / "model.keras").is_file()


def test_train_final_early_stopping_keeps_the_best_weights(digits, tmp_path):
    from search.core.pipeline import TensorCache, make_pipeline
    from search.final.train import train_final

    config = SMALL.replace(train=TrainConfig(batch_size=64, epochs=4))
    result = train_final(config, tmp_path / "m", data=digits, keep_val=True, early_stopping=1)
    validation = result.metrics["validation"]
    assert validation["best_accuracy"] == max(result.history["val_accuracy"])
    xv, yv = TensorCache.get(digits, digits.x_val, digits.y_val)
    _, accuracy = result.model.evaluate(make_pipeline(xv, yv, 10, 256, shuffle=False, seed=0), verbose=0)
    assert accuracy == pytest.approx(validation["best_accuracy"], abs=1e-6)


def test_early_stopping_stops_a_run_that_stopped_improving(digits, tmp_path):
    """At a rate too small to move any prediction, validation accuracy never improves on
    its first epoch (no batch norm, whose statistics would move): with patience 1 the run
    stops after epoch 2 of 20."""
    from search.core.config import OptimizerConfig
    from search.final.train import train_final

    stuck = SMALL.replace(
        model=CNNConfig(blocks=2, convs_per_block=1, base_filters=8, dense_units=0, batch_norm=False),
        optimizer=OptimizerConfig("sgd", learning_rate=1e-9),
        train=TrainConfig(batch_size=64, epochs=20),
    )
    result = train_final(stuck, tmp_path / "m", data=digits, keep_val=True, early_stopping=1)
    assert result.metrics["epochs_run"] == 2 and len(result.history["val_accuracy"]) == 2


def test_early_stopping_needs_the_validation_split(tmp_path):
    from search.final.train import train_final

    with pytest.raises(UsageError, match="--keep-val"):
        train_final(SMALL, tmp_path, early_stopping=2)
    config = tmp_path / "c.json"
    config.write_text(SMALL.to_json())
    result = run_cli("train", "--config", str(config), "--early-stopping", "2", cwd=tmp_path)
    assert result.returncode == 2 and "add --keep-val" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_train_rejects_a_broken_config_in_one_line(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"config": {"train": {"epochs": 0}}}))
    result = run_cli("train", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2 and "train.epochs" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_run_that_fails_is_one_line_and_status_1(tmp_path, monkeypatch, capsys):
    import search.final.train
    from search.cli import main
    from search.errors import DivergedError

    def diverge(*args, **kwargs):
        raise DivergedError("diverged: training loss became nan at epoch 1, batch 2")

    monkeypatch.setattr(search.final.train, "train_final", diverge)
    config = tmp_path / "c.json"
    config.write_text(SMALL.to_json())
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert (
        err.strip() == "error: training failed, nothing saved: diverged: training loss became nan at epoch 1, batch 2"
    )


def test_train_options_set_epochs_images_split_and_data_folder(tiny_study, tmp_path):
    """``train --epochs 1 --full-train --split-seed 3 --data-dir D`` on an export of a
    search that used 300 training images: each option lands in what was trained."""
    export_path = tmp_path / "best.json"
    assert run_cli("export", *tiny_study.where, "--out", str(export_path), cwd=tiny_study.cwd).returncode == 0
    out = tmp_path / "m"
    result = run_cli(
        "train",
        "--config",
        str(export_path),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--full-train",
        "--split-seed",
        "3",
        "--data-dir",
        str(tmp_path),
        cwd=tiny_study.cwd,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and metrics["split_seed"] == 3
    assert metrics["train_images"] == 1797 - 359  # every digit outside the test split, not 300 + validation
    trained = RunConfig.load(out / "config.json")
    assert (trained.train.epochs, trained.data.limit_train, trained.data.split_seed) == (1, None, 3)
    assert trained.data.data_dir == str(tmp_path.resolve())
