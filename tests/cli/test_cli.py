"""End-to-end runs of the real command line on digits, checked in the database."""

from __future__ import annotations

import re
import textwrap

import optuna
import pytest
from conftest import run_cli, shared_data
from optuna.trial import TrialState

from search.core.config import RunConfig

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def load(tmp_path, study):
    return optuna.load_study(study_name=study, storage=f"sqlite:///{tmp_path / 'studies' / (study + '.db')}")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A real search: 3 trials, 2 epochs, then a resume that adds 2 more."""
    cwd = tmp_path_factory.mktemp("cli")
    first = run_cli("--study", "d", "--trials", "3", "--epochs", "2", "--limit-train", "400", cwd=cwd)
    second = run_cli("--study", "d", "--trials", "2", "--verbose", cwd=cwd)
    return cwd, first, second


def test_search_stores_every_trial_with_its_attributes(digits_run):
    cwd, first, _ = digits_run
    assert first.returncode == 0, first.stderr
    assert "absl::InitializeLog" not in first.stderr and "oneDNN" not in first.stderr  # TensorFlow's start-up lines
    second = digits_run[2]
    assert "absl::InitializeLog" in second.stderr or "oneDNN" in second.stderr  # --verbose shows them
    study = load(cwd, "d")
    trials = study.trials
    assert len(trials) == 5 and all(t.state in FINISHED for t in trials)
    assert any(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        config = RunConfig.from_dict(t.user_attrs["config"])  # the full config, valid
        assert config.train.epochs == 2 and config.seed == t.number and config.data.limit_train == 400
        assert config.model == type(config.model)(**t.user_attrs["config"]["model"])
        if t.state == TrialState.FAIL:
            assert t.user_attrs["fail_reason"]
            continue
        history = t.user_attrs["history"]
        assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert list(t.intermediate_values.values()) == pytest.approx(history["val_accuracy"])
        assert len(t.user_attrs["epoch_seconds"]) == len(history["loss"]) <= 2
        assert t.user_attrs["params_count"] > 0 and t.user_attrs["rss_mb"] > 0
        assert isinstance(t.user_attrs["diagnosis"], list)
        if t.state == TrialState.COMPLETE:
            assert t.value == pytest.approx(max(history["val_accuracy"]))
    settings = study.user_attrs["cnn_search"]
    assert settings["config"]["data"]["dataset"] == "digits" and settings["space"]["name"] == "cnn"


def test_search_prints_a_line_per_trial_and_a_summary(digits_run):
    _, first, _ = digits_run
    lines = [line for line in first.stdout.splitlines() if line.startswith("trial ")]
    assert len(lines) == 3
    assert "new study 'd'" in first.stdout and "best value" in first.stdout
    assert "dashboard" in first.stdout and "d.db" in first.stdout


def test_resume_adds_trials_with_recorded_settings(digits_run):
    cwd, _, second = digits_run
    assert second.returncode == 0, second.stderr
    assert "resuming study 'd'" in second.stdout and "400 train" in second.stdout
    numbers = [t.number for t in load(cwd, "d").trials]
    assert numbers == [0, 1, 2, 3, 4]


def test_resume_with_other_data_is_refused_and_changes_nothing(digits_run):
    cwd, _, _ = digits_run
    db = cwd / "studies" / "d.db"
    before = db.read_bytes()
    result = run_cli("--study", "d", "--dataset", "fashion_mnist", "--trials", "1", cwd=cwd)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: study 'd' was created with dataset='digits', not "
        "'fashion_mnist'; drop that option to resume it, or start a new --study"
    ]
    assert db.read_bytes() == before


def test_pruning_happens(tmp_path):
    """Half the learning rates are hopeless (1e-6): after the start-up trials, the median
    pruner must stop those at epoch 1.  (The default pruner, successive halving, also stops
    good trials after one epoch, so the diagnosis below would have no single trait to name.)"""
    space = tmp_path / "lr.toml"
    space.write_text(
        textwrap.dedent("""
        [model]
        blocks = 2
        convs_per_block = 1
        base_filters = 8
        [optimizer]
        learning_rate = { choices = [1e-6, 3e-3] }
        [train]
        batch_size = 32
    """)
    )
    result = run_cli(
        "--study",
        "p",
        "--space",
        str(space),
        "--sampler",
        "random",
        "--pruner",
        "median",
        "--trials",
        "10",
        "--epochs",
        "3",
        "--limit-train",
        "300",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    trials = load(tmp_path, "p").trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert any(t.params["learning_rate"] == 1e-6 for t in pruned), [
        (t.state, t.params, t.intermediate_values) for t in trials
    ]
    for t in pruned:
        assert len(t.intermediate_values) < 3
        assert t.user_attrs["prune_reason"].startswith("pruned after epoch")
    assert any(t.state == TrialState.COMPLETE and t.params["learning_rate"] == 3e-3 for t in trials)
    # the hopeless trials are diagnosed, and the summary says so in a sentence
    assert any("stuck" in t.user_attrs["diagnosis"] for t in trials if t.params["learning_rate"] == 1e-6)
    # (trials pruned after one epoch are too early to call stuck: one such trial or several)
    assert re.search(r"of 10 trials stayed near chance; (all|it) had learning_rate(=| <= )1e-06", result.stdout), (
        result.stdout
    )


def test_spaces_command_lists_builtin_spaces_and_parameters(tmp_path):
    result = run_cli("spaces", cwd=tmp_path)
    assert result.returncode == 0
    assert "cnn  (" in result.stdout and "resnet  (" in result.stdout
    assert "optimizer.learning_rate" in result.stdout and "model.block " in result.stdout


def test_bad_space_file_stops_before_any_study(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[optimizer]\nlearning_rate = { low = 0.1, high = 0.001 }\n")
    result = run_cli("--space", str(bad), "--study", "x", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {bad}: optimizer.learning_rate: low 0.1 > high 0.001; swap them"
    assert not (tmp_path / "studies").exists()


def test_unknown_metric_stops_before_any_study(tmp_path):
    result = run_cli("--monitor", "val_f1", "--study", "x", cwd=tmp_path)
    assert result.returncode == 2 and "unknown metric 'val_f1'" in result.stderr and "val_accuracy" in result.stderr
    assert not (tmp_path / "studies" / "x.db").exists()


def test_console_script_matches_run_search(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "cnn-search"
    if not exe.exists():
        pytest.skip("cnn-search console script is not installed (pip install -e .)")
    result = subprocess.run([exe, "spaces", "cnn"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == run_cli("spaces", "cnn", cwd=tmp_path).stdout


def test_fashion_mnist_search_from_shared_files(tmp_path):
    folder = shared_data("fashion-mnist")
    result = run_cli(
        "--dataset",
        "fashion_mnist",
        "--data-dir",
        str(folder),
        "--study",
        "f",
        "--trials",
        "1",
        "--epochs",
        "1",
        "--limit-train",
        "2000",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (trial,) = load(tmp_path, "f").trials
    assert trial.state in FINISHED and "28x28x1" in result.stdout


def test_folder_dataset_resnet_search_on_cifar_subset(tmp_path):
    folder = shared_data("cifar10-subset")
    result = run_cli(
        "--dataset",
        f"folder:{folder}",
        "--space",
        "resnet",
        "--trials",
        "1",
        "--epochs",
        "1",
        "--limit-train",
        "300",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "study 'cifar10-subset-resnet'" in result.stdout and "32x32x3" in result.stdout
    (trial,) = load(tmp_path, "cifar10-subset-resnet").trials
    assert trial.user_attrs["config"]["model"]["kind"] == "resnet"


def test_timeout_stops_starting_trials_and_keeps_what_finished(tmp_path):
    """``--timeout 20`` with room for 200 trials: trials stop being started after 20 s;
    the one running then finishes, and the summary counts what ran."""
    from conftest import ROOT

    result = run_cli(
        "--study",
        "t",
        "--trials",
        "200",
        "--timeout",
        "20",
        "--epochs",
        "1",
        "--limit-train",
        "300",
        "--space",
        str(ROOT / "tests" / "spaces" / "tiny.toml"),
        "--no-baseline",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    ran = int(re.search(r"ran (\d+) trials", result.stdout).group(1))
    study = load(tmp_path, "t")
    assert 1 <= ran < 200 and len(study.trials) == ran
    assert all(t.state in FINISHED for t in study.trials)  # none left running


def test_a_split_that_leaves_a_class_a_handful_of_images_is_warned_about():
    from search.cli.search import MIN_PER_CLASS, split_warnings
    from search.core.config import DataConfig
    from search.core.data import load_dataset

    assert split_warnings(load_dataset(DataConfig("digits"))) == []
    starved = load_dataset(DataConfig("digits", val_split=0.99))  # 14 training images for 10 classes
    (warning,) = split_warnings(starved)
    assert warning.startswith("the training split holds") and f"fewer than {MIN_PER_CLASS} a class" in warning
    assert "--val-split" in warning
