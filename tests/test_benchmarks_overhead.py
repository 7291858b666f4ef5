"""overhead.py in miniature: both parts on digits, one epoch, so the script cannot rot."""

from __future__ import annotations

import json
from pathlib import Path

from search.core.config import CNNConfig, RunConfig
from search.study.samplers import DEFAULT_PRUNER

ROOT = Path(__file__).resolve().parent.parent


def test_overhead_and_pruning_parts_write_json_and_report(tmp_path):
    from benchmarks.overhead import main

    out = tmp_path / "results"
    tiny = RunConfig(model=CNNConfig(blocks=1, convs_per_block=1, base_filters=8, dense_units=0))
    (tmp_path / "tiny.json").write_text(tiny.to_json())
    code = main(
        [
            "--dataset",
            "digits",
            "--limit-train",
            "100",
            "--val-size",
            "100",
            "--epochs",
            "1",
            "--repeats",
            "1",
            "--config",
            str(tmp_path / "tiny.json"),
            "--space",
            str(ROOT / "tests" / "spaces" / "bench_tiny.toml"),
            "--pruning-trials",
            "2",
            "--pruning-epochs",
            "1",
            "--pruners",
            "halfway",
            "successive_halving",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    overhead = json.loads((out / "overhead-digits.json").read_text())
    assert len(overhead["overhead"]["bare_s"]) == len(overhead["overhead"]["harness_s"]) == 1
    assert overhead["overhead"]["ratio"] > 0 and overhead["throughput"]["pipeline_images_per_s"] > 0
    pruning = json.loads((out / "pruning-digits.json").read_text())["pruning"]
    assert list(pruning["arms"]) == ["halfway", "successive_halving", "none"]  # no pruning is always the baseline
    assert pruning["arms"]["none"]["epochs"] == 2  # two trials of one epoch, none pruned
    assert all(arm["epochs"] <= 2 for arm in pruning["arms"].values())
    assert set(pruning["epochs_saved"]) == {"halfway", "successive_halving"} and pruning["default"] == DEFAULT_PRUNER
    text = out.with_suffix(".md").read_text()
    assert "## Harness overhead and input throughput: digits" in text and "## Pruning savings: digits" in text
    assert "tiny.json" in text
    assert f"| {DEFAULT_PRUNER} (default) |" in text and "| successive_halving" in text and "| no pruning |" in text


def test_bad_arguments_stop_with_one_line(tmp_path, capsys):
    from benchmarks.overhead import main

    assert main(["--dataset", "digits", "--repeats", "0", "--out", str(tmp_path)]) == 2
    assert "--repeats" in capsys.readouterr().err
