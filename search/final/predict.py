"""Run a trained model on images: read them the way training read its images, predict
with ``model.keras`` loaded in Keras' safe mode (never the SavedModel, which is a
program: ``search.final.safe_model``), name the answers.

Inputs are image files, folders (every image file under them, sorted), and
``npz:PATH`` (an array ``x``, or ``x_test``, or the file's only array, optionally with
labels ``y`` / ``y_test``).  Image files go through the training loaders' reader
(``search.core.images.read_image``), so a decompression bomb or a file that is not an image
is one line, and are matched to the model's input the way training matched them:

* a class model refuses another size (``folder:`` training refused mixed sizes, and a
  resized image is not what the model was measured on); a grey image for a colour
  model becomes RGB (as training did to grey images among colour ones), a colour image
  whose channels are all equal becomes grey, any other colour image for a grey model
  is refused;
* a text model resizes (bilinear) and converts an image to its size and mode, with a
  note, as ``textfolder:`` training did to every image after the first;
* pixel range: image files hold 0..255; a model trained on another range (digits:
  0..16) gets them scaled to it, with a note.  npz arrays are taken as they are, like
  an ``npz:`` dataset's.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search.core.images import IMAGE_SUFFIXES, read_image
from search.errors import DataError, UsageError
from search.final.serving import ModelInfo

__all__ = [
    "Inputs",
    "read_inputs",
    "load_checked",
    "predict_probabilities",
    "prediction_rows",
    "format_row",
    "write_rows",
    "OUT_SUFFIXES",
]

OUT_SUFFIXES = (".csv", ".json")


@dataclass
class Inputs:
    """Images ready for the model (float32, N x H x W x C), a name for each, the true
    label where an npz gave one (class name or text, else None), and notes to print."""

    names: list[str] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    truth: list[str | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def array(self) -> np.ndarray:
        return np.stack(self.images).astype(np.float32, copy=False)


NOT_AN_IMAGE = f"pass image files ({', '.join(sorted(IMAGE_SUFFIXES))})"


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in shape)


def read_inputs(specs: Sequence[str], info: ModelInfo) -> Inputs:
    """Every image ``specs`` name, checked against ``info``; one line for the first bad one."""
    inputs = Inputs()
    resized: list[str] = []
    files_read = 0
    for spec in specs:
        if spec.startswith("npz:"):
            _read_npz(Path(spec[4:]), spec, info, inputs)
            continue
        path = Path(spec)
        if path.is_dir():
            files = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not files:
                raise DataError(
                    f"{path}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}); check the folder"
                )
        elif path.is_file():
            files = [path]
        else:
            raise DataError(f"{spec}: no such file or folder; pass image files, folders of images, or npz:PATH")
        files_read += len(files)
        for file in files:
            image, was_resized = _fit_image(file, info)
            if was_resized:
                resized.append(file.name)
            inputs.names.append(str(file))
            inputs.images.append(image)
            inputs.truth.append(None)
    h, w, _ = info.input_shape
    if resized:
        inputs.notes.append(
            f"note: resized {len(resized)} image(s) to {w}x{h} (width x height) as training resized "
            f"text images, e.g. {resized[0]}"
        )
    if info.pixel_max != 255 and files_read:
        inputs.notes.append(
            f"note: the model was trained on pixels 0..{info.pixel_max:g}; image files' 0..255 were scaled to that"
        )
    return inputs


def _fit_image(path: Path, info: ModelInfo) -> tuple[np.ndarray, bool]:
    """One image file as the model takes it, and whether it was resized."""
    h, w, c = info.input_shape
    if info.text_length:  # as textfolder: read its test split: the training images' mode and size
        image = read_image(path, mode="L" if c == 1 else "RGB", size=(h, w), fix=NOT_AN_IMAGE)
        resized = _original_size(path) != (h, w)
    else:
        image, resized = read_image(path, fix=NOT_AN_IMAGE), False
        if image.shape[:2] != (h, w):
            raise DataError(
                f"{path}: image is {_shape(image.shape)} but the model takes {_shape(info.input_shape)} "
                f"(height x width x channels); resize it to {w}x{h} (width x height) first"
            )
        if c == 3 and image.shape[-1] == 1:
            image = np.repeat(image, 3, axis=-1)
        elif c == 1 and image.shape[-1] == 3:
            if not (np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])):
                raise DataError(
                    f"{path}: image is {_shape(image.shape)} (colour) but the model takes "
                    f"{_shape(info.input_shape)} (grey; height x width x channels); convert it to greyscale first"
                )
            image = image[..., :1]
    pixels = image.astype(np.float32)
    if info.pixel_max != 255:
        pixels *= info.pixel_max / 255.0
    return pixels, resized


def _original_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:  # read_image opened it already: header only
        return im.height, im.width


def _read_npz(path: Path, spec: str, info: ModelInfo, inputs: Inputs) -> None:
    from search.core.loaders import as_images

    if not path.is_file():
        raise DataError(f"{spec}: no such file; check the path after 'npz:'")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # a truncated or foreign file can raise almost anything
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}); save it with numpy.savez") from e
    named = [(x_key, y_key) for x_key, y_key in (("x", "y"), ("x_test", "y_test")) if x_key in arrays]
    if named:
        x_key, y_key = named[0]
    elif len(arrays) == 1:
        x_key, y_key = next(iter(arrays)), ""
    else:
        raise DataError(f"{path}: holds arrays {sorted(arrays)}; name the images x (or x_test), labels y (or y_test)")
    x = as_images(arrays[x_key], path, x_key)
    if x.shape[1:] != tuple(info.input_shape):
        raise DataError(
            f"{path}: {x_key} holds images of {_shape(x.shape[1:])} but the model takes {_shape(info.input_shape)} "
            "(height x width x channels); save images of that shape"
        )
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise DataError(f"{path}: {x_key} has NaN or infinite pixels; clean or drop those images")
    truth: list[str | None] = [None] * len(x)
    if y_key in arrays:
        truth = _labels(np.asarray(arrays[y_key]), len(x), path, y_key, info)
    inputs.names.extend(f"{spec}[{i}]" for i in range(len(x)))
    inputs.images.extend(x.astype(np.float32))
    inputs.truth.extend(truth)


def _labels(y: np.ndarray, n: int, path: Path, key: str, info: ModelInfo) -> list[str | None]:
    """An npz's labels as names: class indices (N,), or for text (N, L) indices or strings."""
    k, length = len(info.class_names), info.text_length
    if length and y.dtype.kind in "US":
        texts = [str(t) for t in y.reshape(-1)]
        if len(texts) != n:
            raise DataError(
                f"{path}: {key} has {len(texts)} texts for {n} images; give one text per image, or leave {key} out"
            )
        return texts  # type: ignore[return-value]
    expected = (n, length) if length else (n,)
    if not np.issubdtype(y.dtype, np.integer) or y.size != int(np.prod(expected)):
        what = f"integers of shape {expected}" + (" or texts" if length else "")
        raise DataError(
            f"{path}: {key} has shape {y.shape}, dtype {y.dtype}; labels must be {what}, or leave {key} out"
        )
    y = y.reshape(expected)
    if y.size and (y.min() < 0 or y.max() >= k):
        bad = int(y.max()) if y.max() >= k else int(y.min())
        raise DataError(
            f"{path}: {key} holds label {bad}; the model's labels are "
            f"0..{k - 1} ({k} classes); fix it, or leave {key} out"
        )
    if length:
        chars = np.asarray(info.class_names)
        return ["".join(row) for row in chars[y]]
    return [info.class_names[i] for i in y]


def load_checked(model_file: Path, info: ModelInfo):
    """``model.keras`` loaded in safe mode (no code from the folder runs) and checked
    against ``labels.json``; one line for a damaged or edited folder."""
    from search.final.safe_model import check_against_labels, load_safe

    model = load_safe(model_file)
    check_against_labels(model, info, model_file.parent)
    return model


def predict_probabilities(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's probabilities on ``x`` (raw pixels: its normalization is inside)."""
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def prediction_rows(info: ModelInfo, inputs: Inputs, probabilities: np.ndarray, top_k: int) -> list[dict[str, Any]]:
    """Per image: the top ``top_k`` classes with probabilities, or for text the string and
    each position's probability; ``true`` and ``right`` where the label is known."""
    rows: list[dict[str, Any]] = []
    names = np.asarray(info.class_names)
    for name, p, truth in zip(inputs.names, probabilities, inputs.truth):
        row: dict[str, Any] = {"image": name}
        if info.text_length:
            row["text"] = "".join(names[p.argmax(axis=-1)])
            row["confidence"] = [round(float(v), 4) for v in p.max(axis=-1)]
            answer = row["text"]
        else:
            order = np.argsort(-p, kind="stable")[:top_k]
            row["top"] = [{"class": str(names[i]), "probability": round(float(p[i]), 4)} for i in order]
            answer = row["top"][0]["class"]
        if truth is not None:
            row["true"], row["right"] = truth, answer == truth
        rows.append(row)
    return rows


def format_row(row: dict[str, Any]) -> str:
    """One line: ``cat.png: cat 0.9120, dog 0.0610, ...`` or ``c.png: 4821 (0.99 0.97 0.95 0.99)``."""
    if "text" in row:
        answer = f"{row['text']} (per position {' '.join(f'{c:.2f}' for c in row['confidence'])})"
    else:
        answer = ", ".join(f"{t['class']} {t['probability']:.4f}" for t in row["top"])
    truth = f"  [true {row['true']}{'' if row['right'] else ', wrong'}]" if "true" in row else ""
    return f"{row['image']}: {answer}{truth}"


def check_out_path(out: str | None) -> Path | None:
    if out is None:
        return None
    path = Path(out)
    if path.suffix.lower() not in OUT_SUFFIXES:
        raise UsageError(f"--out {out}: expected a .csv or .json file name, received {path.suffix or 'no suffix'}")
    from search.core.outputs import check_output_file

    check_output_file(path, "--out", "predictions")
    return path


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """``.json``: the rows as a list; ``.csv``: a row per image, a column per rank (or position)."""
    from search.core.outputs import atomic_write

    if path.suffix.lower() == ".json":
        atomic_write(path, json.dumps(rows, indent=1) + "\n")
        return
    f = io.StringIO(newline="")  # the table is built in memory, then written in one atomic step
    writer = csv.writer(f)
    first = rows[0]
    labelled = any("true" in r for r in rows)
    if "text" in first:
        header = ["image", "text", *(f"confidence_{i + 1}" for i in range(len(first["confidence"])))]
    else:
        header = ["image", *(f"{what}_{i + 1}" for i in range(len(first["top"])) for what in ("class", "probability"))]
    writer.writerow(header + (["true", "right"] if labelled else []))
    for r in rows:
        cells = (
            [r["image"], r["text"], *r["confidence"]]
            if "text" in r
            else [r["image"], *(v for t in r["top"] for v in (t["class"], t["probability"]))]
        )
        writer.writerow(cells + ([r.get("true", ""), r.get("right", "")] if labelled else []))
    atomic_write(path, f.getvalue())
