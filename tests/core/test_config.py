from __future__ import annotations

import json

import pytest

from search.core.config import (
    AugmentConfig,
    CNNConfig,
    DataConfig,
    OptimizerConfig,
    ResNetConfig,
    RunConfig,
    ScheduleConfig,
    TrainConfig,
)
from search.errors import ConfigError

NON_DEFAULT = RunConfig(
    data=DataConfig("npz:/tmp/x.npz", None, 0.2, 500, "per_image"),
    augment=AugmentConfig(True, 0.1, 4),
    model=ResNetConfig(version=2, blocks_per_stage=2, base_filters=8, block="bottleneck", head_dropout=0.3),
    optimizer=OptimizerConfig("sgd", 0.05, 0.95, True, 1e-4),
    schedule=ScheduleConfig("cyclic", cycle_epochs=3, max_lr_factor=4.0),
    train=TrainConfig(batch_size=32, epochs=7, label_smoothing=0.1),
    seed=42,
)


@pytest.mark.parametrize("config", [RunConfig(), NON_DEFAULT, RunConfig(model=CNNConfig(blocks=2, batch_norm=False))])
def test_json_round_trip(config):
    text = config.to_json()
    assert RunConfig.from_json(text) == config
    assert RunConfig.from_dict(json.loads(text)) == config
    assert json.loads(text)["schema_version"] == 1


def test_load_reads_export_files_and_bare_configs(tmp_path):
    bare = tmp_path / "bare.json"
    bare.write_text(NON_DEFAULT.to_json())
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"source": {"study": "s"}, "config": NON_DEFAULT.to_dict()}))
    assert RunConfig.load(bare) == NON_DEFAULT
    assert RunConfig.load(export) == NON_DEFAULT


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"optimizer": {"name": "sgdd"}}, "optimizer.name: expected one of 'sgd'"),
        ({"train": {"batch_size": "64"}}, "train.batch_size: expected an integer, received '64'"),
        ({"train": {"batch_size": True}}, "expected an integer, received True"),
        ({"model": {"kind": "resnet", "version": True}}, "model.version: expected one of 1, 2"),
        ({"model": {"kind": "vgg"}}, "model.kind: expected one of 'cnn', 'resnet'"),
        ({"model": {"kind": "cnn", "block": "basic"}}, "config.model: expected keys"),
        ({"trainer": {}}, "expected sections"),
        ({"model": {"head_dropout": 1.5}}, "model.head_dropout: expected a rate in [0, 1)"),
        ({"data": {"val_split": 0}}, "data.val_split"),
        ({"optimizer": {"learning_rate": float("nan")}}, "expected a number"),
        ({"schema_version": 99}, "schema_version"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_invalid_configs_name_the_key(raw, message):
    with pytest.raises(ConfigError) as e:
        RunConfig.from_dict(raw)
    assert message in str(e.value)


def test_ints_widen_to_float_but_not_back():
    cfg = RunConfig.from_dict({"optimizer": {"learning_rate": 1}})
    assert cfg.optimizer.learning_rate == 1.0 and isinstance(cfg.optimizer.learning_rate, float)
    with pytest.raises(ConfigError):
        RunConfig.from_dict({"train": {"epochs": 2.5}})


def test_config_is_frozen():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().seed = 3  # type: ignore[misc]


def test_resnet_depth_follows_6n_plus_2_and_9n_plus_2():
    assert ResNetConfig(blocks_per_stage=3).depth == 20
    assert ResNetConfig(blocks_per_stage=2, block="bottleneck").depth == 20
    assert ResNetConfig(blocks_per_stage=18).depth == 110


def test_not_json_is_a_config_error(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        RunConfig.load(tmp_path / "missing.json")


def test_the_split_seed_and_the_monitor_are_part_of_the_config():
    from search.core.config import DataConfig, is_loss

    cfg = RunConfig.from_dict({"data": {"dataset": "digits", "split_seed": 3}, "train": {"monitor": "val_loss"}})
    assert cfg.data.split_seed == 3 and cfg.train.monitor == "val_loss" and is_loss(cfg.train.monitor)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert RunConfig().data.split_seed == 0 and RunConfig().train.monitor == "val_accuracy"  # what older files meant
    with pytest.raises(ConfigError, match="data.split_seed"):
        DataConfig(split_seed=-1)
    with pytest.raises(ConfigError, match="train.monitor: expected one of .*received 'val_f1'"):
        RunConfig.from_dict({"train": {"monitor": "val_f1"}})
    with pytest.raises(ConfigError, match="for the image dataset 'digits'"):  # a text metric on image data
        RunConfig.from_dict({"train": {"monitor": "val_char_accuracy"}})
    assert RunConfig.from_dict({"data": {"dataset": "captcha:100"}, "train": {"monitor": "val_char_accuracy"}})


def test_a_loss_is_minimized_and_accuracies_are_not():
    from search.core.config import is_loss

    assert is_loss("loss") and is_loss("val_loss")
    assert not is_loss("val_accuracy") and not is_loss("char_accuracy")
