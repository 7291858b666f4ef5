"""Writing outputs without destroying what is not ours.

Every file or folder a command writes (``export --out``, ``report --out``, ``predict
--out``, ``train --out``, ``lr-find --out`` and ``--write-space``) is checked before any
work is done:

* a symbolic link, a folder where a file is meant (or a file where a folder is meant),
  a named pipe or a device is refused: writing through a link overwrites its target,
  and opening a pipe waits forever;
* an existing SQLite database (a study's ``.db``, or another program's) is refused;
* any other existing file is overwritten only when it is this command's own earlier
  output (an export, a report, predictions, an lr-find space, a model folder ``train``
  wrote), and the command says it replaced it.  Anything else is refused.

Files are written to a temporary name beside the target and renamed into place
(``atomic_write``), so a crash leaves the old file or the new one, never half of each;
``train`` builds its folder aside (``staged_folder``) and swaps it in at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from search.errors import UsageError

__all__ = [
    "KINDS",
    "is_model_folder",
    "check_output_file",
    "check_output_folder",
    "atomic_write",
    "staged_folder",
    "is_sqlite",
    "check_input_file",
]

SQLITE_HEADER = b"SQLite format 3\x00"
_SNIFF = 4096  # bytes read to recognize a file; our outputs say what they are at their start
_JSON_LIMIT = 64 * 2**20  # a JSON output of ours is far smaller; a bigger file is not parsed to recognize it


def is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(_SNIFF)
    except OSError:
        return b""


def _json(path: Path) -> object:
    try:
        if path.stat().st_size > _JSON_LIMIT:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _is_export(path: Path) -> bool:
    d = _json(path)
    return isinstance(d, dict) and "config" in d and "schema_version" in d


def _is_report(path: Path) -> bool:
    head = _head(path)
    return head.startswith(b"<!DOCTYPE html>") and (
        b"<title>cnn-search report" in head or b"<title>cnn-search model" in head
    )


def _is_predictions(path: Path) -> bool:
    if path.suffix.lower() == ".csv":
        return _head(path).startswith(b"image,")
    d = _json(path)
    return isinstance(d, list) and all(isinstance(r, dict) and "image" in r for r in d)


def _is_lr_space(path: Path) -> bool:
    return _head(path).startswith(b"# Written by `run_search.py lr-find`")


def _is_lr_json(path: Path) -> bool:
    d = _json(path)
    return isinstance(d, dict) and {"base_lr", "max_lr", "lrs"} <= d.keys()


def _is_png(path: Path) -> bool:
    return _head(path).startswith(b"\x89PNG\r\n\x1a\n")


def is_model_folder(folder: Path) -> bool:
    """A folder ``train`` wrote: its ``config.json`` is an export, or its ``labels.json`` ours."""
    labels = _json(folder / "labels.json")
    return _is_export(folder / "config.json") or (isinstance(labels, dict) and "schema_version" in labels)


# What each kind of output of ours looks like, to tell our own earlier output from a stranger's file.
KINDS: dict[str, tuple[str, Callable[[Path], bool]]] = {
    "export": ("an export file", _is_export),
    "report": ("a report", _is_report),
    "predictions": ("a predictions file", _is_predictions),
    "space": ("a space file lr-find wrote", _is_lr_space),
    "lr-find.json": ("lr-find's results", _is_lr_json),
    "png": ("a picture", _is_png),
}


def _refuse_special(path: Path, option: str, want: str) -> None:
    """One line for a link, a pipe or a device at ``path`` (``want``: 'file' or 'folder')."""
    if path.is_symlink():
        raise UsageError(
            f"{option} {path}: is a symbolic link; cnn-search does not write through links: "
            f"name the {want} itself or another path"
        )
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return  # a new path (a parent that is a file: _check_parent says so)
    except OSError as e:
        raise UsageError(f"{option} {path}: cannot be checked ({e.strerror}); choose another path") from e
    if want == "file" and stat.S_ISDIR(mode):
        raise UsageError(f"{option} {path}: is a folder; name a file (e.g. {path}/out{path.suffix or '.json'})")
    if want == "folder" and not stat.S_ISDIR(mode) and stat.S_ISREG(mode):
        raise UsageError(f"{option} {path}: is a file; name a folder (a new one, or one this command wrote)")
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise UsageError(
            f"{option} {path}: is not a regular {want} (a named pipe, socket or device); name a regular {want}"
        )


def _check_parent(path: Path, option: str) -> None:
    for parent in [path.parent, *path.parent.parents]:
        if parent.is_symlink() or parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{option} {path}: {parent} is a file, not a folder; choose another path")
            return


def check_output_file(path: str | Path, option: str, kind: str) -> bool:
    """Check that ``path`` may be written as an output of ``kind`` (a key of ``KINDS``);
    True when it replaces our own earlier output (the caller says so), False when new."""
    p = Path(path)
    what, ours = KINDS[kind]
    _refuse_special(p, option, "file")
    _check_parent(p, option)
    if not p.exists():
        return False
    if is_sqlite(p):
        raise UsageError(
            f"{option} {p}: is an SQLite database (a study's, or another program's); writing there would "
            "destroy it: choose another file name"
        )
    if not ours(p):
        raise UsageError(
            f"{option} {p}: exists and is not {what} cnn-search wrote; choose another file name, "
            "or move that file away first"
        )
    return True


def check_output_folder(path: str | Path, option: str, ours: Callable[[Path], bool], what: str) -> bool:
    """Check that folder ``path`` may be (re)written; True when it is our own earlier output."""
    p = Path(path)
    _refuse_special(p, option, "folder")
    _check_parent(p, option)
    if not p.exists():
        return False
    if not any(p.iterdir()):
        return False
    if not ours(p):
        raise UsageError(
            f"{option} {p}: holds files that are not {what}; choose a new folder, or move those files away first"
        )
    return True


def check_input_file(path: str | Path, option: str) -> Path:
    """A file to read: refused in one line when missing or not a regular file (a pipe would hang)."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise UsageError(f"{option} {p}: no such file; check the path") from None
    except OSError as e:
        raise UsageError(f"{option} {p}: cannot be read ({e.strerror}); check the path") from e
    if stat.S_ISDIR(mode):
        raise UsageError(f"{option} {p}: is a folder; name a file")
    if not stat.S_ISREG(mode):
        raise UsageError(
            f"{option} {p}: is not a regular file (a named pipe, socket or device); save it to a file first"
        )
    return p


def atomic_write(path: str | Path, data: str | bytes, option: str = "--out") -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise UsageError(f"cannot write {option} {p} ({e.strerror}); choose another path") from e
    return p


@contextlib.contextmanager
def staged_folder(path: str | Path) -> Iterator[Path]:
    """A fresh folder beside ``path`` to build an output in; on success it replaces
    ``path`` (the old one is removed after the swap), on failure it is removed and
    ``path`` is as it was."""
    final = Path(path)
    stage = final.with_name(f".{final.name}.partial-{os.getpid()}")
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    try:
        stage.mkdir(parents=True)
    except OSError as e:
        raise UsageError(f"cannot create output folder {final} ({e.strerror}); choose another --out") from e
    try:
        yield stage
        if final.exists():
            os.replace(final, old)
        os.replace(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if old.exists() and not final.exists():
            os.replace(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)
