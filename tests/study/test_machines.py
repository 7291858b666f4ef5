"""Two machines on one PostgreSQL study, simulated: two commands, each in its own UTS
namespace with its own host name (``unshare --uts``, as root), two workers each, 200
short trials between them.  One machine is lost in the middle of a trial (kill -9 of
its command and its workers, as a power cut): its running trials are failed once their
heartbeat is older than the grace, and the other machine runs them again with the same
parameters.  Every trial number is stored once, none is lost, none is left running."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, cli_env
from pg_server import throwaway_cluster

TINY_SPACE = str(Path(__file__).parents[1] / "tiny_space.toml")
PER_MACHINE = 40
HEARTBEAT = 2


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--uts", "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(
    not _can_unshare(), reason="needs root and unshare --uts (Linux UTS namespaces), as in CI"
)


def _machine(host: str, url: str, cwd: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        str(ROOT / "run_search.py"),
        "--study",
        "machines",
        "--storage",
        url,
        "--workers",
        "2",
        "--trials",
        str(PER_MACHINE),
        "--epochs",
        "1",
        "--limit-train",
        "200",
        "--heartbeat",
        str(HEARTBEAT),
        "--space",
        TINY_SPACE,
    ]
    return subprocess.Popen(
        ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *command],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # its own process group: the whole "machine" is killed at once


def test_a_lost_machine_costs_only_its_running_trials_which_the_other_machine_runs_again(tmp_path):
    import optuna
    from optuna.trial import TrialState

    with throwaway_cluster() as cluster:
        # the study is created first, so the two machines only join it
        first = subprocess.run(
            [
                sys.executable,
                str(ROOT / "run_search.py"),
                "--study",
                "machines",
                "--storage",
                cluster.url,
                "--trials",
                "1",
                "--epochs",
                "1",
                "--limit-train",
                "200",
                "--heartbeat",
                str(HEARTBEAT),
                "--space",
                TINY_SPACE,
                "--recycle-mb",
                "0",
            ],
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert first.returncode == 0, first.stderr[-3000:]
        a, b = _machine("machine-a", cluster.url, tmp_path), _machine("machine-b", cluster.url, tmp_path)
        study = optuna.load_study(study_name="machines", storage=cluster.url)
        end = time.time() + 600
        while time.time() < end:
            trials = study.get_trials()
            running_a = [
                t
                for t in trials
                if t.state == TrialState.RUNNING and str(t.user_attrs.get("worker", "")).startswith("machine-a:")
            ]
            if sum(t.state == TrialState.COMPLETE for t in trials) >= 12 and running_a:
                break
            time.sleep(0.2)
        else:
            pytest.fail("machine-a never ran a trial")
        os.killpg(a.pid, signal.SIGKILL)  # the command and its workers, mid-trial
        killed_at = time.time()
        a.communicate(timeout=60)
        out, err = b.communicate(timeout=900)
        assert b.returncode == 0, err[-3000:]
        trials = study.get_trials()

    assert sorted(t.number for t in trials) == list(range(len(trials)))  # every number once, none lost
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    lost = [t for t in trials if t.state == TrialState.FAIL]
    # machine-a's: named by their worker, or taken by it and killed before their first heartbeat (no
    # worker recorded yet: failed by machine-b once they were older than the grace)
    assert lost and all(
        str(t.user_attrs.get("worker", "")).startswith("machine-a:")
        or ("worker" not in t.user_attrs and "before its first heartbeat" in t.user_attrs["fail_reason"])
        for t in lost
    )
    assert {t.number for t in running_a} <= {t.number for t in lost}  # what it was running when it died
    for t in lost:
        again = [r for r in trials if r.user_attrs.get("retry_of") == t.number]
        assert len(again) == 1 and again[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
        assert str(again[0].user_attrs["worker"]).startswith("machine-b:")
        # the same draws: a trial killed while it was still drawing (define-by-run) has only its first
        # parameters, which the retry keeps; it draws the rest itself
        assert t.params.items() <= again[0].params.items()
        waited = again[0].datetime_start.timestamp() - killed_at
        print(f"trial {t.number} of the lost machine ran again as trial {again[0].number} {waited:.1f}s after the kill")
        # after the heartbeat grace, not before: the grace (3 heartbeats) runs from the trial's last beat,
        # which came up to a heartbeat before the kill (more when a loaded machine delays the beating thread)
        assert 2 * HEARTBEAT - 1 <= waited < 120
    done_by = {
        host: sum(
            str(t.user_attrs.get("worker", "")).startswith(host) for t in trials if t.state == TrialState.COMPLETE
        )
        for host in ("machine-a:", "machine-b:")
    }
    assert done_by["machine-a:"] >= 1 and done_by["machine-b:"] >= PER_MACHINE - len(lost)
    print(f"{len(trials)} trials: {done_by}, {len(lost)} lost with machine-a and run again by machine-b")
