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

from search.errors import TrialError, TrialInterrupted

__all__ = ["MAX_RETRY", "requeue", "RequeueStale", "StopRequest", "Guarded", "worker_name"]

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

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested:
            return
        self.requested = True
        if self.in_trial:
            raise KeyboardInterrupt

    def install(self) -> StopRequest:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


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
            return self.objective(trial)
        except KeyboardInterrupt:
            raise self._interrupted(trial) from None
        except TrialError:
            self._hush.numbers.add(trial.number)
            raise
        except optuna.TrialPruned:
            raise
        except Exception:
            if self.stop.requested:  # the interrupt surfaced as another error: code that TensorFlow runs
                raise self._interrupted(trial) from None  # may catch the KeyboardInterrupt and raise e.g. TypeError
            raise
        finally:
            self.stop.in_trial = False
