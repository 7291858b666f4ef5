"""Surviving a killed worker and Ctrl-C: trials that did not finish run again.

A killed worker (kill -9, the OOM killer, a lost machine) leaves its trial RUNNING.
Every running trial records a heartbeat; before any worker starts a trial, Optuna
fails the trials whose heartbeat is older than the grace period and calls
``RequeueStale``, which queues the same parameters again as a WAITING trial: the
next ``ask`` anywhere picks it up.  A trial that kills its worker again and again
(a model too big for memory) is queued at most ``MAX_RETRY`` times.

Ctrl-C (SIGINT) or SIGTERM is caught by ``StopRequest``: between trials it only stops
the search; during a trial it interrupts training, and ``Guarded`` marks the trial
failed ("interrupted") and queues its parameters again, so running the same command
resumes with it.  Retries carry ``retry_of`` (the trial they repeat) and
``retry_history`` as user attributes.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any, TextIO

import optuna
from optuna.trial import TrialState

from search.errors import TrialError, TrialInterrupted, disk_full

__all__ = ["MAX_RETRY", "requeue", "RequeueStale", "StopRequest", "Guarded", "worker_name", "reap_dead"]

MAX_RETRY = 2  # retries of a trial whose worker died; Ctrl-C retries are not counted
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def worker_name() -> str:
    """``host:pid``: which process ran a trial (stored on it as the ``worker`` attribute)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def requeue(study: optuna.Study, trial: optuna.trial.BaseTrial, max_retry: int | None = MAX_RETRY) -> bool:
    """Queue ``trial``'s parameters again as a WAITING trial; False when retried too often."""
    history = [*trial.user_attrs.get("retry_history", []), trial.number]
    if max_retry is not None and len(history) > max_retry:
        return False
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=dict(trial.params),
            distributions=dict(trial.distributions),
            user_attrs={"retry_of": trial.number, "retry_history": history},
        )
    )
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
            f"{trial.user_attrs.get('worker', 'its worker')} (killed?); {then}",
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


def reap_dead(study: optuna.Study, grace: int, pids: tuple[int, ...] | None = None, out: TextIO | None = None) -> list[int]:
    """Fail and queue again, now, the RUNNING trials whose worker is a process of this
    machine that is gone (killed with kill -9, or a worker the supervisor saw die; with
    ``pids``, only those workers'), instead of waiting out the heartbeat grace; say when
    the others running elsewhere are retried if their worker is gone.  The trial numbers
    queued again.  Safe beside other workers: a trial another process failed first is skipped."""
    out = out or sys.stdout
    requeued = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        host, _, pid = str(worker).rpartition(":")
        mine = worker is not None and (_gone(worker) if pids is None else host == socket.gethostname() and pid in map(str, pids))
        if not mine:
            if pids is None:
                started = f"started {trial.datetime_start:%H:%M:%S}" if trial.datetime_start else "running"
                print(f"trial {trial.number:>4}  RUNNING   on {worker or 'another worker'} ({started}): if that worker is "
                      f"gone, the first trial started {grace}s after its last heartbeat marks it failed and queues it again",
                      file=out, flush=True)
            continue
        try:
            study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", f"its worker {worker} is gone (killed?)")
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process got there first
        queued = requeue(study, trial)
        then = "queued to run again" if queued else f"not queued again: its worker died {MAX_RETRY + 1} times"
        print(f"trial {trial.number:>4}  FAIL      its worker {worker} is gone (killed?); {then}", file=out, flush=True)
        if queued:
            requeued.append(trial.number)
    return requeued


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
        news: ``requested`` is set, and the trial's ``StopCheck`` and ``Guarded`` act on it."""
        if self.requested and isinstance(unraisable.exc_value, KeyboardInterrupt):
            return
        (self._hook or sys.__unraisablehook__)(unraisable)


class _HushExpected(logging.Filter):
    """Drop Optuna's 'Trial N failed ...' warnings (with a traceback) for trials that
    failed in a way we expect and explain: interrupted, diverged, out of memory.  The
    trial line says why, and ``fail_reason`` stores it; a bug still shows its traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(message.startswith(f"Trial {n} failed") for n in self.numbers)


class Guarded:
    """Wraps an objective: records the worker, and turns Ctrl-C into a failed, requeued trial."""

    def __init__(self, objective: Callable[[optuna.trial.Trial], float], stop: StopRequest) -> None:
        if isinstance(getattr(objective, "callbacks", None), tuple):  # a search.objective.Objective: stop within a batch
            from search.deadline import StopCheck

            objective.callbacks = (*objective.callbacks, StopCheck(lambda: stop.requested))
        self.objective = objective
        self.stop = stop
        self.worker = worker_name()
        self.interrupted: list[int] = []
        self._hush = _HushExpected()
        logging.getLogger("optuna.study._optimize").addFilter(self._hush)

    def _interrupted(self, trial: optuna.trial.Trial) -> TrialInterrupted:
        """Record the trial as interrupted and queue it again; the error to raise."""
        self.stop.in_trial = False
        self._hush.numbers.add(trial.number)
        self.interrupted.append(trial.number)
        trial.set_user_attr("fail_reason", "interrupted (Ctrl-C or SIGTERM); queued to run again")
        requeue(trial.study, trial, max_retry=None)
        return TrialInterrupted(f"trial {trial.number} interrupted")

    def __call__(self, trial: optuna.trial.Trial) -> float:
        trial.set_user_attr("worker", self.worker)
        try:
            self.stop.in_trial = True
            if self.stop.requested:  # the signal came while the trial was being created
                raise KeyboardInterrupt
            value = self.objective(trial)
            if self.stop.requested:  # the interrupt was swallowed where Python could not raise it
                raise KeyboardInterrupt
            return value
        except KeyboardInterrupt:
            raise self._interrupted(trial) from None
        except TrialError:
            self._hush.numbers.add(trial.number)
            raise
        except optuna.TrialPruned:
            raise
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another process failed this trial while it ran (its heartbeat went silent past
            # the grace: a machine too busy to beat) and queued it again; run_trials says so.
            self._hush.numbers.add(trial.number)
            raise
        except Exception as e:
            if disk_full(e):  # the command says it in one line (search.cli); no traceback from Optuna's log
                self._hush.numbers.add(trial.number)
                raise
            if self.stop.requested:  # the interrupt surfaced as another error: code that TensorFlow runs
                raise self._interrupted(trial) from None  # may catch the KeyboardInterrupt and raise e.g. TypeError
            raise
        finally:
            self.stop.in_trial = False
