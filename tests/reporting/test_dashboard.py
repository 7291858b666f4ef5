"""A real optuna-dashboard process on the tiny study: its HTTP API, the trials'
artifacts, a real headless browser, and a clean stop on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

CHROMIUM = Path("/usr/bin/chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 10.0) -> bytes:
    # optuna-dashboard's static files answer 500 without Accept-Encoding; browsers send it
    request = urllib.request.Request(url, headers={"Accept-Encoding": "identity"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def start_dashboard(study, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_search.py"), "dashboard", *study.where, "--port", str(port)],
        cwd=study.cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell running pytest in the background ignores SIGINT, and children inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_until_up(proc: subprocess.Popen, base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dashboard exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            get(f"{base}/api/meta", timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    pytest.fail(f"dashboard did not answer at {base} within {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def dashboard(tiny_study) -> Iterator[str]:
    port = free_port()
    proc = start_dashboard(tiny_study, port)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(proc, base)
        yield base
    finally:
        stop(proc)


def study_detail(base: str, name: str) -> tuple[int, dict]:
    summaries = json.loads(get(f"{base}/api/studies"))["study_summaries"]
    ids = {s["study_name"]: s["study_id"] for s in summaries}
    assert name in ids, f"{name} not among {list(ids)}"
    return ids[name], json.loads(get(f"{base}/api/studies/{ids[name]}"))


def test_dashboard_api_shows_the_study_and_its_trials(dashboard, tiny_study):
    _, detail = study_detail(dashboard, tiny_study.name)
    study = tiny_study.load()
    assert [t["number"] for t in detail["trials"]] == [t.number for t in study.trials]
    assert {t["state"] for t in detail["trials"]} == {t.state.name.title() for t in study.trials}
    assert detail["has_intermediate_values"] is True
    for served, stored in zip(detail["trials"], study.trials):
        steps = {v["step"]: v["value"] for v in served["intermediate_values"]}
        assert steps == pytest.approx(stored.intermediate_values)  # the per-epoch learning curve
    assert detail["best_trials"][0]["number"] == study.best_trial.number
    assert json.loads(get(f"{dashboard}/api/meta"))["artifact_is_available"] is True


def test_dashboard_serves_each_trials_curves_and_model_summary(dashboard, tiny_study):
    study_id, detail = study_detail(dashboard, tiny_study.name)
    for trial in detail["trials"]:
        names = {a["filename"]: a for a in trial["artifacts"]}
        n = trial["number"]
        assert set(names) == {f"trial-{n}-curves.png", f"trial-{n}-model.txt"}, trial["state"]
        png = get(
            f"{dashboard}/artifacts/{study_id}/{trial['trial_id']}/{names[f'trial-{n}-curves.png']['artifact_id']}"
        )
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        summary = get(
            f"{dashboard}/artifacts/{study_id}/{trial['trial_id']}/{names[f'trial-{n}-model.txt']['artifact_id']}"
        )
        assert b"Total params" in summary and b"predictions (Dense)" in summary


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium; .ci/run installs it)",
)
def test_a_real_browser_renders_the_study(dashboard, tiny_study, tmp_path):
    page = f"{dashboard}/dashboard"
    assert tiny_study.name.encode() not in get(page)  # the name comes only from the rendered app
    dom = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tiny_study.name in dom.stdout, dom.stderr[-2000:]


def test_ctrl_c_stops_the_dashboard_cleanly(tiny_study):
    port = free_port()
    proc = start_dashboard(tiny_study, port)
    try:
        wait_until_up(proc, f"http://127.0.0.1:{port}")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}/dashboard/studies/" in out and "dashboard stopped" in out
    assert "Traceback" not in err


def test_a_busy_port_or_a_missing_study_is_one_line(tiny_study):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run_cli(
            "dashboard", *tiny_study.where, "--port", str(busy.getsockname()[1]), cwd=tiny_study.cwd, timeout=60
        )
    assert result.returncode == 2 and "choose another --port" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_cli(
        "dashboard", "--study", "nope", "--studies-dir", str(tiny_study.studies_dir), cwd=tiny_study.cwd, timeout=60
    )
    assert result.returncode == 2 and "no study database" in result.stderr
