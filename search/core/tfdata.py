"""Your own ``tf.data`` input: ``from_tf_data(train, validation=None, test=None)``.

A search trains many models on the same images, each with its own batch size, shuffling
seed and augmentation, so cnn-search reads a ``tf.data.Dataset`` of ``(image, label)``
once into memory (batched or not: a batched one is unbatched) and then treats it as any
dataset: the search shuffles it per trial (seeded), batches it at each trial's batch
size, and augments the training images as the trial's config says; your pipeline's own
shuffling, batching and prefetching are not kept (its map steps, decoding and resizing,
are: they ran while it was read).  Labels are integers or one-hot vectors.  With
``validation``, the search judges trials on it as given; without, it carves a stratified
``val_split`` from ``train`` as for arrays.  ``test``, when given, is touched only by
``train``; without, 20% of ``train`` is set aside (seed 0), as for a folder.

A pipeline that repeats forever (``.repeat()`` without a count) cannot be read into
memory: a one-line ``DataError`` says so.  One larger than memory is not for this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from search.core import loaders
from search.core.data import Dataset, from_arrays, raw_from_arrays, with_splits
from search.errors import DataError

__all__ = ["from_tf_data", "is_tf_data"]


def is_tf_data(value: Any) -> bool:
    """Whether ``value`` is a ``tf.data.Dataset``, or a tuple of them (train, validation[, test])."""
    if isinstance(value, tuple) and value:
        return all(is_tf_data(v) or v is None for v in value) and is_tf_data(value[0])
    return type(value).__module__.startswith("tensorflow") and hasattr(value, "element_spec")


def read(dataset: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The images and integer labels of a ``tf.data.Dataset`` of ``(image, label)`` pairs."""
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        raise DataError(f"{what}: expected a tf.data.Dataset of (image, label), received {type(dataset).__name__}")
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise DataError(f"{what}: expected elements (image, label), received {spec}; map it to (image, label) pairs")
    if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise DataError(f"{what}: the dataset repeats forever; drop its .repeat() (the search sets the epochs)")
    shape = spec[0].shape
    if shape.rank == 4 or (shape.rank == 3 and shape[0] is None):
        dataset = dataset.unbatch()  # batched: (B, H, W, C) images, or (B, H, W) grey ones
    xs, ys = [], []
    for x, y in dataset.as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    if not xs:
        raise DataError(f"{what}: the dataset holds no images")
    x, y = np.stack(xs), np.stack(ys)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = y.argmax(axis=1)
    return x, y.reshape(-1).astype(np.int64)


def from_tf_data(
    train: Any,
    validation: Any = None,
    test: Any = None,
    *,
    class_names: tuple[str, ...] | list[str] | None = None,
    name: str = "tf-data",
    val_split: float = 0.1,
    split_seed: int = 0,
    pixel_max: float | None = None,
) -> Dataset:
    """A dataset from ``tf.data`` pipelines (see the module's docstring for what is kept)."""
    x, y = read(train, "train")
    x_test, y_test = read(test, "test") if test is not None else (None, None)
    if validation is None:
        return from_arrays(
            x, y, x_test, y_test, class_names=class_names, name=name, val_split=val_split,
            split_seed=split_seed, pixel_max=pixel_max,
        )  # fmt: skip
    x_val, y_val = read(validation, "validation")
    names = _names(class_names, y, y_val)  # a class only the validation images show is still a class
    raw = raw_from_arrays(x, y, x_test, y_test, class_names=names, name=name, pixel_max=pixel_max)
    where = Path(name)
    x_val = loaders.as_images(x_val, where, "validation")
    loaders.same_image_shape(raw.x_train, x_val, where)
    y_val = loaders.as_labels(y_val, len(x_val), where, "validation")
    if y_val.max() >= len(names):
        raise DataError(f"dataset '{name}': validation labels outside 0..{len(names) - 1}; fix the labels")
    return with_splits(raw, name, raw.x_train, raw.y_train, x_val, y_val)


def _names(class_names: Any, *labels: np.ndarray) -> tuple[str, ...]:
    if class_names is not None:
        return tuple(str(c) for c in class_names)
    return tuple(str(i) for i in range(int(max(int(y.max()) for y in labels)) + 1))
