from __future__ import annotations

from conftest import run_cli, synthetic_multi_study, synthetic_study

from search.reporting.leaderboard import format_table, leaderboard


def test_completed_trials_rank_first_then_pruned_ones():
    board = leaderboard(synthetic_study(), top=10, importances={})
    assert [(r.number, r.state) for r in board.rows] == [
        (1, "COMPLETE"),
        (2, "COMPLETE"),
        (0, "COMPLETE"),
        (3, "PRUNED"),
        (4, "PRUNED"),
    ]
    assert [r.value for r in board.rows] == [0.9, 0.7, 0.5, 0.3, None]
    assert [r.epochs for r in board.rows] == [2, 2, 2, 1, 0]
    assert board.columns == ["lr", "optimizer"] and board.constant == {}
    assert board.counts["FAIL"] == 1


def test_minimize_and_columns_that_differ():
    board = leaderboard(synthetic_study("minimize"), top=2, importances={})
    assert [r.number for r in board.rows] == [0, 2]
    assert board.columns == ["lr"] and board.constant == {"optimizer": "adam"}  # same in both rows
    lines = format_table(board).splitlines()
    assert lines[0].split() == ["rank", "trial", "value", "state", "epochs", "diagnosis", "lr"]
    assert lines[2].split() == ["1", "0", "0.5000", "COMPLETE", "2", "-", "0.01"]


def test_the_table_shows_each_trials_diagnosis():
    board = leaderboard(synthetic_study(), top=10, importances={})
    assert [r.diagnosis for r in board.rows] == [(), (), (), ("stuck",), ()]
    row = next(line for line in format_table(board).splitlines() if line.split()[1] == "3")
    assert row.split()[5] == "stuck"


def test_best_command_prints_the_table(tiny_study):
    result = run_cli("best", *tiny_study.where, "--top", "3", cwd=tiny_study.cwd)
    assert result.returncode == 0, result.stderr
    study = tiny_study.load()
    lines = result.stdout.splitlines()
    assert lines[0].startswith("study 'tiny-digits': digits, val_accuracy (maximize);")
    assert lines[1].split()[:6] == ["rank", "trial", "value", "state", "epochs", "diagnosis"]
    first = lines[3].split()
    assert first[:5] == ["1", str(study.best_trial.number), f"{study.best_value:.4f}", "COMPLETE", "2"]
    assert len([row for row in lines if row[:1].isdigit()]) == 3
    same = next((row for row in lines if row.startswith("same in all rows: ")), "")
    for name in study.best_trial.params:  # every parameter: a column, or listed once
        assert name in lines[1].split() or f"{name}=" in same, name


def test_a_multi_objective_board_is_the_pareto_front_with_a_column_per_objective():
    board = leaderboard(synthetic_multi_study(latency=True), top=10, importances={})
    assert board.objectives == ("val_accuracy", "params", "latency_ms") and board.front_size == 3
    assert [(r.number, r.values) for r in board.rows] == [
        (1, (0.95, 48000, 0.09)),
        (2, (0.85, 9000, 0.05)),
        (0, (0.6, 1200, 0.02)),
    ]
    lines = format_table(board).splitlines()
    assert lines[0].split()[:8] == [
        "rank",
        "trial",
        "val_accuracy",
        "params",
        "latency_ms",
        "state",
        "epochs",
        "diagnosis",
    ]
    assert lines[2].split()[:6] == ["1", "1", "0.9500", "48,000", "0.090", "COMPLETE"]
    capped = leaderboard(synthetic_multi_study(), top=2, importances={})
    assert [r.number for r in capped.rows] == [1, 2] and capped.front_size == 3
