"""Surviving a killed worker and Ctrl-C: trials that did not finish run again.

A killed worker (kill -9, the OOM killer, a lost machine) leaves its trial RUNNING.
Every running trial records a heartbeat (``Heartbeat``, while it trains); before any worker starts a trial, Optuna
fails the trials whose heartbeat is older than the grace period and calls
``RequeueStale``, which queues the same parameters again as a WAITING trial: the
next ``ask`` anywhere picks it up.  A trial that kills its worker again and again
(a model too big for memory) is queued at most ``MAX_RETRY`` times.

Queuing again is Optuna's own ``RetryHeartbeatStaleTrialCallback`` (which also records
``failed_trial`` and ``retry_history`` as system attributes); ``requeue`` gives it only
the attributes a retry should carry: ``retry_of`` (the trial it repeats) and
``retry_history`` as user attributes, not the dead trial's plan or progress.

Ctrl-C (SIGINT) or SIGTERM is caught by ``StopRequest``: between trials it only stops
the search; during a trial it interrupts training, and the trial's runner
(``search.study.trial.TrialRunner``) marks the trial failed ("interrupted") and queues
its parameters again, so running the same command resumes with it.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import sys
import threading
import warnings
from datetime import datetime
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.study.optuna_access import get_trial, storage_of, trial_id
from search.study.record import TrialRecord, attrs, write_to

__all__ = [
    "MAX_RETRY",
    "requeue",
    "RequeueStale",
    "StopRequest",
    "worker_name",
    "reap_dead",
    "fail_unstarted",
    "Heartbeat",
]

# Optuna 4.9 renamed RetryFailedTrialCallback (its name back to 2.8) to RetryHeartbeatStaleTrialCallback.
RETRY_CALLBACK = (
    getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
)
MAX_RETRY = 2  # retries of a trial whose worker died; Ctrl-C retries are not counted
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def worker_name() -> str:
    """``host:pid``: which process ran a trial (stored on it as the ``worker`` attribute)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def requeue(study: optuna.Study, trial: optuna.trial.BaseTrial, max_retry: int | None = MAX_RETRY) -> bool:
    """Queue ``trial``'s parameters again as a WAITING trial; False when retried too often."""
    history = [*(TrialRecord.of(trial).retry_history or []), trial.number]
    if max_retry is not None and len(history) > max_retry:
        return False
    retry = copy.deepcopy(trial if isinstance(trial, FrozenTrial) else get_trial(study, trial))
    retry.user_attrs = attrs(retry_of=trial.number, retry_history=history)  # not its plan, config or curves
    # nor its sampler's state (CMA-ES, NSGA-II generation): Optuna adds failed_trial, retry_history
    retry.system_attrs = {}
    with warnings.catch_warnings():  # marked experimental (since Optuna 2.8)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RETRY_CALLBACK()(study, retry)  # counted above: ours counts no Ctrl-C stops
    return True


class RequeueStale:
    """Optuna's heartbeat-stale callback: say so, and queue the trial to run again."""

    def __init__(self, grace_period: int, max_retry: int | None = MAX_RETRY, out: TextIO | None = None) -> None:
        self.grace_period = grace_period
        self.max_retry = max_retry
        self.out = out

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        queued = requeue(study, trial, self.max_retry)
        then = "queued to run again" if queued else f"not queued again: its worker died {self.max_retry + 1} times"
        print(
            f"trial {trial.number:>4}  FAIL      no heartbeat for {self.grace_period}s from "
            f"{(TrialRecord.of(trial).worker or 'its worker')} (killed?); {then}",
            file=self.out or sys.stdout,
            flush=True,
        )


def _gone(worker: str) -> bool:
    """Whether ``host:pid`` names a process of this machine that no longer runs."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def reap_dead(
    study: optuna.Study, grace: int, pids: tuple[int, ...] | None = None, out: TextIO | None = None
) -> list[int]:
    """Fail and queue again, now, the RUNNING trials whose worker is a process of this
    machine that is gone (killed with kill -9, or a worker the supervisor saw die; with
    ``pids``, only those workers'), instead of waiting out the heartbeat grace; say when
    the others running elsewhere are retried if their worker is gone.  The trial numbers
    queued again.  Safe beside other workers: a trial another process failed first is skipped."""
    out = out or sys.stdout
    requeued = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = TrialRecord.of(trial).worker
        host, _, pid = str(worker).rpartition(":")
        mine = worker is not None and (
            _gone(worker) if pids is None else host == socket.gethostname() and pid in map(str, pids)
        )
        if not mine:
            if pids is None:
                started = f"started {trial.datetime_start:%H:%M:%S}" if trial.datetime_start else "running"
                print(
                    f"trial {trial.number:>4}  RUNNING   on "
                    f"{worker or 'another worker'} ({started}): if that worker is "
                    f"gone, the first trial started {grace}s after its "
                    "last heartbeat marks it failed and queues it again",
                    file=out,
                    flush=True,
                )
            continue
        if _fail_and_requeue(study, trial, f"its worker {worker} is gone (killed?)", out):
            requeued.append(trial.number)
    return requeued


def fail_unstarted(study: optuna.Study, grace: float | None, out: TextIO | None = None) -> list[int]:
    """Fail and queue again the RUNNING trials whose worker never recorded itself and that
    began more than ``grace`` seconds ago (by ``datetime_start``).  A worker writes its
    name right after the trial's first heartbeat, and Optuna finds a trial stale by its
    heartbeat only: a worker killed between ``ask`` and that first beat (milliseconds,
    but CI's loaded machine hit it) would leave its trial RUNNING for good.  ``grace``
    None or 0 (no heartbeat): nothing.  The trial numbers queued again."""
    if not grace:
        return []
    now = datetime.now()  # Optuna stamps datetime_start with the local naive time, as this
    requeued = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if TrialRecord.of(trial).worker is not None or trial.datetime_start is None:
            continue
        if (now - trial.datetime_start).total_seconds() <= grace:
            continue
        if _fail_and_requeue(study, trial, "its worker stopped before its first heartbeat (killed?)", out):
            requeued.append(trial.number)
    return requeued


def _fail_and_requeue(study: optuna.Study, trial: FrozenTrial, reason: str, out: TextIO | None) -> bool:
    """Mark a RUNNING trial failed for ``reason`` and queue it again; say so.  False when
    another process failed it first or its retries are spent."""
    try:
        write_to(study, trial, fail_reason=reason)
        storage_of(study).set_trial_state_values(trial_id(trial), TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # another process got there first
    queued = requeue(study, trial)
    then = "queued to run again" if queued else f"not queued again: its worker died {MAX_RETRY + 1} times"
    print(f"trial {trial.number:>4}  FAIL      {reason}; {then}", file=out or sys.stdout, flush=True)
    return queued


class StopRequest:
    """The SIGINT/SIGTERM handler of a search process.

    The first signal sets ``requested``; if a trial is training (``in_trial``) it also
    raises ``KeyboardInterrupt`` there to end the trial now.  Between trials it never
    raises, so Optuna's bookkeeping is not cut in half.  Later signals are ignored while
    the process cleans up.
    """

    def __init__(self) -> None:
        self.requested = False
        self.in_trial = False
        self._previous: dict[int, Any] = {}
        self._hook: Any = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested:
            return
        self.requested = True
        if self.in_trial:
            raise KeyboardInterrupt

    def install(self) -> StopRequest:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self)
        self._hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        if getattr(self, "_hook", None) is not None:
            sys.unraisablehook, self._hook = self._hook, None

    def _unraisable(self, unraisable: Any) -> None:
        """Python cannot raise where the signal may land (a weakref callback, ``__del__``):
        it prints "Exception ignored" and goes on.  Our own KeyboardInterrupt there is not
        news: ``requested`` is set, and the trial's ``StopCheck`` and ``TrialRunner`` act on it."""
        if self.requested and isinstance(unraisable.exc_value, KeyboardInterrupt):
            return
        (self._hook or sys.__unraisablehook__)(unraisable)


class Heartbeat:
    """Records a running trial's heartbeat every interval the storage asks for, as
    ``study.optimize`` does for its trials, while the block runs: a worker that dies stops
    beating, and the trial is failed and queued again (``search.study.recovery``)."""

    def __init__(self, study: optuna.Study, trial_id: int) -> None:
        storage = storage_of(study)
        # an RDB storage opened with a heartbeat interval (search.study.storage.open_storage); others have none
        interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
        self._beat = (lambda: storage.record_heartbeat(trial_id)) if interval else None
        self._interval = interval or 0
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._done.wait(self._interval):
            try:
                self._beat()
            except Exception:  # storage gone or full: the trial's own writes say so; silence marks it stale
                return

    def __enter__(self) -> Heartbeat:
        if self._beat is not None:
            self._beat()
            self._thread = threading.Thread(target=self._run, name="trial-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
