from __future__ import annotations

import numpy as np
import tensorflow as tf

from search.core.config import AugmentConfig
from search.core.pipeline import augment_batch, make_pipeline


def arrays(n=10, h=6, w=6, c=1):
    x = np.arange(n * h * w * c, dtype=np.uint8).reshape(n, h, w, c)
    return tf.constant(x), tf.constant(np.arange(n) % 3)


def test_batches_have_float_images_and_one_hot_labels():
    x, y = arrays()
    batches = list(make_pipeline(x, y, 3, 4, shuffle=False, seed=0))
    assert [int(b[0].shape[0]) for b in batches] == [4, 4, 2]
    images, labels = batches[0]
    assert images.dtype == tf.float32 and labels.shape == (4, 3)
    np.testing.assert_array_equal(images.numpy(), x.numpy()[:4].astype("float32"))
    np.testing.assert_array_equal(labels.numpy().argmax(1), [0, 1, 2, 0])


def test_shuffle_is_seeded_and_covers_every_image_once_per_epoch():
    x, y = arrays(20)

    def order(seed):
        return np.concatenate(
            [
                b[1].numpy().argmax(1) * 0 + b[0].numpy()[:, 0, 0, 0]
                for b in make_pipeline(x, y, 3, 8, shuffle=True, seed=seed)
            ]
        )

    a, b, c = order(1), order(1), order(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert sorted(a.tolist()) == sorted(x.numpy()[:, 0, 0, 0].astype(float).tolist())


def test_flip_flips_some_images_and_keeps_the_rest():
    images = tf.constant(np.random.default_rng(0).uniform(size=(64, 5, 5, 1)).astype("float32"))
    out = augment_batch(images, AugmentConfig(horizontal_flip=True), tf.constant([1, 2])).numpy()
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images.numpy())]
    same = [np.array_equal(o, i) for o, i in zip(out, images.numpy())]
    assert all(f or s for f, s in zip(flipped, same))
    assert 10 < sum(flipped) < 54


def test_pad_crop_shifts_each_image_by_its_own_offset():
    images = tf.constant(np.ones((32, 8, 8, 1), dtype="float32"))
    out = augment_batch(images, AugmentConfig(pad_crop=2), tf.constant([3, 4])).numpy()
    assert out.shape == (32, 8, 8, 1)
    zeros = (out == 0).sum(axis=(1, 2, 3))  # zero border revealed by the shift
    assert len(set(zeros.tolist())) > 3 and zeros.max() <= 8 * 8 - 6 * 6
    again = augment_batch(images, AugmentConfig(pad_crop=2), tf.constant([3, 4])).numpy()
    np.testing.assert_array_equal(out, again)


def test_translate_keeps_pixel_values_from_the_image():
    images = tf.constant(np.random.default_rng(1).uniform(1, 2, size=(8, 10, 10, 3)).astype("float32"))
    out = augment_batch(images, AugmentConfig(translate=0.2), tf.constant([5, 6])).numpy()
    assert out.shape == images.shape and out.min() >= 1.0  # reflected borders, no zeros


def test_augmented_pipeline_is_repeatable():
    x, y = arrays(16, 8, 8, 3)
    cfg = AugmentConfig(horizontal_flip=True, pad_crop=2)
    first = [b[0].numpy() for b in make_pipeline(x, y, 3, 8, shuffle=True, seed=4, augment=cfg)]
    second = [b[0].numpy() for b in make_pipeline(x, y, 3, 8, shuffle=True, seed=4, augment=cfg)]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_cutout_erases_one_square_per_image_with_the_batch_mean():
    rng = np.random.default_rng(2)
    images = tf.constant(rng.uniform(10, 20, size=(64, 16, 16, 3)).astype("float32"))
    out = augment_batch(images, AugmentConfig(cutout=0.375), tf.constant([7, 8])).numpy()  # 6 of 16 pixels
    mean = images.numpy().mean(axis=(0, 1, 2))
    erased = np.all(out == mean, axis=-1) & ~np.all(images.numpy() == mean, axis=-1)  # (B, H, W)
    counts = erased.sum(axis=(1, 2))
    assert counts.max() == 36 and counts.min() >= 9  # a whole square, or the part of it inside the image
    assert len(set(counts.tolist())) > 1  # squares over the border lose their outside part
    for _image, mask in zip(out, erased):
        rows, cols = np.nonzero(mask)
        assert mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()  # one rectangle
    kept = ~erased
    np.testing.assert_array_equal(out[kept], images.numpy()[kept])
    np.testing.assert_array_equal(out, augment_batch(images, AugmentConfig(cutout=0.375), tf.constant([7, 8])).numpy())


def test_pipelines_run_without_tf_data_autotuning():
    """Dropping an autotuned iterator waits for its autotuner's sleeping thread (up to
    20 s an epoch on one core: docs/benchmarks/epoch-time.md); every pipeline turns it off,
    augmented or not, and still prepares its batches ahead in parallel."""
    x, y = arrays(20)
    plain = make_pipeline(x, y, 3, 8, shuffle=False, seed=0)
    augmented = make_pipeline(x, y, 3, 8, shuffle=True, seed=0, augment=AugmentConfig(horizontal_flip=True))
    for ds in (plain, augmented):
        assert ds.options().autotune.enabled is False
        assert sum(int(b[0].shape[0]) for b in ds) == 20
