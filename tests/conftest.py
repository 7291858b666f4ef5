"""Shared fixtures: real data paths (skipped when absent), a temporary SQLite storage,
the digits dataset loaded once, and a helper that runs the real command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


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
    from search.config import DataConfig
    from search.data import load_dataset

    return load_dataset(DataConfig())


def run_cli(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python run_search.py ARGS`` as a user would, in ``cwd``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, str(ROOT / "run_search.py"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )
