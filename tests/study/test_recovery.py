"""Crash recovery with real processes and real signals.

kill -9 of a worker mid-trial: its trial is failed once its heartbeats stop, and the
same parameters run again in a remaining worker or a later run; nothing else is lost.
Ctrl-C (SIGINT): the running trial ends as failed "interrupted" and is queued again,
the process exits 130 with one line, and the same command resumes with that trial.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

TINY_SPACE = str(Path(__file__).parents[1] / "tiny_space.toml")
FAST = ("--space", TINY_SPACE, "--limit-train", "300", "--heartbeat", "1", "--studies-dir", "studies")  # grace: 3 s
TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} |To enable the following instructions)")


def start_cli(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_search.py"), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_training(db: Path, proc: subprocess.Popen, timeout: float = 180) -> tuple[int, str]:
    """(number, worker) of a RUNNING trial whose config is sampled (it is training), read-only."""
    query = (
        "SELECT t.number, w.value_json FROM trials t "
        "JOIN trial_user_attributes c ON c.trial_id = t.trial_id AND c.key = 'config' "
        "JOIN trial_user_attributes w ON w.trial_id = t.trial_id AND w.key = 'worker' "
        "WHERE t.state = 'RUNNING' ORDER BY t.number LIMIT 1"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if db.exists():
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                    row = conn.execute(query).fetchone()
            except sqlite3.OperationalError:  # tables not created yet
                row = None
            if row:
                return row[0], row[1].strip('"')
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no trial started training within {timeout}s")


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def load_trials(db: Path):
    import optuna

    return optuna.load_study(study_name="s", storage=f"sqlite:///{db}").get_trials()


def user_lines(stderr: str) -> list[str]:
    return [line for line in stderr.strip().splitlines() if line and not TF_NOISE.match(line)]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker's parent in /proc")
def test_kill_9_of_a_worker_fails_its_trial_and_it_runs_again(tmp_path: Path):
    from optuna.trial import TrialState

    db = tmp_path / "studies" / "s.db"
    proc = start_cli("--study", "s", "--workers", "2", "--trials", "3", "--epochs", "1", *FAST, cwd=tmp_path)
    victim_trial, worker = wait_for_training(db, proc)
    victim = int(worker.rsplit(":", 1)[1])
    assert parent_of(victim) == proc.pid  # one of our workers, nothing else
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err  # the others finished the budget; the run says a worker died
    assert f"pid {victim}) was killed by SIGKILL" in err and "Traceback" not in err
    # the supervisor knows the worker is dead: its trial is failed and queued at once, as the line says
    # (unless the other worker's heartbeat check, 3 s here, got there first: then that says so)
    assert (
        f"trial {victim_trial:>4}  FAIL      its worker {worker} is gone (killed?); queued to run again" in out
        or f"trial {victim_trial:>4}  FAIL      no heartbeat" in out
    )
    assert load_trials(db)[victim_trial].state == TrialState.FAIL

    resumed = run_cli("--study", "s", "--trials", "1", *FAST, cwd=tmp_path)  # a later worker, within the grace
    assert resumed.returncode == 0, resumed.stderr

    trials = {t.number: t for t in load_trials(db)}
    # each number once; the retry runs in this run or the next, so 3 or 4 trials in all
    assert sorted(trials) == list(range(len(trials))) and len(trials) in (3, 4)
    assert trials[victim_trial].state == TrialState.FAIL
    retries = [t for t in trials.values() if t.user_attrs.get("retry_of") == victim_trial]
    assert len(retries) == 1 and retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retries[0].params == trials[victim_trial].params  # the same trial, run again
    others = [t for t in trials.values() if t.number != victim_trial]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in others)  # nothing else lost


def test_a_rerun_right_after_kill_9_of_the_command_retries_its_trial_at_once(tmp_path: Path):
    """The killed command ran its trial itself (--recycle-mb 0); a rerun within the
    heartbeat grace (30 s by default) sees its process is gone and queues the trial now."""
    from optuna.trial import TrialState

    db = tmp_path / "studies" / "s.db"
    slow = ("--space", TINY_SPACE, "--limit-train", "300", "--studies-dir", "studies", "--recycle-mb", "0")
    proc = start_cli("--study", "s", "--trials", "2", "--epochs", "50", *slow, cwd=tmp_path)
    victim_trial, worker = wait_for_training(db, proc)
    assert int(worker.rsplit(":", 1)[1]) == proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    resumed = run_cli("--study", "s", "--trials", "1", "--epochs", "1", *slow, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (
        f"trial {victim_trial:>4}  FAIL      its worker {worker} is gone (killed?); queued to run again"
        in resumed.stdout
    )
    trials = {t.number: t for t in load_trials(db)}
    assert trials[victim_trial].state == TrialState.FAIL and not [
        t for t in trials.values() if t.state == TrialState.RUNNING
    ]
    retry = [t for t in trials.values() if t.user_attrs.get("retry_of") == victim_trial]
    assert len(retry) == 1 and retry[0].state in (TrialState.COMPLETE, TrialState.PRUNED)  # ran in the rerun


def test_a_trial_running_elsewhere_is_named_with_when_it_would_be_retried(tmp_path: Path, sqlite_url: str):
    import io

    import optuna

    from search.study.recovery import reap_dead

    study = optuna.create_study(study_name="s", storage=sqlite_url)
    other = study.ask()
    other.set_user_attr("worker", "elsewhere:123")
    alive = study.ask()
    alive.set_user_attr("worker", f"{__import__('socket').gethostname()}:{os.getpid()}")
    out = io.StringIO()
    assert reap_dead(study, 30, out=out) == []  # neither is known to be dead
    text = out.getvalue()
    assert f"trial {other.number:>4}  RUNNING   on elsewhere:123" in text and "30s after its last heartbeat" in text
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.RUNNING] * 2


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_and_queued_again(sqlite_url: str):
    import io

    import optuna

    from search.study.recovery import fail_unstarted

    study = optuna.create_study(study_name="s", storage=sqlite_url)
    lost = study.ask()  # asked, then killed before its first heartbeat: no worker, no beat
    lost.suggest_float("lr", 0.1, 1.0)
    started = study.ask()
    started.set_user_attr("worker", "elsewhere:123")  # its heartbeat is Optuna's to judge
    out = io.StringIO()
    assert fail_unstarted(study, 30, out=out) == []  # younger than the grace
    assert fail_unstarted(study, None, out=out) == []  # no heartbeat: nothing is judged
    time.sleep(1.2)
    assert fail_unstarted(study, 1, out=out) == [lost.number]
    trials = study.get_trials()
    assert [t.state for t in trials[:2]] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.RUNNING]
    assert "before its first heartbeat" in trials[0].user_attrs["fail_reason"]
    (retry,) = trials[2:]
    assert retry.state == optuna.trial.TrialState.WAITING and retry.params == {"lr": lost.params["lr"]}
    assert out.getvalue().startswith(f"trial {lost.number:>4}  FAIL      its worker stopped before its first heartbeat")
    assert fail_unstarted(study, 1, out=out) == []  # failed once, queued once


def test_ctrl_c_ends_the_trial_cleanly_and_the_same_command_resumes(tmp_path: Path):
    from optuna.trial import TrialState

    db = tmp_path / "studies" / "s.db"
    command = ("--study", "s", "--trials", "3", "--epochs", "200", *FAST)  # a long trial to interrupt
    proc = start_cli(*command, cwd=tmp_path)
    number, _ = wait_for_training(db, proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert user_lines(err) == [
        f"interrupted: trial {number} stopped, marked failed and queued to run again; run the same command to resume"
    ]

    trials = load_trials(db)
    assert [(t.number, t.state) for t in trials] == [(0, TrialState.FAIL), (1, TrialState.WAITING)]
    assert "interrupted" in trials[0].user_attrs["fail_reason"]
    assert trials[1].user_attrs["retry_of"] == 0 and trials[1].params == trials[0].params

    # The same command resumes (one trial of one epoch here, to keep the test short).
    resumed = run_cli(*command[:2], "--trials", "1", "--epochs", "1", *FAST, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    trials = load_trials(db)
    assert [t.number for t in trials] == [0, 1]
    assert trials[1].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert trials[1].params == trials[0].params
    assert "resuming study 's'" in resumed.stdout


def _diverges(trial) -> float:
    from search.errors import DivergedError

    trial.suggest_float("lr", 0.1, 1.0)
    raise DivergedError("diverged: training loss became nan at epoch 1, batch 3")


def _bug(trial) -> float:
    raise ZeroDivisionError("a bug")


def test_an_explained_failure_logs_no_traceback_and_a_bug_still_raises(caplog):
    """A diverged trial is expected: its reason is stored and the search goes on, with no
    warning or traceback from Optuna.  An unexpected error is stored as the trial's
    failure too, then raised with its traceback."""
    import optuna

    from search.study.recovery import StopRequest
    from search.study.trial import TrialRunner

    study = optuna.create_study()
    with caplog.at_level("WARNING", logger="optuna"):
        TrialRunner(_diverges, StopRequest()).run_one(study)
    assert study.trials[0].state.name == "FAIL" and study.trials[0].user_attrs["fail_reason"].startswith("diverged")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    with pytest.raises(ZeroDivisionError):
        TrialRunner(_bug, StopRequest()).run_one(study)
    assert (
        study.trials[1].state.name == "FAIL" and study.trials[1].user_attrs["fail_reason"] == "ZeroDivisionError: a bug"
    )


def test_an_error_that_an_interrupt_turned_into_still_requeues_the_trial():
    """TensorFlow code may catch the KeyboardInterrupt that Ctrl-C raises and raise e.g. a
    TypeError instead: once a stop was requested, any error ends the trial as interrupted."""
    import optuna

    from search.study.recovery import StopRequest
    from search.study.trial import TrialRunner

    stop = StopRequest()

    def objective(trial):
        trial.suggest_float("x", 0.0, 1.0)
        stop.requested = True  # the signal arrived during training ...
        raise TypeError("Failed to convert elements of (None,) to Tensor.")  # ... and surfaced as this

    study = optuna.create_study()
    runner = TrialRunner(objective, stop)
    trial = runner.run_one(study)
    assert trial.state.name == "FAIL" and runner.interrupted == [trial.number]
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs["retry_of"] == trial.number
    assert (
        waiting[0].params == trial.params and waiting[0].system_attrs["failed_trial"] == trial.number
    )  # Optuna's retry

    stop.requested = False  # without a stop request, the same error is a bug and propagates as itself
    with pytest.raises(TypeError):
        TrialRunner(objective_without_stop, stop).run_one(study)


def objective_without_stop(trial):
    raise TypeError("a bug")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mounts a 200 KiB tmpfs to fill: needs root"
)
def test_a_full_disk_is_one_line_and_the_same_command_resumes(tmp_path: Path):
    from optuna.trial import TrialState

    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(full)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not permitted in this container)")
    command = (
        "--study",
        "s",
        "--studies-dir",
        str(full),
        "--space",
        str(ROOT / "tests" / "spaces" / "tiny.toml"),
        "--limit-train",
        "300",
        "--epochs",
        "1",
    )
    try:
        result = run_cli(*command, "--trials", "8", cwd=tmp_path)
        assert result.returncode == 2, result.stderr[-2000:]
        errors = [line for line in user_lines(result.stderr) if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith("error: disk full (database or disk is full)")
        assert "run the same command to resume" in errors[0] and "Traceback" not in result.stderr
        assert "ran " not in result.stdout  # no claim of trials run
        done = [t for t in load_trials(full / "s.db") if t.state == TrialState.COMPLETE]
        assert done  # what finished before the disk filled is kept
        subprocess.run(["mount", "-o", "remount,size=20m", str(full)], check=True)  # the user makes room
        resumed = run_cli(*command, "--trials", "1", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        trials = load_trials(full / "s.db")
        assert not [t for t in trials if t.state == TrialState.RUNNING]  # the cut trial was failed and queued again
        assert {t.number for t in done} <= {t.number for t in trials if t.state == TrialState.COMPLETE}
    finally:
        subprocess.run(["umount", "--lazy", str(full)], capture_output=True)  # this process may still hold s.db open


def test_a_stop_that_python_swallowed_in_a_weakref_callback_still_interrupts_the_trial(capfd):
    """1 SIGTERM in 4 landed in a weakref callback: Python printed "Exception ignored ...
    KeyboardInterrupt" and the trial trained on to COMPLETE.  Now the swallowed stop is
    not printed, and the trial ends interrupted and queued again."""
    import gc
    import weakref

    import optuna

    from search.study.recovery import StopRequest
    from search.study.trial import TrialRunner

    stop = StopRequest().install()
    try:

        def objective(trial) -> float:
            trial.suggest_float("x", 0.0, 1.0)

            class Thing:
                pass

            thing = Thing()
            ref = weakref.ref(thing, lambda _: stop(signal.SIGTERM, None))  # the handler runs in the callback
            del thing
            gc.collect()
            assert ref() is None and stop.requested
            return 0.5  # training went on: the raise was swallowed

        study = optuna.create_study()
        TrialRunner(objective, stop).run_one(study)
    finally:
        stop.restore()
    first, retry = study.get_trials()
    assert first.state.name == "FAIL" and "interrupted" in first.user_attrs["fail_reason"]
    assert retry.state.name == "WAITING" and retry.params == first.params
    assert "Exception ignored" not in capfd.readouterr().err


def test_stop_check_ends_training_within_a_batch():
    from search.core.deadline import StopCheck

    asked = []
    check = StopCheck(lambda: bool(asked))
    check.on_train_batch_end(0)  # nothing asked: training goes on
    asked.append(1)
    with pytest.raises(KeyboardInterrupt):
        check.on_train_batch_end(1)
