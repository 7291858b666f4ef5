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

Which worker gets which GPU, threads and environment is planned in ``placement``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from search.core.memory import MemoryWatch
from search.errors import DiskFullError, SearchInterrupted, UsageError, disk_full
from search.study.loop import LocalSlots, SharedSlots, interrupted_message, probe_budget, run_trials
from search.study.patient import DEFAULT_WAIT
from search.study.placement import WorkerPlan, configure_tensorflow
from search.study.recovery import STOP_SIGNALS, StopRequest
from search.study.settings import StudySettings
from search.study.storage import GRACE_FACTOR, create_or_load

__all__ = [
    "SearchJob",
    "Outcome",
    "run",
    "spawns",
    "RECYCLE",
]

RECYCLE = 75  # a worker's exit code: "my memory grew past the limit; start a fresh me" (EX_TEMPFAIL)


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
    budget: Any = None  # search.study.budget.BudgetPlan of a budgeted search: plans each trial's epochs
    storage_wait: float = DEFAULT_WAIT  # seconds a server database that went away is waited for
    # builds each worker's callback after every trial (the trial lines: search.reporting.progress.TrialPrinter,
    # which the command line passes in); a factory, not a callback, because a spawned worker gets a pickled job
    printer: Callable[[], Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] | None = None


@dataclass(frozen=True)
class Outcome:
    trials: int  # trials started by this run
    exit_code: int


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
    study = create_or_load(job.study, job.url, job.settings, budget=job.budget, wait=job.storage_wait)
    probe_budget(job, objective, study)
    slots = LocalSlots(job.trials)
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
            raise SearchInterrupted(interrupted_message(interrupted))
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
                print(
                    f"worker {i} (pid {proc.pid}) was killed by {signal.Signals(-proc.exitcode).name}",
                    file=sys.stderr,
                    flush=True,
                )
                _reap_worker(pool.job, proc.pid, grace)
            elif proc.exitcode in (1, 2) and not stopping:
                pool.stop_all()
                stopping = True
    return [codes[i] for i in range(len(procs))]


def _reap_worker(job: SearchJob, pid: int, grace: int) -> None:
    """The trial a killed worker was running: failed and queued again now (the worker is
    known to be dead), with a line that says so, not after the heartbeat grace."""
    from search.study.recovery import reap_dead
    from search.study.storage import open_storage

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
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # as in the parent: trial lines come from job.printer
    slots = SharedSlots(used, stop_flag, job.trials)
    code = 0
    try:
        if not slots.stopped:
            job.setup(plan)
            data = job.load_data()
            study = create_or_load(
                job.study,
                job.url,
                job.settings,
                worker=None if alone else plan.index,
                budget=job.budget,
                wait=job.storage_wait,
            )
            objective = job.make_objective(data)
            probe_budget(job, objective, study, quiet=plan.index > 0)
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
