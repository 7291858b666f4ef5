"""Run a search's trials in this process, or in N worker processes sharing one study.

The caller has checked every input and created the study (schema included) before
this module starts anything: processes creating a fresh SQLite study at the same moment
fail.  Each worker is a fresh ``spawn``ed process (never a fork of a process that
loaded TensorFlow): its ``CUDA_VISIBLE_DEVICES`` is set before TensorFlow loads, its
TensorFlow threads are limited to its share of the cores, it loads the data once, and
it runs trials until the shared budget is spent.  A worker claims a slot *before* it
starts a trial, so exactly ``--trials`` trials run, however the workers race.

A long search would otherwise grow each process's memory trial after trial (see
``memory``): with ``SearchJob.recycle_mb`` set, a worker whose memory has grown that much
since its first trial exits between trials with ``RECYCLE``, and the parent starts a
fresh one with the same plan.  Then even a single worker runs in a child process; only
``recycle_mb=None`` runs trials in the calling process.

``plan_workers`` (which worker gets which GPU, threads and environment) is a pure
function, so it is tested without a GPU.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from search.errors import DiskFullError, SearchInterrupted, TrialError, UsageError, disk_full
from search.memory import MemoryWatch
from search.recovery import STOP_SIGNALS, Guarded, StopRequest, worker_name
from search.study import GRACE_FACTOR, StudySettings, create_or_load

__all__ = [
    "WorkerPlan",
    "SearchJob",
    "Outcome",
    "available_cores",
    "parse_gpus",
    "plan_workers",
    "configure_tensorflow",
    "run",
    "run_trials",
    "spawns",
    "RECYCLE",
]

RECYCLE = 75  # a worker's exit code: "my memory grew past the limit; start a fresh me" (EX_TEMPFAIL)
GPU_ID = re.compile(r"^(\d+|(GPU|MIG)-[0-9A-Za-z/-]+)$")  # an index or a UUID, as nvidia-smi -L shows


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker process gets: its index, environment, threads and precision."""

    index: int
    env: tuple[tuple[str, str], ...] = ()  # set before TensorFlow loads
    intra_threads: int | None = None  # None: TensorFlow's default (all cores)
    inter_threads: int | None = None
    mixed_precision: bool = False

    @property
    def gpu(self) -> str | None:
        return dict(self.env).get("CUDA_VISIBLE_DEVICES")

    def describe(self) -> str:
        where = f"GPU {self.gpu}" if self.gpu is not None else "CPU"
        threads = f", {self.intra_threads} TensorFlow thread{'s' * (self.intra_threads != 1)}" if self.intra_threads else ""
        return f"worker {self.index}: {where}{threads}{', mixed precision' if self.mixed_precision else ''}"


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def parse_gpus(text: str | None) -> tuple[str, ...]:
    """``"0,1"`` -> ``("0", "1")``; a GPU may repeat to run two workers on it."""
    if text is None:
        return ()
    ids = tuple(t.strip() for t in text.split(","))
    bad = [t for t in ids if not GPU_ID.match(t)]
    if bad:
        raise UsageError(f"--gpus {text!r}: {bad[0]!r} is not a GPU index or UUID; write e.g. --gpus 0,1 (see nvidia-smi -L)")
    return ids


def plan_workers(
    workers: int | None, gpus: Sequence[str] = (), cores: int = 1, mixed_precision: bool = False
) -> tuple[WorkerPlan, ...]:
    """One plan per worker.  With GPUs, worker i sees only ``gpus[i % len(gpus)]``.

    One CPU worker keeps TensorFlow's defaults; several share the cores:
    ``cores // n`` intra-op threads each (at least 1), and 1 inter-op thread (2 when a
    worker has 4 or more cores), so N workers do not fight over the same cores.
    """
    n = workers if workers is not None else max(len(gpus), 1)
    if n < 1:
        raise UsageError(f"--workers must be at least 1, received {n}")
    if n == 1 and not gpus:
        return (WorkerPlan(0, mixed_precision=mixed_precision),)
    share = max(1, cores // n)
    return tuple(
        WorkerPlan(
            index=i,
            env=(("CUDA_VISIBLE_DEVICES", gpus[i % len(gpus)]),) if gpus else (),
            intra_threads=share,
            inter_threads=2 if share >= 4 else 1,
            mixed_precision=mixed_precision,
        )
        for i in range(n)
    )


class QuietRetracing(logging.Filter):
    """Drop TensorFlow's "N out of the last M calls ... triggered tf.function retracing"
    warning: every trial builds a new model, so tracing its train step again is expected
    and the warning's advice does not apply."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def configure_tensorflow(plan: WorkerPlan) -> None:
    """Apply a plan's threads and precision; call before TensorFlow runs anything."""
    import tensorflow as tf

    tf.get_logger().addFilter(QuietRetracing())

    if plan.intra_threads:
        tf.config.threading.set_intra_op_parallelism_threads(plan.intra_threads)
        tf.config.threading.set_inter_op_parallelism_threads(plan.inter_threads or 1)
    for gpu in tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(RuntimeError, ValueError):
            tf.config.experimental.set_memory_growth(gpu, True)  # workers sharing a GPU take what they use
    if plan.mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16")


@dataclass(frozen=True)
class SearchJob:
    """Everything a worker needs, picklable: it is sent to spawned processes."""

    study: str
    url: str
    settings: StudySettings
    trials: int
    deadline: float | None  # time.time() after which no trial starts
    load_data: Callable[[], Any]  # called once per process
    make_objective: Callable[[Any], Callable[[optuna.trial.Trial], float]]  # data -> objective
    setup: Callable[[WorkerPlan], None] = configure_tensorflow
    recycle_mb: float | None = None  # replace a worker whose memory grew this much; None: run here, never replace
    budget: Any = None  # search.budget.BudgetPlan of a budgeted search: plans each trial's epochs


@dataclass(frozen=True)
class Outcome:
    trials: int  # trials started by this run
    exit_code: int


class _LocalSlots:
    def __init__(self, total: int) -> None:
        self.total, self.used, self.stopped = total, 0, False

    def claim(self) -> bool:
        if self.used >= self.total:
            return False
        self.used += 1
        return True


class _SharedSlots:
    """The trial budget shared by the workers: a counter and a stop flag in shared memory."""

    def __init__(self, used: Any, stop_flag: Any, total: int) -> None:
        self._used, self._stop, self.total = used, stop_flag, total

    @property
    def stopped(self) -> bool:
        return bool(self._stop.value)

    def claim(self) -> bool:
        with self._used.get_lock():
            if self._stop.value or self._used.value >= self.total:
                return False
            self._used.value += 1
            return True


def run_trials(
    job: SearchJob, study: optuna.Study, objective: Callable, slots: Any, stop: StopRequest, watch: MemoryWatch | None = None
) -> bool:
    """Run trials one at a time while slots remain, the deadline is ahead and no stop came.

    True when it stopped early because ``watch`` says this process grew too much: the
    caller hands the remaining trials to a fresh process.
    """
    from search.progress import TrialPrinter

    guarded, printer = Guarded(objective, stop), TrialPrinter()
    while not stop.requested and (job.deadline is None or time.time() < job.deadline):
        if watch is not None and watch.exceeded():
            return True
        if job.budget is not None and job.budget.finished(study):
            break  # the final run is done and no short schedule fits in the time left
        if not slots.claim():
            break
        try:
            study.optimize(guarded, n_trials=1, catch=(TrialError,), callbacks=[printer])
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as e:
            if not isinstance(e, optuna.exceptions.UpdateFinishedTrialError) and not str(e).startswith("Cannot tell a"):
                raise
            # its trial was failed elsewhere as silent (no heartbeat within the grace) and
            # queued again: this worker is alive, so it goes on with the next trial
            print(f"worker {worker_name()}: its trial was marked failed by another worker (no heartbeat within "
                  f"{GRACE_FACTOR * job.settings.heartbeat}s: a busy machine?) and queued again; going on",
                  file=sys.stderr, flush=True)
        if watch is not None:
            watch.trial_done()
    if stop.requested or slots.stopped:
        if guarded.interrupted:
            raise SearchInterrupted(_interrupted_message(guarded.interrupted), tuple(guarded.interrupted))
        raise SearchInterrupted("stopped between trials, nothing lost; run the same command to resume")
    return False


def probe_budget(job: SearchJob, objective: Any, quiet: bool = False) -> None:
    """A budgeted search times a few steps of its base config (the recipe) before the
    first trial, to plan how much of the budget goes to exploring; it says the plan."""
    if job.budget is None or job.budget.probe is not None:
        return
    from search.training import probe_epoch_seconds

    job.budget.probe = probe_epoch_seconds(objective.base, objective.data)
    if not quiet:
        print(job.budget.describe(), flush=True)


def _interrupted_message(numbers: Sequence[int]) -> str:
    which = f"trial {numbers[0]}" if len(numbers) == 1 else "trials " + ", ".join(map(str, numbers))
    return f"{which} stopped, marked failed and queued to run again; run the same command to resume"


def spawns(job: SearchJob, plans: Sequence[WorkerPlan]) -> bool:
    """Whether ``run`` runs the trials in child processes (and the caller's data is not used)."""
    return len(plans) > 1 or bool(plans[0].env) or job.recycle_mb is not None


def run(job: SearchJob, plans: Sequence[WorkerPlan], data: Any = None) -> Outcome:
    """Run ``job.trials`` trials: here for one plain worker that is never replaced, else in spawned workers."""
    if not spawns(job, plans):
        return _run_here(job, plans[0], data)
    return _run_workers(job, plans)


def _run_here(job: SearchJob, plan: WorkerPlan, data: Any) -> Outcome:
    job.setup(plan)
    objective = job.make_objective(data if data is not None else job.load_data())
    study = create_or_load(job.study, job.url, job.settings, budget=job.budget)
    probe_budget(job, objective)
    slots = _LocalSlots(job.trials)
    stop = StopRequest().install()
    try:
        run_trials(job, study, objective, slots, stop)
    finally:
        stop.restore()
    return Outcome(slots.used, 0)


class _Pool:
    """The spawned workers of one run, and what they share: the slot counter, the stop
    flag, and each worker's interrupted trial (-1: none)."""

    def __init__(self, job: SearchJob, plans: Sequence[WorkerPlan]) -> None:
        self.job, self.plans = job, plans
        self.ctx = multiprocessing.get_context("spawn")
        self.used, self.stop_flag = self.ctx.Value("i", 0), self.ctx.Value("b", 0)
        self.interrupted = self.ctx.Array("i", [-1] * len(plans))
        self.procs: list[Any] = []

    def start(self, plan: WorkerPlan) -> Any:
        """Start ``plan``'s worker.  It starts with Ctrl-C ignored (dispositions survive
        exec) until it installs its own handler; one that missed a Ctrl-C sees the shared
        stop flag before any trial."""
        ignored = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
        try:
            with _environ(dict(plan.env)):
                proc = self.ctx.Process(
                    target=_worker_main,
                    args=(self.job, plan, self.used, self.stop_flag, self.interrupted, len(self.plans) == 1),
                    name=f"cnn-search-worker-{plan.index}",
                )
                proc.start()
        finally:
            for sig, handler in ignored.items():
                signal.signal(sig, handler)
        return proc

    def stop_all(self) -> None:
        """Raise the stop flag and pass Ctrl-C to every live worker."""
        self.stop_flag.value = 1
        for proc in self.procs:
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGINT)


def _run_workers(job: SearchJob, plans: Sequence[WorkerPlan]) -> Outcome:
    pool = _Pool(job, plans)
    try:
        for plan in plans:
            pool.procs.append(pool.start(plan))
    except BaseException:
        pool.stop_all()
        raise
    stop = StopRequest().install()
    try:
        codes = _supervise(pool, stop, GRACE_FACTOR * job.settings.heartbeat)
    finally:
        stop.restore()
    used = pool.used.value
    if 2 in codes or 1 in codes:  # a worker printed its error; the others were stopped
        return Outcome(used, 2 if 2 in codes else 1)
    if stop.requested or 130 in codes:
        interrupted = [n for n in pool.interrupted if n >= 0]
        if interrupted:
            raise SearchInterrupted(_interrupted_message(interrupted))
        raise SearchInterrupted("stopped between trials, nothing lost; run the same command to resume")
    return Outcome(used, 1 if any(c != 0 for c in codes) else 0)


def _supervise(pool: _Pool, stop: StopRequest, grace: int) -> list[int]:
    """Wait for every worker; replace a recycled one; pass a stop on; stop all when one
    fails; report killed ones."""
    procs = pool.procs
    codes: dict[int, int] = {}
    stopping = False
    while len(codes) < len(procs):
        if stop.requested and not stopping:
            pool.stop_all()
            stopping = True
        multiprocessing.connection.wait([p.sentinel for i, p in enumerate(procs) if i not in codes], timeout=0.5)
        for i, proc in enumerate(procs):
            if i in codes or proc.exitcode is None:
                continue
            if proc.exitcode == RECYCLE:
                if not stopping and not pool.stop_flag.value:
                    procs[i] = pool.start(pool.plans[i])
                    continue
                codes[i] = 0  # it left between trials; nothing to resume
                continue
            codes[i] = proc.exitcode
            if proc.exitcode < 0:
                print(f"worker {i} (pid {proc.pid}) was killed by {signal.Signals(-proc.exitcode).name}",
                      file=sys.stderr, flush=True)
                _reap_worker(pool.job, proc.pid, grace)
            elif proc.exitcode in (1, 2) and not stopping:
                pool.stop_all()
                stopping = True
    return [codes[i] for i in range(len(procs))]


def _reap_worker(job: SearchJob, pid: int, grace: int) -> None:
    """The trial a killed worker was running: failed and queued again now (the worker is
    known to be dead), with a line that says so, not after the heartbeat grace."""
    from search.recovery import reap_dead
    from search.study import open_storage

    study = optuna.load_study(study_name=job.study, storage=open_storage(job.url))
    reap_dead(study, grace, pids=(pid,))


PR_SET_PDEATHSIG = 1  # prctl(2)


def _worker_main(job: SearchJob, plan: WorkerPlan, used: Any, stop_flag: Any, interrupted: Any, alone: bool) -> None:
    """A spawned worker: set up TensorFlow, load the data once, run trials until none are
    left, or until its memory has grown past ``job.recycle_mb`` (then it exits ``RECYCLE``).
    ``alone``: the only worker, which samples as a search in one process does (seed + done)."""
    stop = StopRequest().install()
    _end_with_parent()
    os.environ.update(dict(plan.env))  # already set by the parent; before TensorFlow loads either way
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # as in the parent: trial lines come from TrialPrinter
    slots = _SharedSlots(used, stop_flag, job.trials)
    code = 0
    try:
        if not slots.stopped:
            job.setup(plan)
            data = job.load_data()
            study = create_or_load(job.study, job.url, job.settings, worker=None if alone else plan.index, budget=job.budget)
            objective = job.make_objective(data)
            probe_budget(job, objective, quiet=plan.index > 0)
            watch = MemoryWatch(job.recycle_mb) if job.recycle_mb is not None else None
            if run_trials(job, study, objective, slots, stop, watch):
                print(
                    f"worker {plan.index}: memory grew {watch.growth:.0f} MiB over {watch.trials} trials "
                    f"(limit {job.recycle_mb:g}); a fresh process takes over",
                    flush=True,
                )
                code = RECYCLE
        else:
            code = 130
    except SearchInterrupted as e:
        interrupted[plan.index] = e.trials[-1] if e.trials else -1
        code = 130  # the parent prints the one line
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        code = 2
    except Exception as e:  # a full disk: one line, as the command itself says it (search.cli)
        why = disk_full(e)
        if why is None:
            raise
        print(f"error: {DiskFullError(why)}", file=sys.stderr, flush=True)
        code = 2
    sys.exit(code)


def _end_with_parent() -> None:
    """Ask Linux to send this worker SIGTERM when the command that started it dies, even
    by kill -9: the worker then stops as on Ctrl-C (its trial failed and queued again)
    instead of training on for hours.  Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
