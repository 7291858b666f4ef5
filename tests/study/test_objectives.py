"""Several objectives: parsing and checking ``--objectives`` (no training), then one real
multi-objective search on digits through the command line, read back by best, report,
export and train."""

from __future__ import annotations

import dataclasses
import json

import optuna
import pytest
from conftest import ROOT, run_cli, synthetic_multi_study
from optuna.study import StudyDirection
from optuna.trial import TrialState

from search.core.space_files import load_space
from search.errors import UsageError
from search.study.objectives import check_objective_settings, format_objective, pareto_front, parse_objectives
from search.study.settings import StudySettings
from search.study.storage import create_or_load

TINY_SPACE = str(ROOT / "tests" / "spaces" / "tiny.toml")
SETTINGS = StudySettings.of(dataset="digits", space=load_space("cnn").to_dict(), epochs=2)


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("accuracy", "accuracy"),
        ("accuracy,params", "accuracy,params"),
        ("params, accuracy", "accuracy,params"),  # values always come in the canonical order
        ("latency,accuracy,params", "accuracy,params,latency"),
        ("accuracy,latency", "accuracy,latency"),
    ],
)
def test_objectives_parse_to_one_canonical_string(text, canonical):
    assert parse_objectives(text) == canonical


@pytest.mark.parametrize(
    "text, message",
    [
        ("params", "leaves out accuracy (the --monitor metric)"),
        ("accuracy,size", "unknown objective 'size'; use accuracy, params and latency"),
        ("val_accuracy,params", "unknown objective 'val_accuracy' ('accuracy' stands for the --monitor metric)"),
        ("accuracy,params,params", "names 'params' twice"),
        ("accuracy,,params", "has an empty name"),
        ("", "has an empty name"),
    ],
)
def test_bad_objectives_are_one_line_usage_errors(text, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        parse_objectives(text)
    assert "\n" not in str(e.value)


def test_settings_give_directions_and_metric_names():
    multi = SETTINGS.with_options(objectives="accuracy,params,latency", monitor="val_loss")
    assert multi.multi_objective and not SETTINGS.multi_objective
    assert multi.directions == ["minimize", "minimize", "minimize"]
    assert multi.metric_names == ["val_loss", "params", "latency_ms"]
    assert SETTINGS.directions == ["maximize"] and SETTINGS.metric_names == ["val_accuracy"]
    assert StudySettings.from_dict(multi.to_dict()) == multi
    # a study recorded before --objectives existed reads as single-objective
    old = {k: v for k, v in SETTINGS.to_dict().items() if k != "objectives"}
    assert StudySettings.from_dict(old).objectives == "accuracy"


def test_a_multi_objective_study_runs_without_pruner_and_refuses_what_cannot_work():
    multi = dataclasses.replace(SETTINGS, objectives="accuracy,params")
    assert check_objective_settings(multi, {}).pruner == "none"  # the default median pruner is dropped
    assert check_objective_settings(multi, {"pruner": "none"}).pruner == "none"
    with pytest.raises(
        UsageError, match="--pruner median cannot be used with --objectives accuracy,params: Optuna prunes only"
    ):
        check_objective_settings(multi, {"pruner": "median"})
    with pytest.raises(UsageError, match="sampler 'cmaes' cannot optimize several objectives"):
        check_objective_settings(dataclasses.replace(multi, sampler="cmaes"), {})
    for sampler in ("tpe", "nsga2", "random", "qmc", "gp"):
        check_objective_settings(dataclasses.replace(multi, sampler=sampler), {})
    single = dataclasses.replace(SETTINGS, sampler="cmaes", pruner="hyperband")
    assert check_objective_settings(single, {"pruner": "hyperband"}) == single  # single-objective: unchanged


def test_create_or_load_makes_a_multi_objective_study(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = create_or_load("s", url, dataclasses.replace(SETTINGS, objectives="accuracy,params,latency", pruner="none"))
    assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE, StudyDirection.MINIMIZE]
    assert study.metric_names == ["val_accuracy", "params", "latency_ms"]
    assert isinstance(study.pruner, optuna.pruners.NopPruner)
    single = create_or_load("t", url, SETTINGS)
    assert single.directions == [StudyDirection.MAXIMIZE] and single.metric_names == ["val_accuracy"]


def test_pareto_front_is_sorted_by_the_monitored_metric():
    study = synthetic_multi_study()
    assert [t.number for t in pareto_front(study)] == [1, 2, 0]  # #3 is dominated by #1, #4 failed
    assert format_objective("params", 48000.0) == "48,000"
    assert format_objective("latency_ms", 0.0912) == "0.091"
    assert format_objective("val_accuracy", 0.95) == "0.9500" and format_objective("params", None) == "-"


# --- a real multi-objective search --------------------------------------------------


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory):
    """3 trials of accuracy against size, 1 epoch; then a resume without --objectives adds one."""
    cwd = tmp_path_factory.mktemp("multi")
    first = run_cli(
        "--study",
        "mo",
        "--space",
        TINY_SPACE,
        "--objectives",
        "accuracy,params",
        "--trials",
        "3",
        "--epochs",
        "1",
        "--limit-train",
        "300",
        cwd=cwd,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_cli("--study", "mo", "--trials", "1", cwd=cwd)
    return cwd, first, second


def load(cwd):
    return optuna.load_study(study_name="mo", storage=f"sqlite:///{cwd / 'studies' / 'mo.db'}")


def test_search_stores_values_for_both_objectives_and_never_prunes(multi_run):
    cwd, first, second = multi_run
    assert second.returncode == 0, second.stderr[-3000:]
    study = load(cwd)
    assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    assert study.metric_names == ["val_accuracy", "params"]
    settings = study.user_attrs["cnn_search"]
    assert (settings["objectives"], settings["pruner"]) == ("accuracy,params", "none")
    trials = study.trials
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        assert t.intermediate_values == {}  # nothing reported: Optuna cannot prune several objectives
        assert t.values[0] == pytest.approx(max(t.user_attrs["history"]["val_accuracy"]))
        assert t.values[1] == t.user_attrs["params_count"] > 0
        assert len(t.user_attrs["epoch_seconds"]) == 1 and isinstance(t.user_attrs["diagnosis"], list)
        assert "latency_ms" not in t.user_attrs  # measured only when it is an objective
    assert "pruner none" in first.stdout and "objectives: val_accuracy (maximize), params (minimize)" in first.stdout
    assert "resuming study 'mo'" in second.stdout and "pruner none" in second.stdout  # recorded objectives


def test_search_prints_values_and_the_front(multi_run):
    cwd, first, _ = multi_run
    front = pareto_front(load(cwd))
    lines = [line for line in first.stdout.splitlines() if line.startswith("trial ")]
    assert len(lines) == 3 and all(
        "val_accuracy " in line and " params " in line and " front #" in line for line in lines
    )
    assert "Pareto front of val_accuracy against params:" in first.stdout
    assert (
        f"export:    python run_search.py export --study mo --trial {front[0].number}   (any point of the front:"
        in first.stdout
    )


def test_best_and_report_show_the_front(multi_run, tmp_path):
    cwd, _, _ = multi_run
    front = pareto_front(load(cwd))
    best = run_cli("best", "--study", "mo", cwd=cwd)
    assert best.returncode == 0, best.stderr
    lines = best.stdout.splitlines()
    assert lines[0].startswith("study 'mo': digits, val_accuracy (maximize), params (minimize);")
    assert lines[1].startswith(f"Pareto front: {len(front)} trial")
    assert lines[2].split()[:5] == ["rank", "trial", "val_accuracy", "params", "state"]
    rows = [line.split() for line in lines[4 : 4 + len(front)]]
    assert [int(r[1]) for r in rows] == [t.number for t in front]
    assert [r[3] for r in rows] == [f"{t.values[1]:,.0f}" for t in front]
    out = tmp_path / "report.html"
    report = run_cli("report", "--study", "mo", "--out", str(out), cwd=cwd)
    assert report.returncode == 0, report.stderr
    text = out.read_text()
    assert "<h2>Pareto front</h2>" in text and 'id="plot-pareto"' in text
    assert f"Pareto front: {len(front)} trial{'s' * (len(front) != 1)} (#{front[0].number}" in text


def test_export_needs_a_point_of_the_front_and_train_runs_it(multi_run):
    cwd, _, _ = multi_run
    study = load(cwd)
    front = pareto_front(study)
    refused = run_cli("export", "--study", "mo", cwd=cwd)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert (
        "has no single best trial; pick a point of its Pareto front with --trial N, N one of "
        + ", ".join(str(t.number) for t in front)
    ) in refused.stderr
    point = front[-1]  # the smallest model on the front
    exported = run_cli("export", "--study", "mo", "--trial", str(point.number), cwd=cwd)
    assert exported.returncode == 0, exported.stderr
    path = cwd / "studies" / f"mo-trial{point.number}.json"
    source = json.loads(path.read_text())["source"]
    assert source["objectives"] == "accuracy,params" and source["value"] == point.values[0]
    assert source["values"] == {"val_accuracy": point.values[0], "params": point.values[1]}
    trained = run_cli("train", "--config", str(path), "--out", str(cwd / "model"), cwd=cwd)
    assert trained.returncode == 0, trained.stderr[-3000:]
    metrics = json.loads((cwd / "model" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (("--objectives", "params"), "leaves out accuracy"),
        (
            ("--objectives", "accuracy,params", "--sampler", "cmaes"),
            "sampler 'cmaes' cannot optimize several objectives",
        ),
        (("--objectives", "accuracy,params", "--pruner", "median"), "--pruner median cannot be used with --objectives"),
    ],
)
def test_refusals_create_nothing(tmp_path, args, message):
    result = run_cli("--study", "x", *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "studies").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--objectives", "accuracy"), "created with objectives='accuracy,params', not 'accuracy'"),
        (
            ("--objectives", "accuracy,params,latency"),
            "created with objectives='accuracy,params', not 'accuracy,params,latency'",
        ),
        (("--pruner", "hyperband"), "--pruner hyperband cannot be used with --objectives accuracy,params"),
    ],
)
def test_resume_refuses_other_objectives_and_pruning(multi_run, args, message):
    cwd, _, _ = multi_run
    db = cwd / "studies" / "mo.db"
    before = db.read_bytes()
    result = run_cli("--study", "mo", "--trials", "1", *args, cwd=cwd)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert db.read_bytes() == before
