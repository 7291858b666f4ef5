from __future__ import annotations

import dataclasses
import textwrap
from collections import Counter

import optuna
import pytest

from search.core.config import CNNConfig, ResNetConfig, RunConfig
from search.core.space_files import builtin_spaces, load_space
from search.core.spaces import Space
from search.errors import SpaceError


def write(tmp_path, text: str, name: str = "space.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def sample_many(space: Space, n: int = 60, base: RunConfig | None = None) -> list[tuple[dict, RunConfig]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        trial = study.ask()
        config = space.sample(trial, base or RunConfig())
        out.append((dict(trial.params), config))
        study.tell(trial, 0.0)
    return out


def test_builtin_spaces_load_and_hide_parts():
    names = builtin_spaces()
    assert set(names) == {"cnn", "resnet", "captcha"}  # _training is a part, not a space
    cnn, resnet = load_space("cnn"), load_space("resnet")
    cnn_keys = {f"{p.section}.{p.key}" for p in cnn.params}
    for key in (
        "model.blocks",
        "model.initializer",
        "optimizer.name",
        "schedule.cycle_epochs",
        "train.batch_size",
        "augment.pad_crop",
        "data.normalization",
        "optimizer.weight_decay",
        "train.label_smoothing",
    ):
        assert key in cnn_keys
    assert {f"{p.section}.{p.key}" for p in resnet.params} >= {"model.version", "model.block", "model.blocks_per_stage"}


def test_captcha_space_narrows_cnn_to_what_learned_on_captchas():
    space = load_space("captcha")
    for params, config in sample_many(space, 20):
        assert config.model.kind == "cnn" and config.optimizer.name in ("adam", "adamw")
        assert 3e-4 <= config.optimizer.learning_rate <= 3e-3
        assert config.data.normalization in ("per_image", "per_channel")
        assert "momentum" not in params


@pytest.mark.parametrize("name", ["cnn", "resnet", "captcha"])
def test_fixed_trial_replays_a_sampled_config(name):
    space = load_space(name)
    for params, config in sample_many(space, 20):
        assert space.sample(optuna.trial.FixedTrial(params), RunConfig()) == config


def test_conditions_sample_only_when_they_hold():
    samples = sample_many(load_space("cnn"), 80)
    for params, config in samples:
        assert ("momentum" in params) == (params["optimizer"] in ("sgd", "rmsprop"))
        assert ("nesterov" in params) == (params["optimizer"] == "sgd")
        assert ("cycle_epochs" in params) == (params["schedule"] == "cyclic")
        if "cycle_epochs" not in params:
            assert config.schedule.cycle_epochs == 4  # the config default
    assert Counter(p["optimizer"] for p, _ in samples).keys() == {"sgd", "adam", "adamw", "rmsprop", "adagrad"}


def test_resnet_space_builds_resnet_configs():
    for _, config in sample_many(load_space("resnet"), 10):
        assert isinstance(config.model, ResNetConfig)


def test_mixed_space_applies_kind_specific_keys_only_to_their_kind(tmp_path):
    path = write(
        tmp_path,
        """
        [model]
        kind = { choices = ["cnn", "resnet"] }
        blocks = { low = 1, high = 3 }
        block = { choices = ["basic", "bottleneck"] }
    """,
    )
    kinds = set()
    for params, config in sample_many(load_space(str(path)), 40):
        kinds.add(config.model.kind)
        assert ("blocks" in params) == isinstance(config.model, CNNConfig)
        assert ("block" in params) == isinstance(config.model, ResNetConfig)
    assert kinds == {"cnn", "resnet"}


def test_extends_fixes_narrows_and_drops(tmp_path):
    path = write(
        tmp_path,
        """
        extends = "cnn"
        drop = ["augment.translate", "model.activation"]
        [train]
        batch_size = 64
        [optimizer]
        learning_rate = { low = 1e-3, high = 1e-2, log = true }
    """,
    )
    space = load_space(str(path))
    keys = {f"{p.section}.{p.key}": p for p in space.params}
    assert "augment.translate" not in keys and "model.activation" not in keys
    assert keys["train.batch_size"].kind == "fixed"
    for params, config in sample_many(space, 20):
        assert config.train.batch_size == 64 and "batch_size" not in params
        assert 1e-3 <= config.optimizer.learning_rate <= 1e-2
        assert config.model.activation == "relu"
    assert space.fingerprint != load_space("cnn").fingerprint


def test_base_config_supplies_data_epochs_and_seed():
    base = RunConfig().replace(seed=7)
    ((_, config),) = sample_many(load_space("cnn"), 1, base)
    assert config.seed == 7 and config.train.epochs == base.train.epochs


@pytest.mark.parametrize(
    "text, message",
    [
        ("[train]\nbatch_sise = 64\n", "train.batch_sise: unknown key; [train] takes batch_size"),
        ("[trainer]\nbatch_size = 64\n", "unknown section [trainer]"),
        ("[optimizer]\nlearning_rate = { low = 0.1, high = 0.001 }\n", "low 0.1 > high 0.001; swap them"),
        ("[train]\nbatch_size = { low = 16.5, high = 64 }\n", "train.batch_size.low: expected an integer"),
        ('[train]\nbatch_size = "64"\n', "train.batch_size: expected an integer, received '64'"),
        ('[optimizer]\nname = { choices = ["adam", "lion"] }\n', "expected one of 'sgd', 'adam'"),
        ('[model]\ninitializer = "zeros"\n', "model.initializer: expected one of"),
        ("[train]\nbatch_size = [64\n", "malformed TOML"),
        ("[train]\nepochs = 5\n", "set by the command line"),
        ("[optimizer]\nlearning_rate = { low = 0, high = 0.1, log = true }\n", "log range needs low > 0"),
        ("[model]\nhead_dropout = { low = 0.0, high = 1.5 }\n", "out of range"),
        ("[model]\nbatch_norm = { low = 0, high = 1 }\n", "a range needs a number"),
        (
            '[optimizer]\nmomentum = { low = 0.8, high = 0.9, when = { schedule = "cyclic" } }\n',
            "not sampled before it",
        ),
        (
            '[optimizer]\nname = { choices = ["sgd", "adam"] }\nmomentum = '
            '{ low = 0.8, high = 0.9, when = { optimizer = "rmsprop" } }\n',
            "optimizer takes only",
        ),
        ('[model]\nblock = "basic"\n', "belongs to no model kind"),
        ("[train]\nbatch_size = { choices = [] }\n", "non-empty list"),
        ('extends = "nope"\n', "no such built-in space"),
    ],
)
def test_bad_space_files_are_refused_with_file_key_and_fix(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SpaceError) as e:
        load_space(str(path))
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    if "no such" not in message:
        assert str(path) in str(e.value)


def test_missing_space_names_the_builtins():
    with pytest.raises(SpaceError, match="use one of captcha, cnn, resnet"):
        load_space("cnnn")


def test_space_dict_round_trip():
    space = load_space("cnn")
    again = Space.from_dict(space.to_dict())
    assert again.params == space.params and again.fingerprint == space.fingerprint


def test_baseline_replays_the_run_config_defaults_the_space_can_take():
    defaults = RunConfig()
    params = load_space("cnn").baseline(defaults)
    assert "weight_decay" not in params  # the default 0.0 lies outside [1e-6, 1e-3]: the sampler draws it
    assert "momentum" not in params and "nesterov" not in params  # conditions on sgd; the default is adam
    config = load_space("cnn").sample(optuna.trial.FixedTrial({**params, "weight_decay": 1e-4}), defaults)
    assert config.model == defaults.model and config.train == defaults.train and config.augment == defaults.augment
    assert config.optimizer == dataclasses.replace(defaults.optimizer, weight_decay=1e-4)


def test_baseline_leaves_out_values_of_another_type_or_kind(tmp_path):
    space = load_space(
        str(
            write(
                tmp_path,
                """
        [model]
        kind = { choices = ["resnet"] }
        base_filters = { choices = [8, 16] }
        [train]
        batch_size = { low = 32, high = 224, step = 64 }
        label_smoothing = { choices = [0.05, 0.1] }
    """,
            )
        )
    )
    # "cnn" is not a choice: the model's parameters are left to the sampler; 64 is not on
    # the grid 32, 96, ...; the default 0.0 is not a choice
    assert space.baseline(RunConfig()) == {}
    resnet = load_space(
        str(write(tmp_path, '[model]\nkind = "resnet"\nbase_filters = { choices = [8, 16] }\n', "r.toml"))
    )
    assert resnet.baseline(RunConfig()) == {"base_filters": ResNetConfig().base_filters}


def test_a_very_long_extends_chain_is_one_error_not_a_recursion_error(tmp_path):
    from search.core.space_files import MAX_EXTENDS, load_space
    from search.errors import SpaceError

    (tmp_path / "s0.toml").write_text('extends = "cnn"\n')
    for i in range(1, 1200):
        (tmp_path / f"s{i}.toml").write_text(f'extends = "s{i - 1}.toml"\n')
    assert load_space(str(tmp_path / f"s{MAX_EXTENDS - 4}.toml")).name  # within the limit (with cnn and _training)
    with pytest.raises(SpaceError, match=f"chains more than {MAX_EXTENDS} files"):
        load_space(str(tmp_path / "s1199.toml"))
