"""tf.data input pipelines over in-memory arrays.

The arrays become tensors once per dataset (``TensorCache``); each trial builds cheap
index pipelines on top: shuffle indices, batch them, gather the images, augment the
batch, prefetch.  Augmentation is vectorized over the batch and uses stateless
random ops seeded from the run seed, so a run is repeatable.
"""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

from search.core.config import AugmentConfig

__all__ = ["TensorCache", "make_pipeline", "augment_batch"]


class TensorCache:
    """Hold a dataset's arrays as tensors so trials share one copy."""

    _cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @classmethod
    def get(cls, owner: object, x: np.ndarray, y: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
        per_owner = cls._cache.setdefault(owner, {})
        key = (id(x), id(y))
        if key not in per_owner:
            with tf.device("/cpu:0"):
                per_owner[key] = (tf.convert_to_tensor(x), tf.convert_to_tensor(y))
        return per_owner[key]


def make_pipeline(
    x: tf.Tensor,
    y: tf.Tensor,
    num_classes: int,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    augment: AugmentConfig | None = None,
) -> tf.data.Dataset:
    """Batches of (float32 images, one-hot labels); shuffled and augmented when asked."""
    n = int(x.shape[0])
    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def gather(idx):
        images = tf.cast(tf.gather(x, idx), tf.float32)
        labels = tf.one_hot(tf.gather(y, idx), num_classes)
        return images, labels

    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if augment is not None and _active(augment):
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda batch, s: (augment_batch(batch[0], augment, s), batch[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_OPTIONS)


# tf.data's autotuner runs a thread per iterator that sleeps between its optimizations, the
# sleeps doubling up to a minute; dropping an iterator joined that thread, and on one CPU
# core that waited, idle, up to the rest of its sleep (CIFAR-subset epochs: 14-19 s in 20 of
# 29; Fashion-MNIST ~10 s in 4 of 29: docs/benchmarks/epoch-time.md).  Without it the
# parallel maps run as many calls as the machine has cores and the prefetch sizes its buffer
# by its own simpler rule (it grows when the steps wait), without that thread.
_OPTIONS = tf.data.Options()
_OPTIONS.autotune.enabled = False


def _active(cfg: AugmentConfig) -> bool:
    return cfg.horizontal_flip or cfg.translate > 0 or cfg.pad_crop > 0 or cfg.cutout > 0


def augment_batch(images: tf.Tensor, cfg: AugmentConfig, seed: tf.Tensor) -> tf.Tensor:
    """Random flips and shifts, drawn per image from a two-element stateless seed."""
    seed = tf.cast(seed, tf.int64)
    b = tf.shape(images)[0]
    if cfg.horizontal_flip:
        flip = tf.random.stateless_uniform([b], seed=seed) < 0.5
        images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
    h, w = images.shape[1], images.shape[2]
    if cfg.translate > 0:  # shift with reflected borders
        pad = max(1, int(round(cfg.translate * max(h, w))))
        images = _random_shift(images, pad, "REFLECT", seed + 1)
    if cfg.pad_crop > 0:  # shift with zero borders (pad-and-crop)
        images = _random_shift(images, cfg.pad_crop, "CONSTANT", seed + 2)
    if cfg.cutout > 0:
        images = _cutout(images, max(1, int(round(cfg.cutout * min(h, w)))), seed + 3)
    return images


def _cutout(images: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """Erase a ``size`` x ``size`` square centred anywhere in each image (it may hang over
    the border, as in the paper), filled with the batch's mean pixel per channel."""
    h, w = images.shape[1], images.shape[2]
    b = tf.shape(images)[0]
    centre = tf.random.stateless_uniform([b, 2], seed=seed, minval=0, maxval=1)
    cy = tf.cast(centre[:, :1] * h, tf.int32)  # (B, 1)
    cx = tf.cast(centre[:, 1:] * w, tf.int32)
    top, left = cy - size // 2, cx - size // 2
    rows = tf.range(h)[None, :]
    cols = tf.range(w)[None, :]
    in_rows = (rows >= top) & (rows < top + size)  # (B, H)
    in_cols = (cols >= left) & (cols < left + size)  # (B, W)
    mask = in_rows[:, :, None, None] & in_cols[:, None, :, None]  # (B, H, W, 1)
    fill = tf.reduce_mean(images, axis=[0, 1, 2], keepdims=True)
    return tf.where(mask, fill, images)


def _random_shift(images: tf.Tensor, pad: int, mode: str, seed: tf.Tensor) -> tf.Tensor:
    h, w = images.shape[1], images.shape[2]
    pad = min(pad, h - 1, w - 1) if mode == "REFLECT" else pad
    if pad <= 0:
        return images
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode=mode)
    b = tf.shape(images)[0]
    offsets = tf.random.stateless_uniform([b, 2], seed=seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(h)[None, :]  # (B, H)
    cols = offsets[:, 1:] + tf.range(w)[None, :]  # (B, W)
    out = tf.gather(padded, rows, axis=1, batch_dims=1)  # (B, H, W + 2p, C)
    return tf.gather(out, cols, axis=2, batch_dims=1)  # (B, H, W, C)
