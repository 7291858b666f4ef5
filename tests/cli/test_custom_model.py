"""Your own Keras model, end to end: a KerasTuner-style ``build_model(hp)`` searched from
the command line with a budget, exported, trained, and served by ``predict``; the same
from Python with a function defined here; a function that fails to build for some
draws fails those trials and the search goes on; a study resumed with another function
is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
from conftest import ROOT, run_cli
from optuna.trial import TrialState

MODELS = ROOT / "tests" / "models" / "kt_resnet.py"


def test_a_keras_tuner_function_is_searched_with_a_budget_exported_trained_and_served(tmp_path: Path):
    search = run_cli(
        "--model", f"{MODELS}:build_model", "--budget", "40s", "--limit-train", "400", "--study", "kt", cwd=tmp_path
    )  # fmt: skip
    assert search.returncode == 0, search.stderr[-3000:]
    assert "model " in search.stdout and "5 hyperparameters: filters, blocks, dense_head, dropout, lr" in search.stdout
    assert "oneDNN" not in search.stdout + search.stderr  # TensorFlow's start-up lines stay out of the output
    study = optuna.load_study(study_name="kt", storage=f"sqlite:///{tmp_path / 'studies' / 'kt.db'}")
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert done and all({"filters", "blocks", "dropout", "lr"} <= set(t.params) for t in done)
    recipe = study.trials[0]  # the first trial is the function at its defaults, trained with the recipe
    assert {k: recipe.params[k] for k in ("filters", "blocks", "dropout", "lr")} == {
        "filters": 16,
        "blocks": 1,
        "dropout": 0.1,
        "lr": 3e-3,
    }
    assert "optimizer" not in recipe.params  # the function compiled its model: its Adam is kept

    exported = run_cli("export", "--study", "kt", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-2000:]
    export = json.loads((tmp_path / "studies" / "kt-best.json").read_text())
    model = export["config"]["model"]
    assert model["kind"] == "custom" and model["build"] == f"{MODELS}:build_model"
    assert set(model["hp"]) >= {"filters", "blocks", "dropout", "lr"}
    assert export["config"]["optimizer"]["name"] == "adam"
    assert export["config"]["optimizer"]["learning_rate"] == model["hp"]["lr"]

    elsewhere = tmp_path / "elsewhere"  # the export names the function by its absolute path
    elsewhere.mkdir()
    trained = run_cli("train", "--config", str(tmp_path / "studies" / "kt-best.json"), "--out", "m", cwd=elsewhere)
    assert trained.returncode == 0, trained.stderr[-3000:]
    out = elsewhere / "m"
    assert {"model.keras", "saved_model", "model.tflite", "config.json"} <= {p.name for p in out.iterdir()}
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "some.npz", x=digits.images[:60, :, :, None], y=digits.target[:60])
    served = run_cli("predict", "--model", str(out), f"npz:{tmp_path / 'some.npz'}", cwd=elsewhere)
    assert served.returncode == 0, served.stderr[-2000:]
    assert "Skipping variable loading" not in served.stderr  # one optimizer saved, not the function's too
    accuracy = float(served.stdout.split("accuracy ")[1].split()[0])
    assert accuracy > 0.5, served.stdout[-1000:]  # chance is 0.1

    other = run_cli("--model", f"{MODELS}:build_sometimes_broken", "--study", "kt", "--trials", "1", cwd=tmp_path)
    assert other.returncode == 2 and "created with model=" in other.stderr and "start a new --study" in other.stderr


def build_here(hp):
    """A model function written in the test itself (not importable by path from a worker)."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(8, 8, 1))
    x = layers.Conv2D(hp.suggest_categorical("filters", [4, 8]), 3, activation="relu")(inputs)
    x = layers.Flatten()(x)
    return keras.Model(inputs, layers.Dense(10)(x))  # logits: a softmax is added around it


def test_run_search_takes_a_function_and_a_build_that_fails_fails_only_its_trial(tmp_path: Path):
    import search

    study = search.run_search(
        "digits", model=build_here, trials=2, epochs=1, limit_train=300, studies_dir=tmp_path, study="py"
    )
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert all(t.params["filters"] in (4, 8) and "optimizer" in t.params for t in study.trials)  # uncompiled

    broken = f"{MODELS}:build_sometimes_broken"
    study = search.run_search(
        "digits", model=broken, trials=1, epochs=1, limit_train=300, studies_dir=tmp_path, study="broken"
    )
    study.enqueue_trial({"width": 12})  # a draw the function cannot build
    study = search.run_search("digits", model=broken, trials=3, epochs=1, studies_dir=tmp_path, study="broken")
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed and all(t.params["width"] == 12 for t in failed)  # the queued draw, and any the sampler made
    assert "build_sometimes_broken raised ValueError: width 12 is not supported" in failed[0].user_attrs["fail_reason"]
    built = [t for t in study.trials if t.params["width"] != 12]
    assert all(t.state == TrialState.COMPLETE for t in built) and built[-1].number > failed[0].number  # it went on
