"""The project's errors, split by what the caller should do.

``UsageError`` and its children stop the program with one line and a non-zero exit:
the user must change an argument, a file or a setting.  ``TrialError`` and its
children fail the current trial only; the study goes on with the next one.
"""

from __future__ import annotations

__all__ = [
    "CnnSearchError",
    "UsageError",
    "ConfigError",
    "SpaceError",
    "DataError",
    "StorageError",
    "DiskFullError",
    "disk_full",
    "MetricNotFoundError",
    "SearchInterrupted",
    "TrialError",
    "DivergedError",
    "ResourceError",
    "TrialInterrupted",
]


class CnnSearchError(Exception):
    """Base class of every error raised on purpose by cnn-search."""


class UsageError(CnnSearchError):
    """A mistake in the user's input: stop everything and say how to fix it."""


class ConfigError(UsageError):
    """A run config (or a value in it) is invalid."""


class SpaceError(UsageError):
    """A search-space file is malformed or names something that does not exist."""


class DataError(UsageError):
    """A dataset cannot be found, read or used."""


class StorageError(UsageError):
    """The study storage cannot be opened, or holds a study that does not match."""


class DiskFullError(StorageError):
    """The disk (or quota) under the study, its artifacts or a model ran out of space."""

    def __init__(self, why: str) -> None:
        super().__init__(
            f"disk full ({why}): free space where the study, its artifacts or the model are written, or write them "
            "elsewhere (--studies-dir, --storage, --out); finished trials are kept: run the same command to resume"
        )


_FULL_ERRNOS = {28, 122}  # ENOSPC, EDQUOT
_FULL_TEXTS = ("database or disk is full", "no space left on device", "disk quota exceeded")


def disk_full(error: BaseException) -> str | None:
    """Why ``error`` (or an error it was raised from, or while handling) is a full disk:
    an ``OSError`` with ENOSPC/EDQUOT, or SQLite's "database or disk is full" however
    SQLAlchemy and Optuna wrapped it; None otherwise."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
            return f"{error.strerror}: {error.filename}" if error.filename else str(error.strerror)
        text = str(error).lower()
        for needle in _FULL_TEXTS:
            if needle in text:
                return needle
        error = error.__cause__ or error.__context__
    return None


class MetricNotFoundError(UsageError):
    """The monitored metric is not among the metrics Keras logs."""


class SearchInterrupted(CnnSearchError):
    """Ctrl-C (or SIGTERM) stopped the search: exit 130 with one line; the same command resumes.

    ``trials`` are the numbers of the trials it cut short (failed and queued again)."""

    def __init__(self, message: str, trials: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.trials = trials


class TrialError(CnnSearchError):
    """Something went wrong inside one trial: fail that trial and go on."""


class DivergedError(TrialError):
    """The training loss became NaN or infinite."""


class ResourceError(TrialError):
    """The trial ran out of memory or another resource (e.g. the model is too big)."""


class TrialInterrupted(TrialError):
    """Ctrl-C arrived during this trial: it fails, its parameters are queued to run again."""
