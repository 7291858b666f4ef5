"""``tf.data`` input (search.core.tfdata): batched or not, integer or one-hot labels, a
validation pipeline kept as given, a test pipeline kept apart, and the refusals; then a
real search and final training from pipelines through ``run_search`` and ``train_final``."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from search.core.tfdata import from_tf_data, is_tf_data
from search.errors import DataError


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return d.images[..., None].astype(np.float32), d.target.astype(np.int64)


def test_a_batched_pipeline_with_one_hot_labels_reads_as_its_images(digits):
    x, y = digits
    ds = tf.data.Dataset.from_tensor_slices((x[:600], tf.one_hot(y[:600], 10))).shuffle(600, seed=1).batch(32)
    data = from_tf_data(ds, name="piped")
    assert is_tf_data(ds) and is_tf_data((ds, ds)) and not is_tf_data(x)
    n = len(data.x_train) + len(data.x_val) + len(data.x_test)
    assert n == 600 and data.input_shape == (8, 8, 1) and data.num_classes == 10
    seen = np.concatenate([data.x_train, data.x_val, data.x_test]).reshape(600, -1)
    assert sorted(map(bytes, seen)) == sorted(map(bytes, x[:600].reshape(600, -1)))  # the same images, none lost
    assert data.pixel_max == 16.0  # floats above 1: their largest pixel, as for arrays


def test_validation_and_test_pipelines_are_kept_as_given(digits):
    x, y = digits
    train = tf.data.Dataset.from_tensor_slices((x[:1000], y[:1000]))
    val = tf.data.Dataset.from_tensor_slices((x[1000:1200], y[1000:1200])).batch(50)
    test = tf.data.Dataset.from_tensor_slices((x[1200:], y[1200:]))
    data = from_tf_data(train, val, test)
    assert np.array_equal(data.x_val, x[1000:1200]) and np.array_equal(data.y_val, y[1000:1200])
    assert np.array_equal(data.x_test, x[1200:]) and len(data.x_train) == 1000
    assert data.mean == pytest.approx(tuple(x[:1000].reshape(-1, 1).mean(axis=0)))  # training images only


def test_pipelines_that_cannot_be_read_are_one_line_errors(digits):
    x, y = digits
    with pytest.raises(DataError, match="repeats forever"):
        from_tf_data(tf.data.Dataset.from_tensor_slices((x, y)).repeat())
    with pytest.raises(DataError, match=r"expected elements \(image, label\)"):
        from_tf_data(tf.data.Dataset.from_tensor_slices(x))
    with pytest.raises(DataError, match="holds no images"):
        from_tf_data(tf.data.Dataset.from_tensor_slices((x[:0], y[:0])))
    with pytest.raises(DataError, match="expected a tf.data.Dataset"):
        from_tf_data(x)


def test_run_search_and_train_final_take_pipelines(digits, tmp_path):
    import search

    x, y = digits
    train = tf.data.Dataset.from_tensor_slices((x[:1200], y[:1200])).batch(64)
    val = tf.data.Dataset.from_tensor_slices((x[1200:1500], y[1200:1500]))
    test = tf.data.Dataset.from_tensor_slices((x[1500:], y[1500:]))
    study = search.run_search((train, val, test), trials=2, epochs=1, studies_dir=tmp_path, study="piped")
    assert len(study.trials) == 2 and study.best_value > 0.1
    config = search.RunConfig.from_dict(study.best_trial.user_attrs["config"])
    result = search.train_final(config, tmp_path / "model", data=(train, val, test))
    predicted = np.asarray(result.model.predict(x[1500:], verbose=0)).argmax(axis=1)
    assert result.metrics["test"]["accuracy"] == pytest.approx(float((predicted == y[1500:]).mean()), abs=1e-4)
