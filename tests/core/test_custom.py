"""A model function of the user's own (search.core.custom): the hp object's KerasTuner and
Optuna names, what ``declare`` reads from a real KerasTuner-style function, drawing through
a real Optuna trial, replaying a stored trial, and the model a trial trains around it."""

from __future__ import annotations

import dataclasses
import re

import keras
import numpy as np
import optuna
import pytest
from conftest import ROOT

from search.core.config import CustomModelConfig, RunConfig
from search.core.custom import HyperParameters, ModelBuildError, declare, load_builder, normalize_spec
from search.core.models import InputStats, build_model
from search.core.space_files import load_space
from search.errors import ConfigError

MODELS = ROOT / "tests" / "models" / "kt_resnet.py"
RESNET = normalize_spec(f"{MODELS}:build_model")
BROKEN = normalize_spec(f"{MODELS}:build_sometimes_broken")


def test_hp_answers_keras_tuners_names_with_their_defaults_and_records_what_was_asked():
    hp = HyperParameters()
    assert hp.Int("blocks", 1, 3) == 1  # KerasTuner's default: the lowest value
    assert hp.Int("units", 16, 64, step=16, default=32) == 32
    assert hp.Float("dropout", 0.0, 0.5, default=0.25) == 0.25
    assert hp.Float("lr", 1e-4, 1e-1, sampling="log") == 1e-4
    assert hp.Choice("act", ["relu", "gelu"]) == "relu"
    assert hp.Boolean("bn") is False
    assert hp.Fixed("kernel", 3) == 3
    assert hp.values == {"blocks": 1, "units": 32, "dropout": 0.25, "lr": 1e-4, "act": "relu", "bn": False, "kernel": 3}
    assert hp.get("units") == 32 and hp["act"] == "relu" and "bn" in hp
    assert hp.Int("blocks", 1, 3) == 1  # asked again: the same value
    declared = hp.declared
    assert list(declared) == ["blocks", "units", "dropout", "lr", "act", "bn"]  # Fixed is not a parameter
    assert declared["lr"].log and declared["units"].step == 16 and declared["units"].prior == 32
    assert declared["act"].kind == "categorical" and declared["act"].choices == ("relu", "gelu")


def test_a_conditional_scope_is_inactive_unless_its_parent_holds_and_records_its_condition():
    hp = HyperParameters(values={"arch": "mlp"})
    arch = hp.Choice("arch", ["cnn", "mlp"])
    with hp.conditional_scope("arch", ["cnn"]):
        assert hp.Int("filters", 8, 64) is None  # inactive: None, as KerasTuner gives
    with hp.conditional_scope("arch", "mlp"):
        assert hp.Int("units", 8, 64, default=16) == 16
    assert arch == "mlp" and "filters" not in hp.values
    assert hp.declared["units"].when == (("arch", ("mlp",)),)
    assert hp.Int("depth", 1, 4, parent_name="arch", parent_values=["cnn"]) is None


def test_optuna_names_draw_through_a_real_trial_and_a_fixed_trial_replays_them():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    hp = HyperParameters(trial=trial)
    values = (
        hp.suggest_int("n", 1, 5),
        hp.suggest_float("lr", 1e-4, 1e-1, log=True),
        hp.suggest_categorical("act", ["relu", "gelu"]),
    )
    assert trial.params == dict(zip(["n", "lr", "act"], values))
    replay = HyperParameters(trial=optuna.trial.FixedTrial(trial.params))
    assert (replay.suggest_int("n", 1, 5), replay.suggest_float("lr", 1e-4, 1e-1, log=True)) == values[:2]


def test_bad_hyperparameters_are_one_line_errors():
    with pytest.raises(ConfigError, match="already samples a parameter of that name"):
        HyperParameters(reserved=frozenset({"batch_size"})).Choice("batch_size", [32, 64])
    hp = HyperParameters()
    hp.Int("n", 1, 5)
    with pytest.raises(ConfigError, match="asked for twice with different ranges"):
        hp.Int("n", 1, 9)
    with pytest.raises(ConfigError, match="keeps that name"):
        hp.Choice("kind", ["a", "b"])
    with pytest.raises(ConfigError, match="sampling 'cubic'"):
        hp.Float("x", 0.0, 1.0, sampling="cubic")
    with pytest.raises(ConfigError, match="above its highest"):
        hp.Int("m", 5, 1)


def test_declare_reads_a_keras_tuner_function_its_defaults_its_compiled_optimizer_and_shapes():
    declared = declare(RESNET)
    by_name = {p.name: p for p in declared.params}
    assert list(by_name) == ["filters", "blocks", "dense_head", "dropout", "lr"]  # dense_units: only under dense_head
    assert {n: p.prior for n, p in by_name.items()} == {
        "filters": 16,
        "blocks": 1,
        "dense_head": False,
        "dropout": 0.1,
        "lr": 3e-3,
    }
    assert all(p.section == "model" for p in declared.params)
    assert declared.optimizer is not None and declared.optimizer.name == "adam"
    assert declared.optimizer.learning_rate == pytest.approx(3e-3)
    declared.check(RESNET, (8, 8, 1), 10)
    with pytest.raises(ConfigError, match=r"images are \(28, 28, 1\)"):
        declared.check(RESNET, (28, 28, 1), 10)
    with pytest.raises(ConfigError, match="data has 4 classes"):
        declared.check(RESNET, (8, 8, 1), 4)
    uncompiled = declare(BROKEN)
    assert uncompiled.optimizer is None
    with pytest.raises(ConfigError, match="hp 'width' is a name the space's optimizer section samples"):
        uncompiled.refuse_names(BROKEN, {"width"})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_file.py:build", "no_such_file.py; give the path of the Python file"),
        (f"{MODELS}:missing", "has no function 'missing' (it defines build_model"),
        ("no_such_package.models:build", "cannot import module 'no_such_package.models'"),
        ("just_a_name", "expected FILE.py:FUNCTION"),
    ],
)
def test_a_function_that_cannot_be_found_is_a_one_line_error(spec, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_builder(normalize_spec(spec) if ":" in spec else spec)


def test_a_function_that_returns_no_model_or_the_wrong_classes_is_refused():
    with pytest.raises(ConfigError, match="returned str, not a Keras model"):
        declare(f"{MODELS}:not_a_model")
    wrong = declare(normalize_spec(f"{MODELS}:build_wrong_classes"))
    with pytest.raises(ConfigError, match=r"output has shape \(3,\), and the data has 10 classes"):
        wrong.check("x", (8, 8, 1), 10)


def _space_and_base(spec: str):
    declared = declare(spec)
    compiled = declared.optimizer is not None
    space = load_space("_training").with_model(declared.params, compiled=compiled)
    return space, RunConfig(model=CustomModelConfig(build=spec))


def test_a_space_around_the_function_draws_its_values_and_a_compiled_optimizer_is_the_trials():
    space, base = _space_and_base(RESNET)
    assert not [p for p in space.params if p.section == "optimizer"]  # the function compiled its own
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    configs = []
    for _ in range(4):
        trial = study.ask()
        config = space.sample(trial, base)
        configs.append(config)
        assert config.model.hp == {k: trial.params[k] for k in config.model.hp}
        assert config.optimizer.name == "adam" and config.optimizer.learning_rate == trial.params["lr"]
        again = space.sample(optuna.trial.FixedTrial(trial.params), base)
        assert again == config  # a stored trial's params rebuild its config
        study.tell(trial, 0.5)
    assert len({c.model.hp["filters"] for c in configs} | {c.model.hp["blocks"] for c in configs}) > 2
    centre = space.priors(base)
    assert {k: centre[k] for k in ("filters", "blocks", "dropout", "lr")} == {
        "filters": 16,
        "blocks": 1,
        "dropout": 0.1,
        "lr": 3e-3,
    }
    assert {"filters", "blocks", "dropout", "lr", "batch_size"} <= set(space.changeable(base)(centre))


def test_a_build_that_raises_fails_its_trial_with_the_reason():
    space, base = _space_and_base(BROKEN)
    assert [p for p in space.params if p.section == "optimizer"]  # uncompiled: the space samples it
    with pytest.raises(ModelBuildError, match="build_sometimes_broken raised ValueError: width 12 is not supported"):
        space.sample(optuna.trial.FixedTrial({"width": 12}), base)


def test_the_trained_model_wraps_the_function_normalizes_and_outputs_probabilities():
    stats = InputStats(16.0, (8.0,), (4.0,))
    logits = CustomModelConfig(build=BROKEN, hp={"width": 4})
    model = build_model(logits, (8, 8, 1), 10, "scale", stats, flip_tta=True)
    assert model.layers[-2].name == "predictions" and isinstance(model.layers[-2], keras.layers.Softmax)
    x = np.random.default_rng(0).uniform(0, 16, (5, 8, 8, 1)).astype("float32")
    p = np.asarray(model.predict(x, verbose=0))
    assert p.shape == (5, 10) and np.allclose(p.sum(axis=1), 1.0, atol=1e-5) and p.dtype == np.float32
    softmax = dataclasses.replace(logits, build=RESNET, hp={"filters": 8, "blocks": 1, "dense_head": False})
    model = build_model(softmax, (8, 8, 1), 10, "per_channel", stats)
    assert not isinstance(model.layers[-1], keras.layers.Softmax)  # its own softmax is not applied twice
    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)][0]
    assert not inner.compiled  # the wrapper compiles; the inner model's own optimizer is not saved twice
    p = np.asarray(model.predict(x, verbose=0))
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_a_compiled_optimizers_weight_average_is_kept():
    from search.core.custom import compiled_optimizer

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, use_ema=True, ema_momentum=0.95), loss="categorical_crossentropy"
    )
    assert compiled_optimizer(model, "f.py:build").ema == pytest.approx(0.95)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy")
    assert compiled_optimizer(model, "f.py:build").ema == 0.0
