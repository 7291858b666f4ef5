"""The Python API: README's complete custom search, run exactly as printed there."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_snippet(heading: str, path: str = "README.md") -> str:
    """The first ```python block after ``heading`` in README.md (or another page)."""
    text = (ROOT / path).read_text()
    section = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_custom_search_runs_as_printed(tmp_path: Path):
    code = readme_snippet("## From Python")
    assert code == readme_snippet("# Using it from Python", "docs/python-api.md")  # the docs site shows the same
    assert "from_arrays" in code and "run_search" in code and len(code.strip().splitlines()) <= 30
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    best = re.search(r"best val_accuracy (\d\.\d+): cnn", result.stdout)
    test = re.search(r"test accuracy (\d\.\d+)", result.stdout)
    assert best and test, result.stdout
    assert float(best.group(1)) > 0.5 and float(test.group(1)) > 0.5  # 10 classes: chance is 0.1

    import optuna

    study = optuna.load_study(study_name="my-digits", storage=f"sqlite:///{tmp_path / 'studies' / 'my-digits.db'}")
    assert len(study.trials) == 3 and study.trials[0].user_attrs.get("baseline")  # the recipe first, as the command
    config = study.best_trial.user_attrs["config"]
    assert config["train"]["batch_size"] in (32, 64) and config["train"]["label_smoothing"] == 0.1  # the user's space
    assert (
        config["data"]["dataset"] == "my-digits"
        and (tmp_path / "studies" / "my-digits-model" / "model.keras").is_file()
    )


def test_run_search_resumes_the_study_and_refuses_other_data(tmp_path: Path, digits):
    from search import run_search
    from search.errors import StorageError

    space = str(ROOT / "tests" / "tiny_space.toml")
    study = run_search(digits, space, study="s", studies_dir=tmp_path, trials=1, epochs=1)
    assert len(study.trials) == 1
    again = run_search(digits, space, study="s", studies_dir=tmp_path, trials=1, epochs=1)
    assert len(again.trials) == 2
    with pytest.raises(StorageError, match="created with dataset="):
        run_search("fashion_mnist", space, study="s", studies_dir=tmp_path, trials=1)
