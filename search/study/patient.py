"""A server database that goes away: a search waits for it instead of dying.

A PostgreSQL or MySQL server restarted for maintenance, a failover, a network cut:
every call Optuna makes to the storage would raise, the trial running in that worker
would end in a traceback, and several workers would die at once.  ``PatientStorage``
wraps the storage of a search's workers: a call that fails because the connection was
lost is tried again with backoff (0.5 s doubling up to ``MAX_DELAY``), each process says
so in one line when the database goes and when it is back, and training waits at its
next write (an epoch's result, a heartbeat).  Past ``wait`` seconds (``--storage-wait``,
10 minutes by default) it gives up with one line (a ``StorageError``: exit 2); the
trial it was running stays RUNNING until the next command on the study fails it as
silent and runs it again, so the same command resumes.

No trial is stored twice: a write whose commit may have landed before the connection
broke is checked before it is repeated (a trial's final state), or is one Optuna
makes idempotent (parameters, attributes, intermediate values).  A database that
has just come back does not judge other workers' trials silent until they had a grace
period to record a heartbeat again (their heartbeats were lost with it).

Only server databases are wrapped: SQLite is a local file whose locks already wait
(``search.study.storage``), and a reading command (``best``, ``export``) fails at once.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import sqlalchemy.exc
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from search.errors import StorageError
from search.study.optuna_access import BaseHeartbeat

__all__ = ["PatientStorage", "DEFAULT_WAIT", "MAX_WAIT", "lost_connection"]

DEFAULT_WAIT = 600.0  # seconds a search waits for its database before it stops (--storage-wait)
MAX_WAIT = 7 * 24 * 3600.0
FIRST_DELAY = 0.5
# Retries stay frequent: a running trial's heartbeat must be recorded again soon after the
# database is back, before another worker judges that trial silent.
MAX_DELAY = 3.0

_CONNECTION_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.DisconnectionError)


def lost_connection(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it: Optuna wraps driver errors) is a lost or
    refused connection to the database, not a mistake in what was written."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, _CONNECTION_ERRORS):
            return True
        if isinstance(e, sqlalchemy.exc.DBAPIError) and e.connection_invalidated:
            return True
        e = e.__cause__ or e.__context__
    return False


class PatientStorage(BaseStorage, BaseHeartbeat):
    """``base`` (a server storage) whose calls wait up to ``wait`` seconds for a lost
    database; ``where`` names it in the messages (a URL without its password); ``grace``:
    seconds other workers get to record a heartbeat again after the database is back."""

    def __init__(
        self,
        base: BaseStorage,
        where: str,
        wait: float = DEFAULT_WAIT,
        grace: float = 0.0,
        out: TextIO | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = base
        self._where = where
        self._wait = float(wait)
        self._grace = float(grace)
        self._out = out
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None  # this process's outage, shared by its threads
        self._back_at: float | None = None

    def __getattr__(self, name: str) -> Any:  # the base storage's own extras (e.g. RDBStorage.url)
        return getattr(self._base, name)

    # -- the waiting ------------------------------------------------------------------

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        delay = FIRST_DELAY
        tried = False
        while True:
            try:
                if tried and name == "set_trial_state_values" and self._landed(*args, **kwargs):
                    result = True  # the commit had landed before the connection broke: not twice
                else:
                    result = getattr(self._base, name)(*args, **kwargs)
            except Exception as e:
                if not lost_connection(e):
                    raise
                tried = True
                waited = self._went_away(e)
                if waited >= self._wait:
                    raise StorageError(
                        f"the database {self._where} has been unreachable for {waited:.0f}s ({_reason(e)}); "
                        "finished trials are kept: when it is back, run the same command to resume "
                        "(--storage-wait sets how long a search waits)"
                    ) from None
                self._sleep(min(delay, self._wait - waited))
                delay = min(2 * delay, MAX_DELAY)
                self._forget_session()
                continue
            self._came_back()
            return result

    def _landed(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        stored = self._base.get_trial(trial_id)
        return stored.state == state and state != TrialState.RUNNING

    def _forget_session(self) -> None:
        try:
            self._base.remove_session()
        except Exception:  # a session already closed with its connection: nothing to forget
            pass

    def _went_away(self, error: BaseException) -> float:
        """Seconds this process has been without the database; says so the first time."""
        now = self._clock()
        with self._lock:
            if self._down_since is None:
                self._down_since = now
                self._say(
                    f"database {self._where} unreachable ({_reason(error)}): waiting up to {self._wait:.0f}s "
                    "for it, training goes on until its next write"
                )
            return now - self._down_since

    def _came_back(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is None:
                return
            self._say(f"database {self._where} is back after {self._clock() - self._down_since:.0f}s; going on")
            self._down_since, self._back_at = None, self._clock()

    def _say(self, line: str) -> None:
        print(line, file=self._out or sys.stderr, flush=True)

    # -- heartbeats -------------------------------------------------------------------

    def record_heartbeat(self, trial_id: int) -> None:
        self._call("record_heartbeat", trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        if self._back_at is not None and self._clock() - self._back_at < self._grace:
            return []  # the others' heartbeats were lost with the database: give them a grace to beat again
        return self._call("_get_stale_trial_ids", study_id)

    def get_heartbeat_interval(self) -> int | None:
        return self._base.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(self) -> Any:
        return self._base.get_heartbeat_stale_trial_callback()

    def get_failed_trial_callback(self) -> Any:  # Optuna before 4.9
        return self._base.get_failed_trial_callback()

    def remove_session(self) -> None:
        self._base.remove_session()


def _reason(error: BaseException) -> str:
    """The driver's first line (``connection refused``), without the SQL or the URL."""
    e: BaseException | None = error
    while e is not None and not isinstance(e, sqlalchemy.exc.DBAPIError):
        e = e.__cause__ or e.__context__
    text = str(getattr(e, "orig", None) or e or error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


def _delegate(name: str) -> Callable[..., Any]:
    def method(self: PatientStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"``{name}`` of the wrapped storage, waiting for a lost database."
    return method


# Every storage call Optuna and cnn-search make, reads and writes alike.
for _name in (
    *BaseStorage.__abstractmethods__,
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_params",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_n_trials",
    "get_best_trial",
    "get_trial_param",
):
    setattr(PatientStorage, _name, _delegate(_name))
PatientStorage.__abstractmethods__ = frozenset()
