from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import run_cli

from search.core.config import CNNConfig, OptimizerConfig, RunConfig, TrainConfig
from search.core.lrfind import lr_range_test, suggest
from search.core.space_files import load_space
from search.errors import UsageError


def synthetic(n=200):
    """Flat until 1e-3, falling to a minimum at 0.1, exploding after 1."""
    lrs = np.geomspace(1e-6, 10, n)
    loss = 2.3 - 1.5 / (1 + np.exp(-3 * (np.log10(lrs) + 2.5))) + np.where(lrs > 0.1, 5 * (np.log10(lrs) + 1) ** 2, 0)
    return lrs.tolist(), loss.tolist()


def test_suggest_brackets_the_falling_part_of_the_curve():
    lrs, losses = synthetic()
    base, peak = suggest(lrs, losses)
    assert 0.01 < peak < 0.1  # below the minimum (~0.1 after smoothing lag), above the flat start
    assert base == pytest.approx(peak / 10, rel=1e-6) or base > peak / 10
    assert base < peak


def test_suggest_refuses_an_immediately_diverging_run():
    with pytest.raises(UsageError, match="lower --min-lr"):
        suggest([1e-3, 1e-2, 1e-1], [2.0, math.nan, math.nan])


def test_range_test_on_digits_records_rising_rates(digits):
    config = RunConfig(
        model=CNNConfig(blocks=1, convs_per_block=1, base_filters=8, dense_units=16),
        optimizer=OptimizerConfig("sgd"),
        train=TrainConfig(batch_size=32),
    )
    result = lr_range_test(config, digits, min_lr=1e-5, max_lr=10.0, steps=60)
    assert len(result.lrs) == len(result.losses) <= 60
    assert all(b > a for a, b in zip(result.lrs, result.lrs[1:]))
    assert result.lrs[0] == pytest.approx(1e-5)
    assert 1e-5 < result.base_lr < result.max_lr < 10.0


def test_bad_bounds_are_usage_errors(digits):
    with pytest.raises(UsageError, match="--min-lr must be positive and below --max-lr"):
        lr_range_test(RunConfig(), digits, min_lr=1.0, max_lr=0.1)


def test_lr_find_command_writes_curve_and_a_space_that_loads(tmp_path):
    result = run_cli(
        "lr-find",
        "--steps",
        "40",
        "--limit-train",
        "300",
        "--out",
        str(tmp_path / "out"),
        "--write-space",
        str(tmp_path / "tuned.toml"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "lr-find.png").stat().st_size > 10_000
    found = json.loads((tmp_path / "out" / "lr-find.json").read_text())
    assert "suggested base rate" in result.stdout
    space = load_space(str(tmp_path / "tuned.toml"))
    lr = next(p for p in space.params if p.key == "learning_rate")
    assert lr.low == pytest.approx(found["base_lr"], rel=1e-2) and lr.high == pytest.approx(found["max_lr"], rel=1e-2)
    assert next(p for p in space.params if p.key == "max_lr_factor").kind == "fixed"


def test_lr_find_on_an_exported_config_uses_the_trials_own_split(tmp_path):
    """An export written before the config held its split seed gives it in its source:
    lr-find carves the validation split the trial was judged on, not seed 0's (nor the
    trial's own seed's, as it once did)."""
    import argparse

    from search.cli.lrfind import base_config

    config = RunConfig(train=TrainConfig(batch_size=32), seed=9).to_dict()
    del config["data"]["split_seed"]
    del config["train"]["monitor"]
    export = tmp_path / "old.json"
    export.write_text(
        json.dumps({"schema_version": 1, "config": config, "source": {"split_seed": 5, "monitor": "val_loss"}})
    )
    args = argparse.Namespace(config=str(export), space=None, dataset=None, data_dir=None, limit_train=None)
    tested, space = base_config(args)
    assert (tested.data.split_seed, tested.train.monitor, tested.seed, space) == (5, "val_loss", 9, "cnn")

    result = run_cli("lr-find", "--config", str(export), "--steps", "40", "--out", "lr", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "lr" / "lr-find.json").read_text())["base_lr"] > 0
