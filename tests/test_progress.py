from __future__ import annotations

import io

from conftest import synthetic_study
from search.progress import summary


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
