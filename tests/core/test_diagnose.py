from __future__ import annotations

import math

import numpy as np

from search.core.diagnose import Finding, check_input_scale, diagnose_history, explain

HEALTHY = {
    "loss": [1.2, 0.6, 0.4, 0.3],
    "accuracy": [0.6, 0.8, 0.86, 0.9],
    "val_loss": [0.8, 0.5, 0.42, 0.4],
    "val_accuracy": [0.72, 0.83, 0.86, 0.87],
}


def test_healthy_history_has_no_findings():
    assert diagnose_history(HEALTHY, 10) == []


def test_nan_loss_is_diverged():
    history = {**HEALTHY, "loss": [1.2, math.nan]}
    assert diagnose_history(history, 10) == ["diverged"]
    assert "diverged" in diagnose_history({"loss": [2.3]}, 10, fail_reason="diverged: training loss became nan")


def test_exploding_loss_is_diverged():
    history = {
        "loss": [2.3, 5.0, 40.0],
        "accuracy": [0.3, 0.3, 0.3],
        "val_loss": [2, 2, 2],
        "val_accuracy": [0.3, 0.31, 0.3],
    }
    assert "diverged" in diagnose_history(history, 10)


def test_chance_accuracy_is_stuck():
    history = {
        "loss": [2.31, 2.30, 2.30],
        "accuracy": [0.1, 0.11, 0.1],
        "val_loss": [2.3] * 3,
        "val_accuracy": [0.1, 0.098, 0.11],
    }
    assert diagnose_history(history, 10) == ["stuck"]
    assert "stuck" not in diagnose_history({**history, "val_accuracy": [0.1, 0.12, 0.16]}, 10)
    # one epoch (a trial pruned after its first) is too early to call
    assert diagnose_history({"loss": [2.3], "accuracy": [0.1], "val_loss": [2.3], "val_accuracy": [0.1]}, 10) == []


def test_rising_val_loss_with_rising_train_accuracy_is_overfitting():
    history = {
        "loss": [1.0, 0.5, 0.2, 0.05],
        "accuracy": [0.65, 0.85, 0.95, 0.99],
        "val_loss": [1.0, 0.8, 1.1, 1.5],
        "val_accuracy": [0.6, 0.65, 0.64, 0.63],
    }
    assert diagnose_history(history, 10) == ["overfitting"]
    # the same curves with a small train/val gap are not overfitting
    assert "overfitting" not in diagnose_history({**history, "accuracy": [0.6, 0.65, 0.66, 0.68]}, 10)


def test_sharp_fall_between_two_epochs_is_a_sudden_drop():
    history = {**HEALTHY, "val_accuracy": [0.72, 0.83, 0.5, 0.85]}
    assert diagnose_history(history, 10) == ["sudden_drop"]
    assert diagnose_history({**HEALTHY, "val_accuracy": [0.72, 0.83, 0.75, 0.85]}, 10) == []


def test_input_scale_warnings():
    assert check_input_scale(np.random.default_rng(0).uniform(0, 1, 100), "scale") is None
    assert "already normalized" in check_input_scale(np.full(100, 0.003), "scale")
    assert "exceed" in check_input_scale(np.full(100, 255.0), "scale")
    assert "nearly constant" in check_input_scale(np.zeros(100), "per_channel")


def test_explain_finds_what_diverged_trials_share():
    trials = []
    for i in range(9):  # diverged: SGD, high rates, no batch norm
        trials.append(
            (
                ["diverged"],
                {
                    "optimizer": "sgd",
                    "learning_rate": 0.06 + i * 0.01,
                    "batch_norm": False,
                    "batch_size": 32 * (1 + i % 2),
                },
            )
        )
    for i in range(21):
        trials.append(
            (
                [],
                {
                    "optimizer": ["adam", "sgd", "rmsprop"][i % 3],
                    "learning_rate": 0.0005 + i * 0.001,
                    "batch_norm": i % 4 != 0,
                    "batch_size": 32 * (1 + i % 2),
                },
            )
        )
    (finding,) = explain(trials)
    assert finding == Finding("diverged", 9, 30, finding.traits)
    assert set(finding.traits) == {"learning_rate >= 0.06", "batch_norm=False", "optimizer=sgd"}
    sentence = finding.sentence()
    assert sentence.startswith("9 of 30 trials diverged; all had ")
    assert "learning_rate >= 0.06" in sentence and "Try: lower the learning rate" in sentence


def test_explain_reports_counts_without_traits_when_nothing_is_shared():
    trials = [(["stuck"], {"x": 1}), (["stuck"], {"x": 2}), ([], {"x": 1}), ([], {"x": 2})]
    (finding,) = explain(trials)
    assert finding.count == 2 and finding.traits == ()
    assert finding.sentence().startswith("2 of 4 trials stayed near chance. Try:")


def test_input_warnings_flag_pre_normalized_images_for_scale_mode():
    from search.core.diagnose import input_warnings

    x = np.random.default_rng(0).uniform(0, 1, (50, 4, 4, 1))  # already in [0, 1], but pixel_max 255
    found = input_warnings(x, 255.0, [x.mean()], [x.var()], ["scale", "per_channel"])
    assert len(found) == 1 and "already normalized" in found[0]
    assert input_warnings(x * 255, 255.0, [x.mean() * 255], [x.var() * 255**2], ["scale", "per_channel"]) == []
