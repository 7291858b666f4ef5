"""Nothing a user types destroys what is not ours: every output path of ``export``,
``report``, ``predict``, ``train`` and ``lr-find`` is checked before any work, and
written atomically; a model folder ``train`` rebuilds is built aside and swapped in."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_error, run_cli

from search.core.outputs import atomic_write, check_output_file, staged_folder
from search.errors import UsageError

DATA = Path(__file__).resolve().parent.parent / "data"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    """A working folder with a real study (studies/old.db) and another program's database."""
    (tmp_path / "studies").mkdir()
    shutil.copy(DATA / "study-before-layout.db", tmp_path / "studies" / "old.db")
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("create table notes (t text)")
        db.execute("insert into notes values ('keep me')")
    (tmp_path / "notes.txt").write_text("someone's notes\n")
    os.mkfifo(tmp_path / "pipe.json")
    (tmp_path / "link.json").symlink_to(tmp_path / "notes.txt")
    return tmp_path


REFUSED = {
    # --out: words the one line must contain
    "studies/old.db": ["studies/old.db", "SQLite database", "destroy"],
    "other.db": ["other.db", "SQLite database"],
    "notes.txt": ["notes.txt", "exists and is not", "choose another file name"],
    "pipe.json": ["pipe.json", "not a regular file"],
    "link.json": ["link.json", "symbolic link"],
    "studies": ["studies", "is a folder"],
}


@pytest.mark.parametrize("command", ["export", "report"])
@pytest.mark.parametrize("target", list(REFUSED), ids=list(REFUSED))
def test_an_output_that_is_not_ours_is_refused_and_left_byte_for_byte(study_dir: Path, command: str, target: str):
    before = {p: digest(p) for p in (study_dir / "studies" / "old.db", study_dir / "other.db", study_dir / "notes.txt")}
    extra = ["--trial", "0"] if command == "export" else []
    result = run_cli(
        command, "--study", "old", *extra, "--out", target, cwd=study_dir, timeout=120
    )  # a pipe must not hang
    one_line_error(result, *REFUSED[target])
    assert {p: digest(p) for p in before} == before
    assert sorted(p.name for p in (study_dir / "studies").iterdir()) == ["old.db"]  # nothing written beside
    assert not list(study_dir.glob(".*.tmp"))


def test_export_and_report_replace_their_own_earlier_output_and_say_so(study_dir: Path):
    first = run_cli("export", "--study", "old", "--trial", "0", "--out", "t0.json", cwd=study_dir)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "replaced" not in first.stdout
    again = run_cli("export", "--study", "old", "--trial", "0", "--out", "t0.json", cwd=study_dir)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "(replaced the earlier export there)" in again.stdout
    assert json.loads((study_dir / "t0.json").read_text())["source"]["trial"] == 0
    # a report is not an export, and an export is not a report: neither overwrites the other
    one_line_error(run_cli("report", "--study", "old", "--out", "t0.json", cwd=study_dir), "t0.json", "not a report")
    report = run_cli("report", "--study", "old", "--out", "r.html", cwd=study_dir)
    assert report.returncode == 0, report.stderr[-2000:]
    one_line_error(
        run_cli("export", "--study", "old", "--trial", "0", "--out", "r.html", cwd=study_dir),
        "r.html",
        "not an export file",
    )
    again = run_cli("report", "--study", "old", "--out", "r.html", cwd=study_dir)
    assert again.returncode == 0 and "(replaced the earlier report there)" in again.stdout


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch):
    target = tmp_path / "a.json"
    atomic_write(target, '{"old": 1}')

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(UsageError, match="No space left"):
        atomic_write(target, '{"new": 2}')
    assert target.read_text() == '{"old": 1}' and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_folder_built_aside_replaces_the_old_one_only_when_done(tmp_path: Path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "config.json").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_folder(out) as stage:
            (stage / "config.json").write_text("half")
            raise RuntimeError("crash while training")
    assert (out / "config.json").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["model"]
    with staged_folder(out) as stage:
        (stage / "config.json").write_text("new")
    assert (out / "config.json").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["model"]


def test_check_output_file_knows_a_parent_that_is_a_file(tmp_path: Path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        check_output_file(tmp_path / "f" / "out.json", "--out", "export")


def test_lr_find_checks_its_outputs_before_tensorflow_loads(study_dir: Path):
    result = run_cli("lr-find", "--write-space", "notes.txt", cwd=study_dir)
    one_line_error(result, "--write-space notes.txt", ".toml")
    (study_dir / "space.toml").write_text("[model]\nblocks = 2\n")  # a space of the user's own
    one_line_error(
        run_cli("lr-find", "--write-space", "space.toml", cwd=study_dir), "space.toml", "not a space file lr-find wrote"
    )
    (study_dir / "lr").mkdir()
    (study_dir / "lr" / "lr-find.json").symlink_to(study_dir / "notes.txt")
    one_line_error(run_cli("lr-find", "--out", "lr", cwd=study_dir), "lr-find.json", "symbolic link")
    one_line_error(run_cli("lr-find", "--out", "notes.txt", cwd=study_dir), "notes.txt", "is a file")
    assert (study_dir / "notes.txt").read_text() == "someone's notes\n"


def test_predict_out_refuses_what_is_not_ours(trained_digits: Path, study_dir: Path):
    np.savez(study_dir / "x.npz", x=np.zeros((2, 8, 8, 1), np.float32))
    shutil.copy(study_dir / "other.db", study_dir / "other.json")  # a database by any name
    for target, words in (
        ("other.json", ["SQLite"]),
        ("pipe.json", ["not a regular file"]),
        ("link.json", ["symbolic link"]),
    ):
        one_line_error(
            run_cli(
                "predict", "--model", str(trained_digits), "npz:x.npz", "--out", target, cwd=study_dir, timeout=120
            ),
            target,
            *words,
        )
    (study_dir / "mine.csv").write_text("name,score\na,1\n")
    one_line_error(
        run_cli("predict", "--model", str(trained_digits), "npz:x.npz", "--out", "mine.csv", cwd=study_dir),
        "mine.csv",
        "not a predictions file",
    )
    assert (study_dir / "notes.txt").read_text() == "someone's notes\n"
    for _ in range(2):  # its own earlier predictions: replaced
        ok = run_cli("predict", "--model", str(trained_digits), "npz:x.npz", "--out", "p.csv", cwd=study_dir)
        assert ok.returncode == 0, ok.stderr[-2000:]
    assert (study_dir / "p.csv").read_text().startswith("image,")


def test_train_out_refuses_a_foreign_folder_before_training(tmp_path: Path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"precious")
    result = run_cli("train", "--recipe", "digits", "--epochs", "1", "--out", "photos", cwd=tmp_path)
    one_line_error(result, "--out photos", "not a model folder 'train' wrote")
    assert [p.name for p in (tmp_path / "photos").iterdir()] == ["holiday.jpg"]


def test_train_rebuilds_its_own_folder_aside_without_following_links(trained_digits: Path, tmp_path: Path):
    """A symlinked saved_model/ inside an earlier model folder is replaced, its target untouched."""
    out = tmp_path / "model"
    shutil.copytree(trained_digits, out)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not the model's")
    shutil.rmtree(out / "saved_model")
    (out / "saved_model").symlink_to(elsewhere)
    result = run_cli("train", "--recipe", "digits", "--epochs", "1", "--out", "model", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "holds a model trained before; it is replaced" in result.stdout
    assert not (out / "saved_model").is_symlink() and (out / "saved_model" / "saved_model.pb").is_file()
    assert [p.name for p in elsewhere.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "model"]  # nothing left aside
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 1
