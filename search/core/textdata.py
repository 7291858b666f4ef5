"""Text images: a label string per image, read from file names or a ``labels.csv``.

A ``textfolder:PATH`` folder holds images (png, jpg, ...) whose text is either

* the file name's stem up to its first ``_`` or ``-`` (``A3F9.png`` and ``A3F9_17.png``
  both read "A3F9"; the suffix tells duplicates apart), or
* given by ``labels.csv`` in the same folder, with a header row and columns ``file`` and
  ``text``; when that file exists it wins, and only the images it lists are read (use it
  for texts with ``_``, ``-`` or characters a file name cannot hold).

Every text has the same length L; the alphabet is the sorted set of characters of the
training texts, and a text becomes L class indices into it.  Images are resized to the
first training image's size (bilinear) and kept grey when the training images are all
grey, RGB otherwise.  No TensorFlow here: ``decode`` works on any model's predictions.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from search.core.images import IMAGE_SUFFIXES, image_error, read_image
from search.errors import DataError

__all__ = ["LABELS_CSV", "text_of", "read_text_split", "alphabet_of", "encode", "decode", "image_error"]

LABELS_CSV = "labels.csv"
_SUFFIX = re.compile(r"[_-]")


def text_of(path: Path) -> str:
    """The text a file name gives: its stem up to the first ``_`` or ``-``."""
    text = _SUFFIX.split(path.stem, maxsplit=1)[0]
    if not text:
        raise DataError(
            f"{path}: the file name gives no text (it starts with '_' or '-'); "
            f"rename it TEXT.png or TEXT_N.png, or list it in {LABELS_CSV}"
        )
    return text


def _entries(folder: Path) -> list[tuple[Path, str]]:
    """(image path, text) pairs of one folder, from labels.csv when present, else from file names."""
    table = folder / LABELS_CSV
    if not table.is_file():
        images = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        return [(p, text_of(p)) for p in images]
    try:
        with open(table, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"file", "text"} <= set(reader.fieldnames):
                raise DataError(
                    f"{table}: expected a header row with columns file,text, "
                    f"received {reader.fieldnames}; add the header"
                )
            rows = [(row["file"], row["text"]) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{table}: not a readable CSV file ({e}); write it as UTF-8 with columns file,text") from e
    entries = []
    for line, (name, text) in enumerate(rows, start=2):
        if not name or not text:
            raise DataError(
                f"{table}: line {line} has an empty file or text ({name!r}, {text!r}); fill it in or delete the line"
            )
        path = folder / name
        if not path.is_file():
            raise DataError(
                f"{table}: line {line} names {name}, which is not in {folder}; fix the name or delete the line"
            )
        entries.append((path, text))
    return entries


def read_text_split(
    folder: Path, size: tuple[int, int] | None = None, mode: str | None = None, length: int | None = None
) -> tuple[np.ndarray, list[str], list[Path]]:
    """Images (N, H, W, C) uint8, their texts and paths, for one folder.

    ``size`` (height, width) and ``mode`` ("L" or "RGB") default to the first image's
    size and to grey unless some image has colour; ``length`` defaults to the first
    text's.  The test split passes the training split's three.
    """
    entries = _entries(folder)
    if not entries:
        raise DataError(f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}); check the folder")
    length = length or len(entries[0][1])
    images: list[np.ndarray] = []
    for path, text in entries:
        if len(text) != length:
            raise DataError(
                f"{path}: text '{text}' has {len(text)} characters but {entries[0][0].name} has {length}; every text "
                f"must have {length} (pad shorter ones with a filler "
                f"character in {LABELS_CSV}, or split the folder by length)"
            )
        arr = read_image(path, mode, size)
        size = size or arr.shape[:2]
        images.append(arr)
    if mode is None and any(a.shape[-1] == 3 for a in images):  # grey and colour mixed: all RGB
        images = [np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a for a in images]
    return np.stack(images), [t for _, t in entries], [p for p, _ in entries]


def alphabet_of(texts: Sequence[str], where: Path) -> str:
    """The sorted set of characters in ``texts``; at least two, or there is nothing to learn."""
    alphabet = "".join(sorted(set("".join(texts))))
    if len(alphabet) < 2:
        raise DataError(
            f"{where}: the texts use {len(alphabet)} distinct character(s) "
            f"({alphabet!r}); a text dataset needs two or more"
        )
    return alphabet


def encode(texts: Sequence[str], alphabet: str, paths: Sequence[Path] = ()) -> np.ndarray:
    """Texts -> (N, L) int64 indices into ``alphabet``; a character outside it is an error naming the file."""
    index = {c: i for i, c in enumerate(alphabet)}
    out = np.empty((len(texts), len(texts[0]) if texts else 0), dtype=np.int64)
    for n, text in enumerate(texts):
        for k, c in enumerate(text):
            if c not in index:
                where = paths[n] if n < len(paths) else f"text {n}"
                raise DataError(
                    f"{where}: text '{text}' has {c!r}, which no training image has (alphabet {alphabet!r}); "
                    "add training images with it, or drop this image"
                )
            out[n, k] = index[c]
    return out


def decode(predictions: np.ndarray, alphabet: str) -> list[str]:
    """Texts from a text model's output (N, L, C) probabilities, or (N, L) indices."""
    predictions = np.asarray(predictions)
    indices = predictions.argmax(axis=-1) if predictions.ndim == 3 else predictions
    if indices.ndim != 2:
        raise ValueError(f"predictions: expected shape (N, L, C) or (N, L), received {predictions.shape}")
    chars = np.asarray(list(alphabet))
    return ["".join(row) for row in chars[indices]]
