"""Worker plans (pure: which GPU, threads and environment each worker gets) and the
shared trial budget, with real spawned processes running a tiny objective (no
TensorFlow), so many trials race on one SQLite file in seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from search.core.space_files import load_space
from search.errors import UsageError
from search.study.placement import WorkerPlan, parse_gpus, plan_workers
from search.study.samplers import sampler_seed
from search.study.settings import StudySettings
from search.study.storage import create_or_load
from search.study.workers import SearchJob, run


def test_one_worker_runs_here_with_tensorflow_defaults():
    (plan,) = plan_workers(None, (), cores=2)
    assert plan == WorkerPlan(0)  # no environment, TensorFlow picks its threads


@pytest.mark.parametrize(
    "workers, cores, intra, inter",
    [(2, 2, 1, 1), (4, 2, 1, 1), (3, 16, 5, 2), (2, 16, 8, 2), (4, 8, 2, 1)],
)
def test_cpu_workers_share_the_cores(workers, cores, intra, inter):
    plans = plan_workers(workers, (), cores=cores)
    assert [p.index for p in plans] == list(range(workers))
    assert {(p.intra_threads, p.inter_threads) for p in plans} == {(intra, inter)}
    assert all(p.env == () for p in plans)  # CPU workers change no environment


def test_one_worker_per_gpu_sees_only_its_own():
    plans = plan_workers(None, ("0", "1", "2", "3"), cores=16, mixed_precision=True)
    assert [dict(p.env) for p in plans] == [{"CUDA_VISIBLE_DEVICES": g} for g in "0123"]
    assert all(p.intra_threads == 4 and p.mixed_precision for p in plans)
    assert plans[2].describe() == "worker 2: GPU 2, 4 TensorFlow threads, mixed precision"


def test_more_workers_than_gpus_go_round_robin():
    plans = plan_workers(5, ("1", "3"), cores=8)
    assert [p.gpu for p in plans] == ["1", "3", "1", "3", "1"]


def test_a_single_gpu_still_gets_its_own_process():
    (plan,) = plan_workers(None, ("GPU-8f3a1c2e-0000-4bcd-9e6f-1234567890ab",), cores=4)
    assert plan.gpu.startswith("GPU-") and plan.intra_threads == 4  # env set: runs in a spawned worker


@pytest.mark.parametrize(
    "text, expected", [(None, ()), ("0", ("0",)), ("0, 1,2", ("0", "1", "2")), ("0,0", ("0", "0"))]
)
def test_parse_gpus(text, expected):
    assert parse_gpus(text) == expected


@pytest.mark.parametrize("text", ["", "0,,1", "cuda:0", "one"])
def test_parse_gpus_refuses_what_is_not_a_gpu(text):
    with pytest.raises(UsageError, match="--gpus"):
        parse_gpus(text)


def test_the_expected_retracing_warning_is_dropped_and_others_kept():
    import logging

    from search.study.placement import QuietRetracing

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, message, None, None)

    quiet = QuietRetracing()
    assert not quiet.filter(
        record("5 out of the last 15 calls to <function f> triggered tf.function retracing. Tracing is expensive")
    )
    assert quiet.filter(record("Skipping variable loading for optimizer"))


def test_zero_workers_is_refused():
    with pytest.raises(UsageError, match="at least 1"):
        plan_workers(0, (), cores=2)


def test_sampler_seeds_differ_per_worker_and_one_process_keeps_seed_plus_done():
    assert sampler_seed(7, 5) == 12
    seeds = {sampler_seed(7, 5, w) for w in range(8)}
    assert len(seeds) == 8
    # reproducible: another process (its own hash seed) gives worker 3 the same seed
    code = "from search.study.samplers import sampler_seed; print(sampler_seed(7, 5, 3))"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "123"}
    )
    assert int(other.stdout) == sampler_seed(7, 5, 3) != sampler_seed(7, 5, 2)


def test_mixed_precision_is_set_before_training():
    """``--mixed-precision``: the worker's Keras policy is mixed_float16 (float16 compute,
    float32 weights); the plain plan leaves float32."""
    code = (
        "import keras\n"
        "from search.study.placement import WorkerPlan, configure_tensorflow\n"
        "configure_tensorflow(WorkerPlan(0, mixed_precision={flag}))\n"
        "print(keras.mixed_precision.global_policy().name)"
    )
    for flag, policy in ((True, "mixed_float16"), (False, "float32")):
        result = subprocess.run(
            [sys.executable, "-c", code.format(flag=flag)], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip().splitlines()[-1] == policy


# --- real processes, a tiny objective ---------------------------------------------------
# Module-level so spawned workers can import them.


def no_setup(plan: WorkerPlan) -> None:
    pass


def no_data() -> None:
    return None


def tiny_objective(data):
    return _tiny


def _tiny(trial) -> float:
    trial.set_user_attr("cuda", os.environ.get("CUDA_VISIBLE_DEVICES"))
    trial.set_user_attr("pid", os.getpid())
    x = trial.suggest_float("x", -2.0, 2.0)
    time.sleep(0.02)
    return x * x


LEAK_MB = 8
_kept: list[bytes] = []


def _leaky(trial) -> float:
    """Keeps 8 MiB of written memory per trial, as a leaking training step would."""
    _kept.append(b"\x01" * (LEAK_MB * 2**20))
    return _tiny(trial)


def leaky_objective(data):
    return _leaky


def make_job(url: str, trials: int, objective=tiny_objective, recycle_mb: float | None = None) -> SearchJob:
    settings = StudySettings.of(dataset="digits", space=load_space("cnn").to_dict(), direction="minimize")
    create_or_load("race", url, settings)  # as the command does: created before workers start
    return SearchJob("race", url, settings, trials, None, no_data, objective, setup=no_setup, recycle_mb=recycle_mb)


def test_four_workers_run_exactly_the_budget_on_sqlite(sqlite_url):
    import optuna
    from optuna.trial import TrialState

    plans = plan_workers(4, ("3", "5"), cores=2)
    outcome = run(make_job(sqlite_url, 40), plans)
    assert outcome.exit_code == 0 and outcome.trials == 40
    trials = optuna.load_study(study_name="race", storage=sqlite_url).get_trials()
    assert sorted(t.number for t in trials) == list(range(40))  # none lost, none twice
    assert all(t.state == TrialState.COMPLETE for t in trials)
    seen: dict[int, set] = defaultdict(set)
    for t in trials:
        seen[t.user_attrs["pid"]].add(t.user_attrs["cuda"])
    assert len(seen) >= 2  # several processes took part
    assert all(len(devices) == 1 for devices in seen.values())  # each saw only its own GPU
    assert set().union(*seen.values()) <= {"3", "5"}
    assert len({json.dumps(t.params) for t in trials}) == 40  # no two workers proposed the same x


def test_one_worker_runs_in_this_process(sqlite_url):
    import optuna

    outcome = run(make_job(sqlite_url, 3), plan_workers(None, (), cores=2))
    trials = optuna.load_study(study_name="race", storage=sqlite_url).get_trials()
    assert outcome.trials == 3 and [t.number for t in trials] == [0, 1, 2]
    assert {t.user_attrs["pid"] for t in trials} == {os.getpid()}


def test_a_worker_whose_memory_grew_past_the_limit_is_replaced_between_trials(sqlite_url, capfd):
    import optuna
    from optuna.trial import TrialState

    outcome = run(make_job(sqlite_url, 10, leaky_objective, recycle_mb=2.5 * LEAK_MB), plan_workers(None, (), cores=2))
    assert outcome.exit_code == 0 and outcome.trials == 10
    trials = optuna.load_study(study_name="race", storage=sqlite_url).get_trials()
    assert [t.number for t in trials] == list(range(10)) and all(t.state == TrialState.COMPLETE for t in trials)
    per_process: dict[int, list[int]] = defaultdict(list)
    for t in trials:
        per_process[t.user_attrs["pid"]].append(t.number)
    assert os.getpid() not in per_process  # even one worker runs in a child, to be replaceable
    # Growth is measured from the first trial's end: after 4 trials a process holds 24 MiB
    # more than then, past the 20 MiB limit, so no process runs a 5th trial.
    assert max(len(numbers) for numbers in per_process.values()) <= 4
    assert len(per_process) >= 3
    assert all(numbers == list(range(numbers[0], numbers[-1] + 1)) for numbers in per_process.values())
    assert "a fresh process takes over" in capfd.readouterr().out


def test_one_replaceable_worker_samples_as_one_process_does(sqlite_url, tmp_path):
    """Run in a child (to be replaceable) or here, one worker proposes the same trials."""
    import optuna

    here_url = f"sqlite:///{tmp_path / 'here.db'}"
    run(make_job(here_url, 5), plan_workers(None, (), cores=2))
    run(make_job(sqlite_url, 5, recycle_mb=1000.0), plan_workers(None, (), cores=2))
    here, child = (optuna.load_study(study_name="race", storage=u).get_trials() for u in (here_url, sqlite_url))
    assert {t.user_attrs["pid"] for t in here} == {os.getpid()} and os.getpid() not in {
        t.user_attrs["pid"] for t in child
    }
    assert [t.params for t in child] == [t.params for t in here]


def test_without_a_memory_limit_no_worker_is_replaced(sqlite_url):
    import optuna

    outcome = run(make_job(sqlite_url, 6, leaky_objective, recycle_mb=None), plan_workers(2, (), cores=2))
    trials = optuna.load_study(study_name="race", storage=sqlite_url).get_trials()
    assert outcome.trials == 6 and len(trials) == 6
    assert len({t.user_attrs["pid"] for t in trials}) <= 2  # 48 MiB kept, and still the 2 workers it started


def _create(url: str, barrier) -> None:
    barrier.wait()  # all at the same moment
    create_or_load("race", url, StudySettings.of(dataset="digits", space=load_space("cnn").to_dict()))


def test_commands_creating_one_fresh_sqlite_study_at_once_all_succeed(sqlite_url):
    """Two machines' (or shells') commands racing on a fresh database: the losers retry."""
    import multiprocessing

    import optuna

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(5)
    procs = [ctx.Process(target=_create, args=(sqlite_url, barrier)) for _ in range(5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 5
    summaries = optuna.get_all_study_summaries(storage=sqlite_url)
    assert [s.study_name for s in summaries] == ["race"] and "cnn_search" in summaries[0].user_attrs


def tiny_two_objectives(data):
    return _tiny_two


def _tiny_two(trial) -> tuple[float, float]:
    x = trial.suggest_float("x", -2.0, 2.0)
    return -x * x, float(trial.suggest_int("size", 1, 100))


def test_workers_load_a_multi_objective_study_with_the_recorded_settings(sqlite_url):
    import optuna
    from optuna.study import StudyDirection

    settings = StudySettings.of(
        dataset="digits", space=load_space("cnn").to_dict(), objectives="accuracy,params", pruner="none"
    )
    create_or_load("race", sqlite_url, settings)
    job = SearchJob("race", sqlite_url, settings, 6, None, no_data, tiny_two_objectives, setup=no_setup)
    outcome = run(job, plan_workers(2, (), cores=2))
    assert outcome.exit_code == 0 and outcome.trials == 6
    study = optuna.load_study(study_name="race", storage=sqlite_url)
    assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    assert sorted(t.number for t in study.trials) == list(range(6))
    assert all(len(t.values) == 2 for t in study.trials) and study.best_trials


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(stat))
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc to find the worker processes")
def test_workers_end_when_the_command_is_killed(tmp_path):
    """kill -9 of the command: its workers stop within seconds instead of training on."""
    import signal
    import subprocess
    import sys

    from conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    main = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run_search.py"),
            "--study",
            "k",
            "--studies-dir",
            "studies",
            "--workers",
            "2",
            "--trials",
            "40",
            "--epochs",
            "200",
            "--limit-train",
            "300",
            "--space",
            str(ROOT / "tests" / "spaces" / "tiny.toml"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        workers: set[int] = set()
        while time.time() < deadline and len(workers) < 2:
            workers = {p for p in _children(main.pid) if "spawn_main" in _cmdline(p)}
            time.sleep(0.5)
        assert len(workers) == 2, "the workers did not start"
        time.sleep(3)
        main.send_signal(signal.SIGKILL)
        main.wait()
        deadline = time.time() + 30
        while time.time() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.5)
        assert not any(_alive(p) for p in workers), "workers went on after their command was killed"
    finally:
        if main.poll() is None:
            main.kill()


def _create_with_split(url: str, barrier, val_split: float, results) -> None:
    from search.errors import StorageError

    barrier.wait()
    try:
        create_or_load(
            "mixed", url, StudySettings.of(dataset="digits", space=load_space("cnn").to_dict(), val_split=val_split)
        )
        results[val_split] = "ok"
    except StorageError as e:
        results[val_split] = str(e)


def test_commands_creating_one_study_at_once_with_other_settings_leave_one_standing(sqlite_url):
    """Issue 12: two commands create one new study with --val-split 0.1 and 0.2 at once;
    the study records one split, and the command whose split it is not is refused."""
    import multiprocessing

    import optuna

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Manager().dict()
    procs = [ctx.Process(target=_create_with_split, args=(sqlite_url, barrier, split, results)) for split in (0.1, 0.2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    recorded = optuna.load_study(study_name="mixed", storage=sqlite_url).user_attrs["cnn_search"]["config"]["data"][
        "val_split"
    ]
    assert results[recorded] == "ok"
    loser = 0.2 if recorded == 0.1 else 0.1
    assert f"val_split={recorded!r}" in results[loser] and "nothing was run" in results[loser]


def _failed_elsewhere(trial) -> float:
    """Another worker fails this trial as silent while it runs (its heartbeat was late)."""
    x = trial.suggest_float("x", -2.0, 2.0)
    if trial.number == 0:
        from optuna.trial import TrialState

        trial.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        trial.set_user_attr("after", 1)  # what the training callbacks do next: refused, the trial is over
    return x * x


def failed_elsewhere_objective(data):
    return _failed_elsewhere


def test_a_worker_whose_trial_was_failed_elsewhere_goes_on(sqlite_url, capsys):
    """A busy machine can starve a live worker's heartbeat past the grace; another worker
    then fails its trial and queues it again.  The live worker says so and goes on
    (it used to crash with "Cannot tell a FAIL trial" and a traceback)."""
    job = make_job(sqlite_url, 3, objective=failed_elsewhere_objective)
    outcome = run(job, plan_workers(1, (), cores=1))
    assert outcome.exit_code == 0 and outcome.trials == 3
    import optuna

    study = optuna.load_study(study_name="race", storage=sqlite_url)
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "COMPLETE", "COMPLETE"]
    err = capsys.readouterr().err
    assert "marked failed by another worker" in err and "Traceback" not in err
