"""Bad input through the real command line: one line naming the problem and the fix,
exit status 2, no traceback, and the studies folder exactly as it was (no new study
file, existing files byte for byte unchanged).  TensorFlow is never loaded for these:
every check runs before it (except --model's: the function builds a Keras model)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_cli

PASSWORD = "s3cret-pw"
MODELS = ROOT / "tests" / "models" / "kt_resnet.py"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A working folder with inputs of every kind, and studies/ holding one real study."""
    from PIL import Image

    from search.core.space_files import load_space
    from search.study.settings import StudySettings
    from search.study.storage import create_or_load

    root = tmp_path_factory.mktemp("bad-input")
    studies = root / "studies"
    studies.mkdir()
    create_or_load(
        "existing",
        f"sqlite:///{studies / 'existing.db'}",
        StudySettings.of(dataset="digits", space=load_space("cnn").to_dict()),
    )
    (studies / "corrupt.db").write_bytes(b"this is not an sqlite database\x00\x01\x02" * 40)

    def image(path: Path, size: int, value: int = 0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(path)

    (root / "empty").mkdir()
    for cls in ("a", "b"):
        for i in range(3):
            image(root / "mixed" / cls / f"{i}.png", 8 if (cls, i) != ("b", 2) else 10)
            image(root / "corrupt" / cls / f"{i}.png", 8)
    (root / "corrupt" / "b" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 8, 8, 1), dtype=np.uint8)
    y = np.arange(40) % 4
    np.savez(root / "negative_label.npz", x_train=x, y_train=np.where(y == 3, -1, y))
    np.savez(root / "test_label_out_of_range.npz", x_train=x, y_train=y, x_test=x[:8], y_test=np.full(8, 7))
    np.savez(root / "wrong_count.npz", x_train=x, y_train=y[:-5])
    x_nan = x.astype(np.float32)
    x_nan[3, 2, 2, 0] = np.nan
    np.savez(root / "nan.npz", x_train=x_nan, y_train=y)

    (root / "malformed.toml").write_text("[model\nblocks = 3\n")
    (root / "invalid.toml").write_text('extends = "cnn"\n[model]\nblockz = 3\n')
    (root / "a_file").write_text("a regular file, not a folder\n")
    np.savez(root / "string_pixels.npz", x_train=np.full((40, 8, 8), "a"), y_train=y)
    np.savez(root / "no_images.npz", x_train=np.zeros((0, 8, 8), np.uint8), y_train=np.zeros(0, np.int64))
    for cls in ("a", "b"):
        for i in range(2):
            image(root / "bomb" / cls / f"{i}.png", 8)
    (root / "bomb" / "b" / "1.png").write_bytes(_png_header(30000, 30000))
    import sqlite3

    with sqlite3.connect(studies / "other_program.db") as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        db.execute("INSERT INTO invoices (total) VALUES (12.5)")
    db.close()
    (studies / "empty.db").write_bytes(b"")
    (root / "empty_space.toml").write_text("")
    (root / "drop_not_a_list.toml").write_text('extends = "cnn"\ndrop = 5\n')
    (root / "prior_outside.toml").write_text('extends = "cnn"\n[model]\nblocks = { low = 1, high = 3, prior = 5 }\n')
    (root / "fails_to_import.py").write_text("import keras\nraise RuntimeError('no GPU here')\n")
    return root


def _png_header(width: int, height: int) -> bytes:
    """The start of a PNG whose header claims ``width`` x ``height`` pixels (no pixel data)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture
def work(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "w")
    return tmp_path / "w"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


QUICK = ("--trials", "1", "--epochs", "1", "--studies-dir", "studies")

CASES = {
    # name: (arguments, words the message must contain)
    "missing dataset path": (["--dataset", "folder:no/such/folder"], ["does not exist", "folder:"]),
    "missing npz file": (["--dataset", "npz:no_such.npz"], ["does not exist", "npz:"]),
    "empty folder": (["--dataset", "folder:empty"], ["class folders", "sub-folder"]),
    "images of mixed sizes": (["--dataset", "folder:mixed"], ["10x10", "resize"]),
    "corrupt image file": (["--dataset", "folder:corrupt"], ["2.png", "not a readable image", "replace"]),
    "negative label": (["--dataset", "npz:negative_label.npz"], ["label -1", "0..K-1"]),
    "test label out of range": (
        ["--dataset", "npz:test_label_out_of_range.npz"],
        ["y_test", "label 7", "fix the labels"],
    ),
    "wrong label count": (["--dataset", "npz:wrong_count.npz"], ["35 labels for 40 images", "one label per image"]),
    "NaN pixels": (["--dataset", "npz:nan.npz"], ["NaN", "1 images", "clean"]),
    "malformed space file": (["--space", "malformed.toml"], ["malformed.toml"]),
    "invalid space file": (["--space", "invalid.toml"], ["blockz"]),
    "unknown space": (["--space", "no_such_space"], ["no_such_space"]),
    "unknown sampler": (["--sampler", "bayes"], ["--sampler", "bayes", "tpe"]),
    "unknown pruner": (["--pruner", "aggressive"], ["--pruner", "aggressive", "halfway"]),
    "unknown dataset": (["--dataset", "imagenet"], ["imagenet", "digits", "folder:PATH"]),
    "unknown metric": (["--monitor", "val_auc"], ["val_auc", "val_accuracy"]),
    "malformed storage URL": (["--storage", "not a url"], ["malformed", "sqlite:///"]),
    "storage URL with a bad port": (["--storage", f"postgresql://u:{PASSWORD}@localhost:port/db"], ["malformed"]),
    "corrupt SQLite file": (["--study", "corrupt"], ["corrupt.db", "not an SQLite database"]),
    "studies folder under a file": (["--studies-dir", "a_file/sub"], ["a_file", "is a file", "--studies-dir"]),
    "study name with ..": (["--study", "../x"], ["'../x'", "letters, digits"]),
    "study name with /": (["--study", "a/b"], ["'a/b'", "letters, digits"]),
    "empty study name": (["--study", ""], ["study name ''", "letters, digits"]),
    "resumed study, other dataset": (
        ["--study", "existing", "--dataset", "npz:nan.npz"],
        ["existing", "dataset", "drop that option"],
    ),
    "bad --workers": (["--workers", "0"], ["--workers", "at least 1"]),
    "negative --recycle-mb": (["--recycle-mb", "-5"], ["--recycle-mb", "0 (never)"]),
    "bad --gpus": (["--gpus", "0,one"], ["'one'", "--gpus 0,1"]),
    "--budget 0": (["--budget", "0"], ["--budget '0'", "more than 0"]),
    "--budget 5x": (["--budget", "5x"], ["--budget '5x'", "90s, 10m, 2h"]),
    "--budget -3m": (["--budget=-3m"], ["--budget '-3m'", "90s, 10m, 2h"]),
    "--timeout nan": (["--timeout", "nan"], ["--timeout", "nan"]),
    "warm start from a missing study": (["--warm-start", "nosuch"], ["nosuch", "run a search first"]),
    "warm start from a missing study in an existing database": (
        ["--warm-start", "nosuch", "--warm-start-storage", "sqlite:///studies/existing.db"],
        ["no study 'nosuch'", "existing"],
    ),
    "warm start storage without warm start": (
        ["--warm-start-storage", "sqlite:///x.db"],
        ["--warm-start-storage", "--warm-start"],
    ),
    "npz with string pixels": (["--dataset", "npz:string_pixels.npz"], ["x_train", "<U1", "pixels must be numbers"]),
    "npz with 0 images": (["--dataset", "npz:no_images.npz"], ["x_train holds 0 images"]),
    "PNG claiming 30000x30000": (["--dataset", "folder:bomb"], ["1.png", "decompression bomb", "not decoded"]),
    "empty space file": (["--space", "empty_space.toml"], ["empty_space.toml", "samples nothing"]),
    "space file with drop = 5": (["--space", "drop_not_a_list.toml"], ["drop_not_a_list.toml", "drop", "received 5"]),
    "--epochs 10001": (["--epochs", "10001"], ["--epochs", "at most 10000", "10001"]),
    "--seed -1": (["--seed=-1"], ["--seed", "from 0 to 2147483647", "-1"]),
    "--seed 2**32": (["--seed", "4294967296"], ["--seed", "4294967296"]),
    "another program's SQLite file": (
        ["--study", "other_program"],
        ["other_program.db", "another program", "invoices", "left as it is"],
    ),
    "another program's SQLite file as --storage": (
        ["--storage", "sqlite:///studies/other_program.db"],
        ["other_program.db", "another program"],
    ),
    "a 0-byte .db file": (["--study", "empty"], ["empty.db", "empty file", "left as it is"]),
    "in-memory SQLite storage": (["--storage", "sqlite://"], ["in-memory", "sqlite:///studies/name.db"]),
    "prior outside its range": (
        ["--space", "prior_outside.toml"],
        ["prior_outside.toml", "model.blocks", "prior 5", "widen"],
    ),
    "--heartbeat 99999999999": (["--heartbeat", "99999999999"], ["--heartbeat", "from 1 to 3600", "99999999999"]),
    "--recycle-mb nan": (["--recycle-mb", "nan"], ["--recycle-mb", "nan"]),
    "--storage-wait -1": (["--storage-wait", "-1"], ["--storage-wait", "from 0 to", "-1"]),
    "--storage-wait nan": (["--storage-wait", "nan"], ["--storage-wait", "nan"]),
    "--recycle-mb inf": (["--recycle-mb", "inf"], ["--recycle-mb", "inf"]),
    "--budget 5s": (["--budget", "5s"], ["--budget '5s'", "under 30s", "at least 30s"]),
    "--budget 1e20 hours": (["--budget", "99999999999999999999h"], ["over 30 days"]),
    "study name with a trailing newline": (["--study", "nl\n"], ["study name 'nl\\n'", "letters, digits"]),
    # --model: checked before the study exists (these load TensorFlow: the function builds a Keras model)
    "--model file missing": (["--model", "no_such.py:build_model"], ["no_such.py", "give the path"]),
    "--model without a function": (["--model", "fails_to_import.py"], ["expected FILE.py:FUNCTION"]),
    "--model no such function": (["--model", f"{MODELS}:build"], ["has no function 'build'", "build_model"]),
    "--model fails to import": (
        ["--model", "fails_to_import.py:build_model"],
        ["fails_to_import.py", "importing", "RuntimeError: no GPU here"],
    ),
    "--model returns no model": (["--model", f"{MODELS}:not_a_model"], ["returned str, not a Keras model"]),
    "--model with 3 classes for 10": (
        ["--model", f"{MODELS}:build_wrong_classes"],
        ["output has shape (3,)", "10 classes", "Dense(10)"],
    ),
    "--model with a space that samples models": (
        ["--model", f"{MODELS}:build_model", "--space", "cnn"],
        ["space 'cnn'", "[model]", "_training"],
    ),
    "--model on a study of the built-in models": (
        ["--model", f"{MODELS}:build_model", "--study", "existing"],
        ["existing", "model", "drop that option"],
    ),
    "--max-params 0": (["--max-params", "0"], ["--max-params", "positive", "0"]),
    "--tensorboard on a file": (["--tensorboard", "a_file"], ["--tensorboard", "a_file"]),
    "--mlflow folder under a file": (["--mlflow", "a_file/runs"], ["--mlflow", "a_file"]),
}


def check_one_line_error(result, words: list[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    assert PASSWORD not in result.stdout + result.stderr
    return lines[0]


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_gives_one_line_and_leaves_studies_alone(work: Path, case: str):
    args, words = CASES[case]
    if "--studies-dir" in args:
        args = ["--trials", "1", "--epochs", "1", *args]
    else:
        args = [*QUICK, *args]
    if "--study" not in args:
        args = ["--study", "fresh", *args]
    before = snapshot(work)
    check_one_line_error(run_cli(*args, cwd=work), words)
    assert snapshot(work) == before  # no new study file, existing ones byte for byte


@pytest.mark.parametrize(
    "args, words",
    [
        (["lr-find", "--max-lr", "inf"], ["--max-lr", "positive finite", "inf"]),
        (["lr-find", "--min-lr", "1", "--max-lr", "0.5"], ["--min-lr must be below --max-lr"]),
        (["train", "--recipe", ""], ["--recipe needs a dataset", "digits"]),
        (["train", "--config", ""], ["--config needs a file"]),
    ],
)
def test_bad_input_to_other_commands_is_one_line_before_tensorflow(work: Path, args: list[str], words: list[str]):
    before = snapshot(work)
    check_one_line_error(run_cli(*args, cwd=work), words)
    assert snapshot(work) == before


def test_unreachable_server_hides_the_password(work: Path):
    url = f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"  # nothing listens on port 1
    line = check_one_line_error(
        run_cli(*QUICK, "--storage", url, cwd=work), ["cannot open storage", "u:***@127.0.0.1:1"]
    )
    assert "postgresql" in line


NOBODY = 65534


def _runs_as_nobody(folder: Path) -> bool:
    """Whether an unprivileged user can run this checkout's Python and import the package
    (a checkout under /root cannot be read by one)."""
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import search"],
            cwd=folder,
            user=NOBODY,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(folder)},
        )
    except PermissionError:  # the interpreter itself is out of its reach (a Python under /root)
        return False
    return probe.returncode == 0


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_read_only_studies_folder(tmp_path: Path):
    """A studies folder the user cannot write to.  As a user: a chmod 555 folder.  As root
    (CI runs as root, and root writes to any chmod 555 folder): the command runs as the
    unprivileged user 'nobody'; where that user cannot read this checkout, the folder is a
    read-only mount instead, which binds root too."""
    work = Path(tempfile.mkdtemp(prefix="cnn-search-ro-"))  # not under tmp_path: pytest makes that 0700, root's own
    locked = work / "locked"
    locked.mkdir()
    mounted = False
    try:
        work.chmod(0o777)
        locked.chmod(0o555)
        user = None
        if os.geteuid() == 0:
            if _runs_as_nobody(work):
                user = NOBODY
            else:
                mount = subprocess.run(
                    ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(locked)], capture_output=True
                )
                if mount.returncode:
                    pytest.skip("as root, with neither 'nobody' able to read this checkout nor mount permitted")
                mounted = True
        result = run_cli(*QUICK, "--studies-dir", "locked", cwd=work, user=user)
        check_one_line_error(result, ["locked", "not writable", "--studies-dir"])
        assert not any(locked.iterdir())  # nothing was written
    finally:
        if mounted:
            subprocess.run(["umount", "--lazy", str(locked)], capture_output=True)
        locked.chmod(0o755)
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("db", ["other_program", "empty"])
def test_reading_commands_leave_a_foreign_database_byte_for_byte(work: Path, db: str):
    before = snapshot(work)
    for command in ("best", "export", "report"):
        result = run_cli(command, "--study", "x", "--storage", f"sqlite:///studies/{db}.db", cwd=work)
        check_one_line_error(result, [f"{db}.db", "left as it is"])
    assert snapshot(work) == before


EDITED_EXPORTS = {
    # name: (change to the export, words the message must contain)
    "model.kind a list": (lambda e: e["config"]["model"].update(kind=["cnn"]), ["model.kind", "['cnn']"]),
    "source.monitor a number": (lambda e: e["source"].update(monitor=5), ["source.monitor", "5"]),
    "source.split_seed -1": (lambda e: e["source"].update(split_seed=-1), ["source.split_seed", "-1"]),
    "config.seed -1": (lambda e: e["config"].update(seed=-1), ["seed", "-1"]),
    "config.seed 2**40": (lambda e: e["config"].update(seed=2**40), ["seed", str(2**40)]),
    "source.value a string": (lambda e: e["source"].update(value="high"), ["source.value", "'high'"]),
}


@pytest.mark.parametrize("case", list(EDITED_EXPORTS), ids=list(EDITED_EXPORTS))
def test_train_refuses_an_edited_export_before_training(work: Path, case: str):
    import json

    from search.core.config import RunConfig

    export = {
        "schema_version": 1,
        "config": RunConfig().to_dict(),
        "source": {"study": "s", "trial": 0, "value": 0.9, "monitor": "val_accuracy", "split_seed": 0},
    }
    change, words = EDITED_EXPORTS[case]
    change(export)
    (work / "edited.json").write_text(json.dumps(export))
    before = snapshot(work)
    check_one_line_error(run_cli("train", "--config", "edited.json", "--keep-val", "--out", "out", cwd=work), words)
    assert snapshot(work) == before and not (work / "out").exists()


def test_train_on_a_missing_dataset_leaves_no_output_folder(work: Path):
    import json

    from search.core.config import DataConfig, RunConfig

    config = RunConfig(data=DataConfig("folder:no/such/folder"))
    (work / "missing.json").write_text(json.dumps({"schema_version": 1, "config": config.to_dict(), "source": {}}))
    result = run_cli("train", "--config", "missing.json", "--out", "out", cwd=work)
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr
    assert not (work / "out").exists()
