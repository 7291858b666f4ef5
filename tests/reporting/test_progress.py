from __future__ import annotations

import io

from conftest import synthetic_multi_study, synthetic_study

from search.reporting.progress import summary


def test_summary_suggests_the_dashboard_and_export_commands():
    out = io.StringIO()
    study = synthetic_study()
    summary(study, "sqlite:///runs/x.db", out, location_args=" --studies-dir runs")
    text = out.getvalue()
    name = study.study_name
    assert f"dashboard: python run_search.py dashboard --study {name} --studies-dir runs\n" in text
    assert f"export:    python run_search.py export --study {name} --studies-dir runs\n" in text
    assert "optuna-dashboard sqlite" not in text


def test_a_search_ends_with_commands_that_work(tiny_study):
    assert "dashboard: python run_search.py dashboard --study tiny-digits\n" in tiny_study.search_output
    assert "export:    python run_search.py export --study tiny-digits\n" in tiny_study.search_output


def test_a_multi_objective_summary_lists_the_front_and_how_to_export_a_point():
    out = io.StringIO()
    study = synthetic_multi_study()
    summary(study, "sqlite:///runs/x.db", out)
    text = out.getvalue()
    assert "Pareto front of val_accuracy against params: 3 trials" in text
    table = text.split("Pareto front of")[1].splitlines()[1:5]
    assert [line.split() for line in table] == [
        ["trial", "val_accuracy", "params"],
        ["#1", "0.9500", "48,000"],
        ["#2", "0.8500", "9,000"],
        ["#0", "0.6000", "1,200"],
    ]
    assert (
        "export:    python run_search.py export --study "
        f"{study.study_name} --trial 1   (any point of the front: 1, 2, 0)" in text
    )
    assert "best value" not in text


def test_a_multi_objective_trial_line_shows_its_values_and_the_front():
    from search.reporting.progress import TrialPrinter

    out = io.StringIO()
    study = synthetic_multi_study()
    TrialPrinter(out)(study, study.trials[2])
    TrialPrinter(out)(study, study.trials[4])  # failed: no values
    first, failed = out.getvalue().splitlines()
    assert first.startswith("trial    2  COMPLETE  val_accuracy 0.8500  params 9,000  front #1 #2 #0 (3 trials)")
    assert failed.startswith("trial    4  FAIL      val_accuracy -  params -  front #1 #2 #0 (3 trials)")
    assert failed.endswith("diverged: training loss became nan at epoch 1, batch 3")
