from __future__ import annotations

import keras
import numpy as np
import pytest

from search.core.latency import measure_latency


def _model(width: int) -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(width, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def test_latency_is_milliseconds_per_image_of_a_fixed_batch():
    images = np.random.default_rng(0).uniform(0, 16, (50, 8, 8, 1)).astype(np.float32)
    ms, how = measure_latency(_model(16), images, batch=32, warmup=2, repeats=5)
    assert 0 < ms < 1000
    assert how["batch"] == 32 and (how["warmup"], how["repeats"]) == (2, 5)
    assert how["device"].startswith(("CPU", "GPU")) and how["threads"] >= 0


def test_a_batch_larger_than_the_images_uses_them_all():
    images = np.zeros((5, 8, 8, 1), dtype=np.uint8)  # raw pixels, as the saved model takes them
    _, how = measure_latency(_model(4), images, batch=32, warmup=1, repeats=1)
    assert how["batch"] == 5


def test_nothing_to_measure_is_refused():
    with pytest.raises(ValueError, match="at least one image"):
        measure_latency(_model(4), np.zeros((0, 8, 8, 1), dtype=np.float32))
