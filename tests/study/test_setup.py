"""One setup for the command line and Python: the same request gives the same study (name,
recorded settings, first trial) and the same refusals through both."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from search.api import run_search
from search.errors import MetricNotFoundError, UsageError
from search.study.setup import SearchRequest, default_study_name, prepare
from tests.conftest import one_line_error, run_cli


def stored(db: Path) -> tuple[list[str], dict, list[str]]:
    """A study file's study names, the settings of its only study, and its trials' states."""
    with sqlite3.connect(db) as con:
        names = [row[0] for row in con.execute("SELECT study_name FROM studies")]
        (value,) = con.execute("SELECT value_json FROM study_user_attributes WHERE key = 'cnn_search'").fetchone()
        states = [row[0] for row in con.execute("SELECT state FROM trials ORDER BY number")]
    return names, json.loads(value), states


def test_the_command_line_and_python_store_the_same_study_for_the_same_request(tmp_path: Path):
    cli_dir, py_dir = tmp_path / "cli", tmp_path / "py"
    cli_dir.mkdir()
    result = run_cli("--limit-train", "300", "--trials", "1", "--epochs", "1", "--seed", "3", cwd=cli_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    run_search("digits", limit_train=300, trials=1, epochs=1, seed=3, studies_dir=py_dir)

    cli_names, cli_settings, cli_states = stored(cli_dir / "studies" / "digits-cnn.db")
    py_names, py_settings, py_states = stored(py_dir / "digits-cnn.db")
    assert cli_names == py_names == ["digits-cnn"]  # the same default name
    assert cli_settings == py_settings  # dataset, split, seed, metric, space, recipe, sampler, pruner, heartbeat
    assert cli_settings["config"]["seed"] == 3 and cli_settings["config"]["data"]["limit_train"] == 300
    assert cli_states == py_states == ["COMPLETE"]


@pytest.mark.parametrize(
    ("options", "argv", "error", "words"),
    [
        ({"budget": 60, "objectives": "accuracy,params"}, ["--budget", "60", "--objectives", "accuracy,params"],
         UsageError, ["--budget plans trials by one value"]),
        ({"monitor": "val_f1"}, ["--monitor", "val_f1"], MetricNotFoundError, ["unknown metric 'val_f1'"]),
        ({"trials": 0}, ["--trials", "0"], UsageError, ["--trials must be at least 1"]),
        ({"budget": "5x"}, ["--budget", "5x"], UsageError, ["5x"]),
        ({"heartbeat": 0}, ["--heartbeat", "0"], UsageError, ["--heartbeat must be from 1 to 3600"]),
        ({"warm_start": "no-such-study"}, ["--warm-start", "no-such-study"], UsageError, ["no-such-study"]),
    ],
)  # fmt: skip
def test_the_command_line_and_python_refuse_the_same_requests_in_the_same_words(
    tmp_path: Path, monkeypatch, options, argv, error, words
):
    result = run_cli(*argv, cwd=tmp_path)
    line = one_line_error(result, *words)
    monkeypatch.chdir(tmp_path)  # the same default studies folder, named alike in both messages
    with pytest.raises(error) as refused:
        run_search("digits", **options)
    assert f"error: {refused.value}" == line
    assert not list(tmp_path.rglob("*.db"))  # neither wrote a study


def test_default_study_names():
    assert default_study_name("captcha:4", "cnn") == "captcha4-cnn"
    assert default_study_name("folder:data/cats", "spaces/my_space.toml") == "cats-my_space"
    assert default_study_name("digits", "resnet") == "digits-resnet"


def test_a_request_names_its_study_from_the_data_and_the_space_file(tmp_path: Path):
    space = tmp_path / "narrow.toml"
    space.write_text('extends = "cnn"\n[model]\nblocks = 2\n')
    search = prepare(SearchRequest(dataset="digits", space=str(space), studies_dir=tmp_path, limit_train=200))
    assert search.name == "digits-narrow" and not search.resumed and search.trials == 20
    assert search.settings.space["name"] == "narrow" and search.budget is None and search.notes == []


def test_run_search_names_an_unknown_option():
    with pytest.raises(TypeError, match="budgett"):
        run_search("digits", budgett=60)


def test_a_budget_knows_how_many_images_its_accuracy_is_measured_on(tmp_path: Path):
    """A branch must beat its control by more than the noise of the validation images
    (search.study.ranking.final_source): the plan, and the study for ``report``, know how many."""
    from search.study.record import BUDGET

    def budget_of(**options):
        search = prepare(
            SearchRequest(dataset="digits", studies_dir=tmp_path, limit_train=300, budget="90s", **options)
        )
        return search.budget, search.study.user_attrs[BUDGET], len(search.data.x_val)

    plan, stored, images = budget_of(study="acc")
    assert plan.val_images == stored["val_images"] == images > 100
    plan, stored, _ = budget_of(study="loss", monitor="val_loss")  # a loss has no such noise
    assert plan.val_images is None and stored["val_images"] is None
