"""Datasets: load once per process, split, and describe; no Optuna, no Keras model.

A dataset spec is a name (``digits``, ``mnist``, ``fashion_mnist``, ``cifar10``,
``cifar100``, ``captcha``) or a path spec (``folder:PATH``, ``npz:PATH``,
``textfolder:PATH``, ``captcha:N``).  Loading returns raw pixels (uint8, or float for
digits) with a train and a test split; ``prepare`` then
carves a stratified, seeded validation split from the training split, optionally
limits the training images, and computes normalization statistics from the training
images only.  The test split is kept apart and never used by a search.

Text datasets (``textfolder:``, ``captcha``; see ``textdata`` and ``captchas``) label
each image with a string of ``text_length`` characters: labels are (N, L) indices into
the alphabet, which is ``class_names`` (one character each), and splits are not
stratified.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.core import cifar, loaders
from search.core.config import DataConfig
from search.core.loaders import RawData
from search.errors import DataError

__all__ = [
    "BUILTIN_DATASETS",
    "RawData",
    "Dataset",
    "load_raw",
    "prepare",
    "load_dataset",
    "from_arrays",
    "raw_from_arrays",
    "with_splits",
    "parse_spec",
    "check_arrays",
]

BUILTIN_DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "captcha")
PATH_KINDS = ("folder", "npz", "textfolder", "captcha")


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: it holds arrays
class Dataset:
    """Train / validation / test splits plus what the model needs to normalize inputs."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    pixel_max: float
    mean: tuple[float, ...]  # per channel, training split only
    variance: tuple[float, ...]
    text_length: int | None = None  # text datasets: characters per image; class_names is the alphabet

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        """Classes, or for text datasets the characters each position chooses from."""
        return len(self.class_names)

    @property
    def alphabet(self) -> str | None:
        """The characters a text dataset's labels index, in order; None for class labels."""
        return "".join(self.class_names) if self.text_length else None

    def describe(self) -> str:
        h, w, c = self.input_shape
        labels = (
            f"texts of {self.text_length} characters from {self.alphabet!r}"
            if self.text_length
            else f"{self.num_classes} classes"
        )
        sizes = f"{len(self.x_train)} train / {len(self.x_val)} val / {len(self.x_test)} test"
        return f"{self.name}: {sizes}, {h}x{w}x{c}, {labels}"


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``folder:PATH`` / ``npz:PATH`` / ``textfolder:PATH`` / ``captcha:N`` into kind
    and argument; names have none."""
    for kind in PATH_KINDS:
        if spec.startswith(kind + ":"):
            path = spec[len(kind) + 1 :]
            if kind == "captcha" and not path.isdigit():
                raise DataError(f"dataset '{spec}': expected captcha:N with N a number of images, e.g. captcha:2000")
            if not path:
                raise DataError(f"dataset '{spec}': no path after '{kind}:'; write {kind}:PATH")
            return kind, path
    if spec not in BUILTIN_DATASETS:
        raise DataError(
            f"unknown dataset '{spec}'; use one of {', '.join(BUILTIN_DATASETS)}, folder:PATH, npz:PATH, "
            "textfolder:PATH or captcha:N"
        )
    return spec, None


@functools.lru_cache(maxsize=4)
def load_raw(spec: str, data_dir: str | None = None) -> RawData:
    """Load a dataset's raw splits; cached, so a process loads each dataset once."""
    kind, path = parse_spec(spec)
    if kind == "digits":
        raw = loaders.load_digits()
    elif kind in ("mnist", "fashion_mnist"):
        raw = loaders.load_idx_dataset(kind, data_dir)
    elif kind in ("cifar10", "cifar100"):
        raw = cifar.load_cifar(kind, data_dir)
    elif kind == "folder":
        raw = loaders.load_folder(Path(path))  # type: ignore[arg-type]
    elif kind == "textfolder":
        raw = loaders.load_textfolder(Path(path))  # type: ignore[arg-type]
    elif kind == "captcha":
        from search.core.captchas import DEFAULT_COUNT, captcha_folder

        raw = loaders.load_textfolder(captcha_folder(int(path or DEFAULT_COUNT), data_dir))
    else:
        raw = loaders.load_npz(Path(path))  # type: ignore[arg-type]
    check_arrays(raw, spec)
    return raw


def prepare(raw: RawData, cfg: DataConfig) -> Dataset:
    """Carve the validation split (seeded by ``cfg.split_seed``), apply ``limit_train``
    and compute training statistics."""
    from sklearn.model_selection import train_test_split

    n_classes = len(raw.class_names)
    n_val = max(int(round(len(raw.x_train) * cfg.val_split)), n_classes)
    if len(raw.x_train) - n_val < n_classes:
        raise DataError(
            f"dataset '{cfg.dataset}': {len(raw.x_train)} training images are too few for val_split "
            f"{cfg.val_split}; lower --val-split or add images"
        )
    x_tr, x_val, y_tr, y_val = train_test_split(
        raw.x_train,
        raw.y_train,
        test_size=n_val,
        stratify=loaders.stratify_labels(raw.y_train),
        random_state=cfg.split_seed,
    )
    if cfg.limit_train is not None and cfg.limit_train < len(x_tr):
        x_tr, _, y_tr, _ = train_test_split(
            x_tr, y_tr, train_size=cfg.limit_train, stratify=loaders.stratify_labels(y_tr), random_state=cfg.split_seed
        )
    return with_splits(raw, cfg.dataset, x_tr, y_tr, x_val, y_val)


def with_splits(
    raw: RawData, name: str, x_tr: np.ndarray, y_tr: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> Dataset:
    """``raw``'s test split and labels with these training and validation splits, and the
    normalization statistics of the training split (only)."""
    x64 = x_tr.reshape(-1, x_tr.shape[-1]).astype(np.float64)
    return Dataset(
        name=name,
        x_train=np.ascontiguousarray(x_tr),
        y_train=np.ascontiguousarray(y_tr),
        x_val=np.ascontiguousarray(x_val),
        y_val=np.ascontiguousarray(y_val),
        x_test=raw.x_test,
        y_test=raw.y_test,
        class_names=raw.class_names,
        pixel_max=raw.pixel_max,
        mean=tuple(float(v) for v in x64.mean(axis=0)),
        variance=tuple(float(v) for v in x64.var(axis=0)),
        text_length=raw.text_length,
    )


def load_dataset(cfg: DataConfig) -> Dataset:
    """The dataset ``cfg`` names, split the way ``cfg`` says (a trial's config loads
    exactly the images that trial trained and was judged on)."""
    return prepare(load_raw(cfg.dataset, cfg.data_dir), cfg)


def from_arrays(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    *,
    class_names: tuple[str, ...] | list[str] | None = None,
    name: str = "arrays",
    val_split: float = 0.1,
    split_seed: int = 0,
    pixel_max: float | None = None,
) -> Dataset:
    """A dataset from images already in memory: (N, H, W) or (N, H, W, C) arrays of
    pixels and integer labels 0..K-1.  Without a test split, one is carved (20%,
    stratified, seed 0) as for a folder; then the validation split is carved as
    ``prepare`` does for any dataset.  ``name`` names it in studies and reports.
    ``pixel_max``, the value of a full-intensity pixel, defaults to 255 for integer
    pixels, and to 1 (or the largest pixel, when above 1) for floats."""
    raw = raw_from_arrays(x_train, y_train, x_test, y_test, class_names=class_names, name=name, pixel_max=pixel_max)
    return prepare(raw, DataConfig(name, val_split=val_split, split_seed=split_seed))


def raw_from_arrays(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    *,
    class_names: tuple[str, ...] | list[str] | None = None,
    name: str = "arrays",
    pixel_max: float | None = None,
) -> RawData:
    """``from_arrays``' checked splits, before a validation split is carved: images and
    labels checked, class names (default: 0..max label), ``pixel_max``, the test split
    (carved when not given)."""
    where = Path(name)
    x = loaders.as_images(np.asarray(x_train), where, "x_train")
    y = loaders.as_labels(np.asarray(y_train).reshape(-1), len(x), where, "y_train")
    names = (
        tuple(str(c) for c in class_names)
        if class_names is not None
        else tuple(str(i) for i in range(int(y.max()) + 1))
    )
    if pixel_max is None:
        pixel_max = 255.0 if np.issubdtype(x.dtype, np.integer) else max(1.0, float(x.max()))
    if x_test is None:
        raw = loaders.with_carved_test(x, y, names, pixel_max)
    else:
        xt = loaders.as_images(np.asarray(x_test), where, "x_test")
        yt = loaders.as_labels(np.asarray(y_test).reshape(-1), len(xt), where, "y_test")
        loaders.same_image_shape(x, xt, where)
        raw = RawData(x, y, xt, yt, names, pixel_max)
    check_arrays(raw, name)
    return raw


# --- checks and helpers ------------------------------------------------------------------


def check_arrays(raw: RawData, spec: str) -> None:
    for key in ("x_train", "x_test"):
        x = getattr(raw, key)
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            bad = int((~np.isfinite(x)).any(axis=(1, 2, 3)).sum())
            raise DataError(f"dataset '{spec}': {key} has NaN or infinite pixels in {bad} images; clean or drop them")
    n = len(raw.class_names)
    for key in ("y_train", "y_test"):
        y = getattr(raw, key)
        if len(y) and (y.min() < 0 or y.max() >= n):
            raise DataError(f"dataset '{spec}': {key} has labels outside 0..{n - 1}; fix the labels")
    if raw.text_length:
        return  # every character of the alphabet occurs in the training texts by construction
    counts = np.bincount(raw.y_train, minlength=n)
    if (counts < 2).any():
        empty = [raw.class_names[i] for i in np.flatnonzero(counts < 2)]
        raise DataError(
            f"dataset '{spec}': classes {empty} have fewer than 2 training images; add images or drop the class"
        )
