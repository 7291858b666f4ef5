"""Budgeted and warm-started searches through the real command line (digits, seconds)."""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

import optuna
from conftest import ROOT, run_cli
from optuna.trial import TrialState

TINY = str(ROOT / "tests" / "spaces" / "tiny.toml")


def _budgeted(tmp_path, budget: int, space: str = TINY):
    start = time.perf_counter()
    result = run_cli(
        "--study",
        "b",
        "--studies-dir",
        "studies",
        "--space",
        space,
        "--limit-train",
        "300",
        "--budget",
        f"{budget}s",
        "--recycle-mb",
        "0",
        cwd=tmp_path,
    )
    wall = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"budget {budget}s bought" in result.stdout
    study = optuna.load_study(study_name="b", storage=f"sqlite:///{tmp_path / 'studies' / 'b.db'}")
    trials = study.get_trials()
    assert trials[0].user_attrs.get("baseline")  # the recipe first
    assert all(t.user_attrs.get("phase") in ("early", "explore", "branch", "final") for t in trials)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    final = [t for t in trials if t.user_attrs.get("phase") == "final" and t.state == TrialState.COMPLETE]
    assert final, "the rest of the budget is the final run's"
    attrs = final[0].user_attrs  # its schedule ran on the clock; the config says the epochs it ran
    assert attrs["pace_until"] <= trials[0].datetime_start.timestamp() + budget + 1 and attrs["paced"].startswith(
        "schedule paced"
    )
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    assert (
        max(ends) - min(t.datetime_start for t in trials)
    ).total_seconds() < budget + 10  # one validation at most past it
    assert wall < budget + 60  # start-up (TensorFlow, data) is the rest
    return result, trials, attrs


def test_a_short_budget_trains_the_recipe_early_then_with_the_time_left_and_ends_on_time(tmp_path):
    result, trials, attrs = _budgeted(tmp_path, 40)
    assert "too short to spend on exploring (under 60s" in result.stdout  # digits' epochs are short, the budget too
    assert trials[0].user_attrs["phase"] in ("early", "final")  # early when the probe left it time
    assert attrs["config"]["train"]["epochs"] == len(attrs["epoch_seconds"]) > 3 and "continued_from" not in attrs


def test_a_rich_budget_branches_changes_from_the_recipe_and_continues_the_winner(tmp_path):
    wide = tmp_path / "wide.toml"  # the tiny space with a net twice as wide as the digits recipe's 32 filters
    wide.write_text(Path(TINY).read_text().replace("choices = [16, 32]", "choices = [16, 32, 64]"))
    # 100 s: the probe, the wider net's timing and the trunk's set-up come out of the budget first; at 75 s
    # on a loaded machine (two test processes beside two benchmark runs) the trunk ended too late for any branch
    result, trials, attrs = _budgeted(tmp_path, 100, str(wide))
    plan = re.search(
        r"budget 100s buys about \d+ epochs of the recipe .*: the recipe trains (\d+) epochs, then its "
        r"weights continue (\d+) more as they are and with one change at a time",
        result.stdout,
    )
    assert plan, result.stdout  # judged at a length that decides, not 3 epochs
    trunk_epochs, branch_epochs = int(plan.group(1)), int(plan.group(2))
    assert trials[0].user_attrs["phase"] == "explore" and trials[0].params["epochs"] == trunk_epochs > 3
    branches = [t for t in trials if t.user_attrs.get("phase") == "branch"]
    control = branches[0]  # the recipe continued unchanged, then the tiny space's lever: block dropout 0.1
    assert control.user_attrs["control"] and control.user_attrs["continued_from"] == 0
    assert control.user_attrs["continued_epochs"] == trunk_epochs and control.params["epochs"] == branch_epochs
    # the lever's branch: when it fits before half the budget (on a loaded machine the trunk's epochs
    # are slower and only the control may fit; the plan is then the control continued)
    lever = branches[1] if len(branches) > 1 else None
    if lever is not None:
        assert lever.user_attrs["lever"] == {"block_dropout": 0.1} and lever.user_attrs["continued_from"] == 0
        assert lever.user_attrs["config"]["train"]["epochs"] == trunk_epochs + branch_epochs  # all it trained
    # a budget this rich pays for the wider net (where the machine times it at 60 epochs or more):
    # the queued recipe trial trains it, and so does every trial after it
    widened = "a budget this rich pays for a wider net: 64 base filters instead of the recipe's 32" in result.stdout
    assert {t.params["base_filters"] for t in trials} == {64 if widened else 32}, result.stdout
    assert widened == (f"  {'a budget this rich pays for a wider net'}" in result.stdout.split("bought")[-1])
    # the final run continued from the weights of the better branch: all their epochs count
    source = trials[attrs["source"]]
    assert source in branches and attrs["continued_from"] == source.number
    assert attrs["continued_epochs"] == trunk_epochs + branch_epochs
    assert attrs["config"]["train"]["epochs"] == attrs["continued_epochs"] + len(attrs["epoch_seconds"])
    assert source.user_attrs["checkpoint"].endswith(f"trial-{source.number}.weights.h5")
    assert list((tmp_path / "studies" / "b-artifacts" / "checkpoints").iterdir()) == []  # removed once the final ran
    if lever is not None:
        assert "learned (each explored change against the recipe at the same schedule length):" in result.stdout
        assert f"block_dropout 0.1: {lever.value:.4f} against the recipe's {control.value:.4f} at " in result.stdout


def test_warm_start_queues_the_earlier_best_and_says_what_it_took(tmp_path, tiny_study):
    result = run_cli(
        "--study",
        "warm",
        "--studies-dir",
        str(tiny_study.studies_dir),
        "--space",
        TINY,
        "--warm-start",
        tiny_study.name,
        "--trials",
        "3",
        "--epochs",
        "1",
        "--limit-train",
        "300",
        "--recycle-mb",
        "0",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"warm start from {tiny_study.name}: took " in result.stdout
    study = optuna.load_study(study_name="warm", storage=f"sqlite:///{tiny_study.studies_dir / 'warm.db'}")
    record = study.user_attrs["warm_start"]
    assert record["studies"] == [tiny_study.name] and record["taken"]
    earlier = tiny_study.load()
    best = max((t for t in earlier.get_trials(states=(TrialState.COMPLETE,))), key=lambda t: t.value)
    queued = [t for t in study.trials if t.user_attrs.get("warm_start")]
    assert queued[0].user_attrs["warm_start"] == f"{tiny_study.name}#{best.number}"
    for key, value in best.params.items():
        assert queued[0].params[key] == value


def test_warm_start_says_why_a_configuration_was_not_taken(tmp_path, tiny_study):
    narrow = tmp_path / "narrow.toml"
    narrow.write_text(f'extends = "{TINY}"\n[optimizer]\nname = "sgd"\nlearning_rate = {{ low = 0.5, high = 1.0 }}\n')
    result = run_cli(
        "--study",
        "narrow",
        "--studies-dir",
        str(tiny_study.studies_dir),
        "--space",
        str(narrow),
        "--warm-start",
        tiny_study.name,
        "--trials",
        "1",
        "--epochs",
        "1",
        "--limit-train",
        "300",
        "--recycle-mb",
        "0",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "not taken:" in result.stdout and "optimizer.name is 'adam', which this space fixes at 'sgd'" in result.stdout
    )


def test_warm_start_counts_what_it_queued(tmp_path, tiny_study):
    """A study named twice is read once; a resumed study already holding the configurations says so."""
    args = (
        "--study",
        "twice",
        "--studies-dir",
        str(tiny_study.studies_dir),
        "--space",
        TINY,
        "--warm-start",
        f"{tiny_study.name},{tiny_study.name}",
        "--trials",
        "1",
        "--epochs",
        "1",
        "--limit-train",
        "300",
        "--recycle-mb",
        "0",
    )
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    took = re.search(r"took (\d+) of (\d+) configurations", first.stdout)
    assert took, first.stdout
    study = optuna.load_study(study_name="twice", storage=f"sqlite:///{tiny_study.studies_dir / 'twice.db'}")
    queued = [t for t in study.trials if t.user_attrs.get("warm_start")]
    assert len({t.user_attrs["warm_start"] for t in queued}) == len(queued) == int(took.group(1))  # no duplicates
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"queued 0: this study already holds {took.group(1)} of them" in again.stdout


def _has_budget(db) -> bool:
    """Whether the study in ``db`` records its budget yet, read without writing: Optuna's
    load_study would create the tables itself, racing the command that is creating them
    (a CI run failed on "table trial_user_attributes already exists")."""
    import sqlite3

    if not db.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
            return bool(con.execute("SELECT 1 FROM study_user_attributes WHERE key = 'budget'").fetchall())
    except sqlite3.OperationalError:  # no such table yet, or locked by the writer
        return False


def test_two_commands_on_one_study_share_its_budget_and_one_final_run(tmp_path):
    """A second terminal on the same study joins the first one's budget (its deadline,
    the time left) instead of running a budget and a final run of its own."""
    import os
    import subprocess
    import sys

    args = [
        sys.executable,
        str(ROOT / "run_search.py"),
        "--study",
        "shared",
        "--studies-dir",
        "studies",
        "--space",
        TINY,
        "--limit-train",
        "300",
        "--budget",
        "75s",
        "--recycle-mb",
        "0",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = tmp_path / "studies" / "shared.db"
    for _ in range(600):  # until the study exists and holds its budget
        time.sleep(0.1)
        if _has_budget(db):
            break
    time.sleep(5)
    second = run_cli(*args[2:], cwd=tmp_path)
    out, err = first.communicate(timeout=200)
    assert first.returncode == 0 and second.returncode == 0, err[-2000:] + second.stderr[-2000:]
    assert re.search(r"joining the study's running budget of 75s, started \d+s ago: \d+s left", second.stdout), (
        second.stdout
    )
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{db}")
    starts = {t.user_attrs.get("budget_start") for t in study.trials}
    assert len(starts) == 1  # every trial of both commands planned from one budget
    finals = [t for t in study.trials if t.user_attrs.get("phase") == "final"]
    assert len(finals) == 1, [(t.number, t.state.name, t.user_attrs.get("phase")) for t in study.trials]


def test_a_rich_budget_keeps_two_workers_busy_and_runs_one_final_run_by_the_deadline(tmp_path):
    """Two worker processes under one rich budget: they explore and branch at the same
    time, exactly one of them runs the final run (the other explores with the time left),
    and every trial ends by the deadline."""
    budget = 90
    result = run_cli(
        "--study",
        "w",
        "--studies-dir",
        "studies",
        "--space",
        TINY,
        "--limit-train",
        "300",
        "--budget",
        f"{budget}s",
        "--workers",
        "2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="w", storage=f"sqlite:///{tmp_path / 'studies' / 'w.db'}")
    trials = study.get_trials()
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    finals = [t for t in trials if t.user_attrs.get("phase") == "final"]
    assert len(finals) == 1 and finals[0].state == TrialState.COMPLETE
    start = study.user_attrs["budget"]["start"]
    assert max(t.datetime_complete.timestamp() for t in trials) < start + budget + 10  # a validation at most past it
    spans = sorted((t.datetime_start.timestamp(), t.datetime_complete.timestamp()) for t in trials)
    assert any(b_start < a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:]))  # two trials at once
    assert any(t.user_attrs.get("phase") == "branch" for t in trials)
