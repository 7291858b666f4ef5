"""``predict`` through the real command line: it agrees with ``metrics.json`` on the test
split, reads image files and folders as training read its images, writes CSV and JSON,
reads a text model's strings, and refuses bad input with one line and exit status 2."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image


def summary(stdout: str) -> str:
    return stdout.strip().splitlines()[-1]


def test_predict_agrees_with_metrics_on_the_test_split(trained_digits, digits, tmp_path):
    np.savez(tmp_path / "test.npz", x_test=digits.x_test, y_test=digits.y_test)
    result = run_cli(
        "predict", "--model", str(trained_digits), "npz:test.npz", "--top-k", "2", "--out", "preds.csv", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    test = json.loads((trained_digits / "metrics.json").read_text())["test"]
    right = round(test["accuracy"] * 359)
    assert (
        summary(result.stdout)
        == f"359 images; accuracy {test['accuracy']:.4f} ({right} of 359 with labels); wrote preds.csv"
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 360 and lines[0].startswith("npz:test.npz[0]: ")
    assert re.fullmatch(r"npz:test\.npz\[0\]: \d 0\.\d{4}, \d 0\.\d{4}  \[true \d(, wrong)?\]", lines[0]), lines[0]
    with open(tmp_path / "preds.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 359 and list(rows[0]) == [
        "image",
        "class_1",
        "probability_1",
        "class_2",
        "probability_2",
        "true",
        "right",
    ]
    assert [r["true"] for r in rows] == [str(y) for y in digits.y_test]
    assert sum(r["right"] == "True" for r in rows) == right
    assert all(float(r["probability_1"]) >= float(r["probability_2"]) for r in rows)


def test_predict_reads_image_files_and_folders_like_the_npz(trained_digits, digits, tmp_path):
    """Digits are 0..16: image files (0..255) are scaled to that; the same pixels given as
    an npz get the very same probabilities."""
    pngs = np.rint(digits.x_test[:12, :, :, 0] * 255 / 16).astype(np.uint8)
    folder = tmp_path / "pngs"
    (folder / "sub").mkdir(parents=True)
    for i, image in enumerate(pngs):
        Image.fromarray(image).save(folder / ("sub" if i % 2 else ".") / f"d{i:02d}.png")
    (folder / "notes.txt").write_text("not an image, and not named like one: skipped in a folder")
    Image.fromarray(np.stack([pngs[0]] * 3, axis=-1)).save(tmp_path / "grey_as_rgb.png")  # lossless as grey
    np.savez(tmp_path / "same.npz", x=(pngs[..., None].astype(np.float32) * np.float32(16 / 255)))
    result = run_cli(
        "predict", "--model", str(trained_digits), "pngs", "grey_as_rgb.png", "--out", "files.json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "note: the model was trained on pixels 0..16; image files' 0..255 were scaled to that" in result.stdout
    assert summary(result.stdout) == "13 images; wrote files.json"
    from_files = json.loads((tmp_path / "files.json").read_text())
    assert [r["image"] for r in from_files[:3]] == [
        "pngs/d00.png",
        "pngs/d02.png",
        "pngs/d04.png",
    ]  # sorted, sub/ after
    assert from_files[-1]["image"] == "grey_as_rgb.png" and from_files[-1]["top"] == from_files[0]["top"]
    assert all(len(r["top"]) == 3 and "true" not in r for r in from_files)

    result = run_cli("predict", "--model", str(trained_digits), "npz:same.npz", "--out", "same.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    from_npz = json.loads((tmp_path / "same.json").read_text())
    by_index = {int(r["image"][-6:-4]): r["top"] for r in from_files[:-1]}
    assert sorted(by_index) == list(range(12))
    for i, row in enumerate(from_npz):
        assert [t["class"] for t in row["top"]] == [t["class"] for t in by_index[i]]
        assert [t["probability"] for t in row["top"]] == pytest.approx(
            [t["probability"] for t in by_index[i]], abs=2e-4
        )


@pytest.fixture(scope="module")
def bad(trained_digits, tmp_path_factory) -> Path:
    """A working folder with one of each bad input."""
    root = tmp_path_factory.mktemp("bad-predict")
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(root / "big.png")
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(root / "red.png")
    (root / "notes.txt").write_text("hello")
    (root / "fake.png").write_bytes(b"not really a png")
    (root / "empty").mkdir()
    (root / "not-a-model").mkdir()
    (root / "old-model").mkdir()
    for name in ("model.keras", "metrics.json", "config.json"):  # what 'train' wrote before saved_model/
        (root / "old-model" / name).write_bytes((trained_digits / name).read_bytes())
    np.savez(root / "wrong.npz", x=np.zeros((3, 28, 28, 1), np.float32))
    np.savez(root / "two.npz", a=np.zeros((3, 8, 8)), b=np.zeros(3))
    np.savez(root / "labels.npz", x=np.zeros((3, 8, 8)), y=np.array([0, 1, 12]))
    (root / "digits-model").symlink_to(trained_digits)
    return root


BAD = {
    # name: (arguments after predict, words the one line must contain)
    "missing model folder": (["--model", "nowhere", "big.png"], ["--model nowhere", "no such folder", "'train' wrote"]),
    "not a model folder": (
        ["--model", "not-a-model", "big.png"],
        ["not-a-model", "labels.json", "model.keras", "the folder 'train' wrote"],
    ),
    "a model folder from before": (
        ["--model", "old-model", "big.png"],
        ["old-model", "labels.json", "train it again with train --config old-model/config.json --out old-model"],
    ),
    "image of another size": (["big.png"], ["big.png: image is 10x12x1 but the model takes 8x8x1", "resize it to 8x8"]),
    "colour image for a grey model": (["red.png"], ["red.png", "8x8x3", "8x8x1", "convert it to greyscale"]),
    "a text file": (
        ["notes.txt"],
        ["notes.txt", "not a readable image", "UnidentifiedImageError", "pass image files (.bmp"],
    ),
    "a broken png": (["fake.png"], ["fake.png", "not a readable image"]),
    "missing input": (["nothing.png"], ["nothing.png", "no such file or folder"]),
    "empty folder": (["empty"], ["empty", "no images found"]),
    "npz of other images": (["npz:wrong.npz"], ["wrong.npz", "28x28x1", "8x8x1"]),
    "npz without x": (["npz:two.npz"], ["two.npz", "['a', 'b']", "name the images x"]),
    "npz labels out of range": (["npz:labels.npz"], ["labels.npz", "y holds label 12", "0..9"]),
    "top-k 0": (["--top-k", "0", "big.png"], ["--top-k", "at least 1", "received 0"]),
    "top-k over the classes": (["--top-k", "11", "big.png"], ["--top-k 11", "10 classes", "1..10"]),
    "out of another kind": (["--out", "preds.txt", "big.png"], ["--out preds.txt", ".csv or .json", ".txt"]),
    "no input": ([], ["predict", "IMAGE|FOLDER|npz:PATH", "required"]),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_to_predict_is_one_line_and_status_2(bad: Path, case: str):
    args, words = BAD[case]
    if "--model" not in args:
        args = ["--model", "digits-model", *args]
    before = sorted(p.name for p in bad.iterdir())
    result = run_cli("predict", *args, cwd=bad)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    assert sorted(p.name for p in bad.iterdir()) == before  # nothing written


@pytest.fixture(scope="module")
def trained_captcha(tmp_path_factory) -> Path:
    """A text model: the captcha recipe on 200 generated captchas, 1 epoch."""
    pytest.importorskip("captcha")
    cwd = tmp_path_factory.mktemp("captcha")
    result = run_cli(
        "train", "--recipe", "captcha:200", "--data-dir", "data", "--epochs", "1", "--out", "model", cwd=cwd
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "model"


def test_predict_reads_a_text_model(trained_captcha, tmp_path):
    import search
    from search.core.config import DataConfig
    from search.core.data import load_dataset

    labels = json.loads((trained_captcha / "labels.json").read_text())
    assert labels["alphabet"] == "0123456789" and labels["text_length"] == 4 and labels["input_shape"] == [40, 100, 1]
    data = load_dataset(DataConfig("captcha:200", data_dir=str(trained_captcha.parent / "data")))
    np.savez(tmp_path / "test.npz", x_test=data.x_test, y_test=data.y_test)
    Image.fromarray(data.x_test[0, :, :, 0]).resize((150, 60)).save(tmp_path / "large.png")
    result = run_cli("predict", "--model", str(trained_captcha), "npz:test.npz", "large.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    test = json.loads((trained_captcha / "metrics.json").read_text())["test"]
    right = round(test["accuracy"] * 40)
    assert (
        summary(result.stdout) == f"41 images; whole-text accuracy {test['accuracy']:.4f} ({right} of 40 with labels)"
    )
    assert (
        "note: resized 1 image(s) to 100x40 (width x height) as training resized text images, e.g. large.png"
        in result.stdout
    )
    expected = search.decode(
        search.load_model(trained_captcha / "model.keras").predict(data.x_test, verbose=0), labels["alphabet"]
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("npz:")]
    for i, (line, text) in enumerate(zip(lines, expected)):
        truth = "".join(labels["alphabet"][c] for c in data.y_test[i])
        assert re.fullmatch(
            rf"npz:test\.npz\[{i}\]: {text} \(per position( 0\.\d\d| 1\.00){{4}}\)  \[true {truth}(, wrong)?\]", line
        ), line
    for name in ("confusion.png", "mistakes.png"):
        assert (trained_captcha / name).is_file()
    assert len(json.loads((trained_captcha / "metrics.json").read_text())["test"]["classification_report"]) == 10 + 3
