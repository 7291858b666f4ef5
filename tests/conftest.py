"""Shared fixtures: real data paths (skipped when absent), a temporary SQLite storage,
the digits dataset loaded once, a helper that runs the real command line, one tiny
real study shared by the tests that read a finished search, and one trained model."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


# The modules that start searches in subprocesses, servers, several workers or benchmark
# runs: minutes each.  They are marked ``slow`` so that ``pytest -m "not slow"`` is the fast
# subset to run while working (docs/contributing.md); CI runs everything.
SLOW_MODULES = {
    "tests/test_api.py",
    "tests/test_benchmarks.py",
    "tests/test_benchmarks_overhead.py",
    "tests/cli/test_cli.py",
    "tests/cli/test_custom_model.py",
    "tests/cli/test_tensorboard.py",
    "tests/cli/test_mlflow.py",
    "tests/core/test_textdata.py",
    "tests/final/test_final.py",
    "tests/final/test_serving.py",
    "tests/study/test_database_outage.py",
    "tests/study/test_machines.py",
    "tests/study/test_objectives.py",
    "tests/study/test_postgres.py",
    "tests/study/test_recovery.py",
    "tests/study/test_search_budget.py",
    "tests/study/test_workers.py",
}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if Path(item.path).relative_to(ROOT).as_posix() in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def shared_data(sub: str) -> Path:
    """A folder of ../shared/data, or skip the test saying why."""
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(f"{path} is absent: real-data tests need the shared data folder beside the repo")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


@pytest.fixture(scope="session")
def digits():
    from search.core.config import DataConfig
    from search.core.data import load_dataset

    return load_dataset(DataConfig())


def cli_env() -> dict[str, str]:
    """The environment ``run_cli`` runs the command line in (for tests that start it themselves)."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_cli(*args: str, cwd: Path, timeout: int = 600, user: int | None = None) -> subprocess.CompletedProcess:
    """Run ``python run_search.py ARGS`` as a user would, in ``cwd`` (as ``user``, a uid,
    when given: root can drop to an unprivileged user)."""
    env = cli_env()
    if user is not None:
        env.update(HOME=str(cwd), MPLCONFIGDIR=str(cwd))
    return subprocess.run(
        [sys.executable, str(ROOT / "run_search.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        user=user,
    )


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    """A refusal as promised: exit status 2, one line on stderr starting 'error: ' that holds
    every one of ``words``, and no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    return lines[0]


def write_tinted_photos(folder: Path, per_class: int, size: int, seed: int = 0) -> None:
    """A ``folder:`` dataset of colour images in three classes told apart by their tint
    (red, green, blue): ``folder/class0/0.png`` and on; what the recipe flips."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, tint in enumerate(((200, 40, 40), (40, 200, 40), (40, 40, 200))):
        (folder / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(tint, 50, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"class{c}" / f"{i}.png")


@dataclass(frozen=True)
class TinyStudy:
    """A real study made by the real command line: digits, a small space, 4 trials, 2 epochs."""

    name: str
    cwd: Path
    studies_dir: Path
    search_output: str

    @property
    def url(self) -> str:
        return f"sqlite:///{self.studies_dir / f'{self.name}.db'}"

    @property
    def where(self) -> tuple[str, ...]:
        return ("--study", self.name, "--studies-dir", str(self.studies_dir))

    def load(self):
        import optuna

        return optuna.load_study(study_name=self.name, storage=self.url)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> TinyStudy:
    """Built once for every test that reads a finished search (export, train, best, report,
    dashboard).  Successive halving prunes some trials, so pruned ones are there too."""
    cwd = tmp_path_factory.mktemp("tiny")
    result = run_cli(
        "--study",
        "tiny-digits",
        "--studies-dir",
        "studies",
        "--space",
        str(ROOT / "tests" / "spaces" / "tiny.toml"),
        "--trials",
        "4",
        "--epochs",
        "2",
        "--limit-train",
        "300",
        "--pruner",
        "successive_halving",
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return TinyStudy("tiny-digits", cwd, cwd / "studies", result.stdout)


@pytest.fixture(scope="session")
def trained_digits(tmp_path_factory) -> Path:
    """A model folder written by the real ``train`` command: the digits recipe, 3 epochs."""
    cwd = tmp_path_factory.mktemp("trained")
    result = run_cli("train", "--recipe", "digits", "--epochs", "3", "--out", "model", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "model"


def synthetic_study(direction: str = "maximize"):
    """An in-memory study without training: three complete trials, two pruned ones (one
    reported nothing), one failed, with the user attributes a search stores."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState, create_trial

    distributions = {
        "lr": FloatDistribution(1e-4, 1e-1, log=True),
        "optimizer": CategoricalDistribution(["adam", "sgd"]),
    }
    study = optuna.create_study(direction=direction)
    for value, lr in ((0.5, 0.01), (0.9, 0.02), (0.7, 0.03)):
        study.add_trial(
            create_trial(
                value=value,
                params={"lr": lr, "optimizer": "adam"},
                distributions=distributions,
                intermediate_values={1: value - 0.1, 2: value},
                user_attrs={"history": {"val_accuracy": [value - 0.1, value]}},
            )
        )
    study.add_trial(
        create_trial(
            state=TrialState.PRUNED,
            params={"lr": 0.05, "optimizer": "sgd"},
            distributions=distributions,
            intermediate_values={1: 0.3},
            user_attrs={
                "prune_reason": "pruned after epoch 1: val_accuracy=0.3000 ranked below",
                "diagnosis": ["stuck"],
            },
        )
    )
    study.add_trial(
        create_trial(state=TrialState.PRUNED, params={"lr": 0.06, "optimizer": "sgd"}, distributions=distributions)
    )
    study.add_trial(
        create_trial(
            state=TrialState.FAIL,
            params={"lr": 0.09, "optimizer": "sgd"},
            distributions=distributions,
            user_attrs={
                "fail_reason": "diverged: training loss became nan at epoch 1, batch 3",
                "diagnosis": ["diverged"],
            },
        )
    )
    return study


def synthetic_multi_study(latency: bool = False):
    """An in-memory study of accuracy against model size (and latency) without training: a
    front of three trials (#1 most accurate, #2 middle, #0 smallest), one dominated trial
    (#3), one failed trial (#4), with the user attributes a search stores."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState, create_trial

    distributions = {"lr": FloatDistribution(1e-4, 1e-1, log=True), "filters": CategoricalDistribution([8, 16, 32])}
    names = ["val_accuracy", "params", "latency_ms"][: 3 if latency else 2]
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"][: len(names)])
    study.set_metric_names(names)
    for accuracy, params, ms, lr, filters in (
        (0.6, 1200, 0.02, 0.01, 8),
        (0.95, 48000, 0.09, 0.02, 32),
        (0.85, 9000, 0.05, 0.03, 16),
        (0.8, 50000, 0.1, 0.04, 32),
    ):
        attrs = {"history": {"val_accuracy": [accuracy - 0.1, accuracy]}, "params_count": params, "diagnosis": []}
        if latency:
            attrs |= {
                "latency_ms": ms,
                "latency_measured": {"batch": 32, "warmup": 3, "repeats": 20, "device": "CPU:0", "threads": 0},
            }
        study.add_trial(
            create_trial(
                values=[accuracy, params, ms][: len(names)],
                params={"lr": lr, "filters": filters},
                distributions=distributions,
                user_attrs=attrs,
            )
        )
    study.add_trial(
        create_trial(
            state=TrialState.FAIL,
            params={"lr": 0.09, "filters": 8},
            distributions=distributions,
            user_attrs={
                "fail_reason": "diverged: training loss became nan at epoch 1, batch 3",
                "diagnosis": ["diverged"],
            },
        )
    )
    return study
