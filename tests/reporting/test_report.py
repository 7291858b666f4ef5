from __future__ import annotations

import re

import pytest
from conftest import run_cli, synthetic_multi_study, synthetic_study

from search.reporting.report import FIGURES, render_report
from search.study.settings import StudySettings

SETTINGS = StudySettings.of(dataset="digits", space={"name": "cnn"})


def test_report_is_one_self_contained_html_file(tiny_study, tmp_path):
    out = tmp_path / "report.html"
    result = run_cli("report", *tiny_study.where, "--out", str(out), cwd=tiny_study.cwd)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    for div_id in FIGURES:
        assert f'id="{div_id}"' in text, div_id
    assert text.count("plotly.js v") == 1  # plotly's JavaScript, inline, once
    assert not re.search(r"<script[^>]+src=", text)  # nothing fetched from the network
    study = tiny_study.load()
    assert f"best val_accuracy {study.best_value:.4f} (trial #{study.best_trial.number})" in text
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert f"<p>{len(pruned)} pruned, 0 failed, out of {len(study.trials)} trials.</p>" in text
    for t in pruned:
        assert t.user_attrs["prune_reason"] in text
    assert "Not drawn" not in text


def test_report_explains_what_it_cannot_draw_and_groups_reasons():
    study = synthetic_study()
    text = render_report(study, SETTINGS, "sqlite:///x.db")
    # importances are computed from three complete trials whose lr differs: drawn
    assert 'id="plot-importances"' in text
    assert "<p>2 pruned, 1 failed, out of 6 trials.</p>" in text
    assert "<td>after epoch 1</td><td class=num>1</td><td>#3</td>" in text
    assert "<td>no reason recorded</td><td class=num>1</td><td>#4</td>" in text
    assert "<td>diverged: training loss became nan at epoch 1, batch 3</td><td class=num>1</td><td>#5</td>" in text
    assert "<td>1</td><td>1</td><td>0.9000</td><td>COMPLETE</td>" in text.replace(" class=num", "")
    # what went wrong, in sentences (the failed trial diverged with lr 0.09; a pruned one was stuck)
    assert "<li>1 of 6 trials diverged; it had lr &gt;= 0.09" in text
    assert "<li>1 of 6 trials stayed near chance" in text


def test_report_of_a_study_with_one_completed_trial():
    import optuna
    from optuna.trial import create_trial

    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(value=0.5, params={}, distributions={}, intermediate_values={1: 0.5}))
    text = render_report(study, SETTINGS, "sqlite:///x.db")
    assert "Not drawn: needs at least two completed trials whose parameters differ." in text
    assert "Not drawn: needs at least two completed trials." in text
    assert 'id="plot-history"' in text and 'id="plot-intermediate"' in text
    assert text.count("plotly.js v") == 1


def test_a_multi_objective_report_shows_the_pareto_front():
    from search.reporting.report import MULTI_OBJECTIVE_FIGURES

    settings = StudySettings.of(
        dataset="digits", space={"name": "cnn"}, objectives="accuracy,params,latency", pruner="none"
    )
    text = render_report(synthetic_multi_study(latency=True), settings, "sqlite:///x.db")
    assert "val_accuracy (maximize), params (minimize), latency_ms (minimize); 5 trials" in text
    assert "Pareto front: 3 trials (#1, #2, #0)" in text and "<h2>Pareto front</h2>" in text
    plain = text.replace(" class=num", "")
    assert "<td>1</td><td>1</td><td>0.9500</td><td>48,000</td><td>0.090</td><td>COMPLETE</td>" in plain
    for div_id in [*MULTI_OBJECTIVE_FIGURES, "plot-history", "plot-importances", "plot-parallel"]:
        assert f'id="{div_id}"' in text, div_id
    assert "Not drawn: a multi-objective study reports no per-epoch values" in text
    assert text.count("plotly.js v") == 1


def test_report_of_a_trained_model(trained_digits, tmp_path):
    import json

    result = run_cli("report", "--model", str(trained_digits), "--out", "model.html", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "model.html").read_text()
    assert text.count('src="data:image/png;base64,') == 3 and "Not drawn" not in text
    assert not re.search(r"<(img|script)[^>]+src=\"(?!data:)", text)  # nothing outside the file
    test = json.loads((trained_digits / "metrics.json").read_text())["test"]
    assert f"accuracy {test['accuracy']:.4f}" in text
    report = test["classification_report"]
    for name in test["class_names"]:
        cells = "".join(f"<td class=num>{report[name][k]:.3f}</td>" for k in ("precision", "recall", "f1-score"))
        assert f"<tr><td>{name}</td>{cells}" in text


def test_report_of_a_study_and_a_model_together(tiny_study, trained_digits, tmp_path):
    out = tmp_path / "both.html"
    result = run_cli("report", *tiny_study.where, "--model", str(trained_digits), "--out", str(out), cwd=tiny_study.cwd)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert 'id="plot-history"' in text and f"<h2>Trained model {trained_digits}</h2>" in text
    for name in ("curves.png", "confusion.png", "mistakes.png"):
        assert text.count(f'<img alt="{name}" style="max-width:100%" src="data:image/png;base64,') == 1, name


def test_report_of_a_model_drawn_before_the_pictures(trained_digits, tmp_path):
    """A folder without confusion.png and mistakes.png: the matrix is drawn from
    metrics.json, the mistakes are a note."""
    import shutil

    old = tmp_path / "old"
    old.mkdir()
    for name in ("metrics.json", "curves.png"):
        shutil.copy(trained_digits / name, old / name)
    result = run_cli("report", "--model", "old", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (old / "report.html").read_text()
    assert text.count('src="data:image/png;base64,') == 2 and "Drawn from metrics.json" in text
    assert "Not drawn: mistakes.png is not in the folder" in text


@pytest.mark.parametrize(
    "args, words",
    [
        ([], ["--study NAME", "--model DIR"]),
        (["--model", "nowhere"], ["--model nowhere", "no such folder"]),
    ],
)
def test_report_without_a_study_or_model_is_one_line(tmp_path, args, words):
    result = run_cli("report", *args, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert all(w in line for w in words), line


EDITED_METRICS = {
    # what is done to metrics.json's test section: words of the one line
    "empty test section": (lambda m: m.update(test={}), ["has no 'test' section"]),
    "accuracy 'high'": (lambda m: m["test"].update(accuracy="high"), ["test.accuracy", "a number", "'high'"]),
    "ragged confusion matrix": (lambda m: m["test"]["confusion_matrix"][3].pop(), ["test.confusion_matrix", "square"]),
    "matrix of another size": (lambda m: m["test"].update(confusion_matrix=[[1, 0], [0, 1]]), ["10 x 10"]),
    "report row without keys": (
        lambda m: m["test"]["classification_report"].update({"3": {"precision": 1}}),
        ["classification_report['3']", "f1-score"],
    ),
    "params not a count": (lambda m: m.update(params="many"), ["params", "a count"]),
}


@pytest.mark.parametrize("case", list(EDITED_METRICS), ids=list(EDITED_METRICS))
def test_an_edited_metrics_json_is_one_line(trained_digits, tmp_path, case):
    import json
    import shutil

    edit, words = EDITED_METRICS[case]
    folder = tmp_path / "m"
    shutil.copytree(trained_digits, folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    edit(metrics)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    result = run_cli("report", "--model", "m", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert all(w in line for w in words), line
    assert not (folder / "report.html").exists()


def test_report_says_what_a_budget_bought_and_learned():
    import optuna
    from optuna.distributions import IntDistribution
    from optuna.trial import create_trial

    from search.reporting.report import _budget_section

    def trial(value, epochs, **attrs):
        return create_trial(
            value=value,
            params={"epochs": epochs},
            distributions={"epochs": IntDistribution(1, 500)},
            user_attrs={"budget_start": 1_000_000.0, "epoch_seconds": [1.0] * epochs, **attrs},
        )

    study = optuna.create_study(direction="maximize")
    study.add_trial(trial(0.80, 12, phase="explore", baseline=True))
    study.add_trial(trial(0.83, 12, phase="explore", lever={"cutout": 0.5}))
    study.add_trial(trial(0.86, 40, phase="final", source=1, continued_from=1, continued_epochs=12, paced="paced"))
    text = _budget_section(study, study.get_trials())
    assert "<h2>What the budget bought</h2>" in text and "the recipe" in text
    assert "cutout 0.5: 0.8300 against the recipe&#x27;s 0.8000 at 12 epochs (+3.0 points): helped" in text
    assert "trial 1 again, continued from its weights" in text
    assert "the final run trained trial 1" in text
    assert _budget_section(optuna.create_study(), []) == ""
    # measured on 100 validation images, +3 points is inside their noise (5.7 points)
    study.set_user_attr("budget", {"start": 1_000_000.0, "seconds": 600.0, "val_images": 100})
    text = _budget_section(study, study.get_trials())
    assert "(+3.0 points): within the noise of the validation images (5.7 points)" in text
    assert "branching stopped" not in text

    # branches: the control, then two changes that did not beat it: the summary says branching stopped there
    study = optuna.create_study(direction="maximize")
    study.add_trial(trial(0.80, 12, phase="explore", baseline=True, checkpoint="w"))
    study.add_trial(trial(0.82, 16, phase="branch", source=0, control=True, continued_epochs=12))
    study.add_trial(trial(0.81, 16, phase="branch", source=0, lever={"batch_size": 64}, continued_epochs=12))
    study.add_trial(trial(0.83, 16, phase="branch", source=0, lever={"cutout": 0.25}, continued_epochs=12))
    study.add_trial(trial(0.86, 40, phase="final", source=1, continued_from=1, continued_epochs=16, paced="paced"))
    study.set_user_attr("budget", {"start": 1_000_000.0, "seconds": 600.0, "val_images": 1000})
    text = _budget_section(study, study.get_trials())
    assert "branching stopped after 2 changes in a row did not beat the recipe" in text, text
    assert "the final run trained the recipe" in text
    assert "wider net" not in text
    # a widened budget: the report names the net every trial of that budget trained (not another budget's)
    widening = {"recipe": 48, "width": 96, "recipe_seconds": 9.85, "seconds": 35.5}
    study.set_user_attr("budget", {"start": 1_000_000.0, "seconds": 2400.0, "val_images": 1000, "widening": widening})
    text = _budget_section(study, study.get_trials())
    assert "a budget this rich pays for a wider net: 96 base filters instead of the recipe&#x27;s 48" in text, text
    assert "branching stopped after 2 changes" in text  # the rest stays
    study.set_user_attr("budget", {"start": 2_000_000.0, "seconds": 2400.0, "widening": widening})
    assert "wider net" not in _budget_section(study, study.get_trials())
