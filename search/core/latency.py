"""Inference latency of a trained model, in milliseconds per image: the ``latency`` objective.

Measured once per trial, after training, on a fixed batch: the first ``BATCH``
validation images (fewer if the split is smaller), raw pixels as a float32 tensor, as
the saved model takes them.  The forward pass ``model(x, training=False)`` is compiled
once with ``tf.function`` (as ``model.predict`` does), called ``WARMUP`` times untimed
(tracing, memory allocation, caches), then ``REPEATS`` times timed; each timed call ends
when its output has been copied to host memory, so work queued on a GPU is counted.
The latency is the median call's time divided by the batch size.

The number describes this machine under its load at the time: compare trials measured
the same way.  Workers on a CPU each get a share of the cores (fewer TensorFlow
threads: a higher latency than one process using them all), and each measurement
competes with the other workers' training; so each trial also records how it was
measured (batch, device, threads).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from search.errors import ResourceError

__all__ = ["BATCH", "WARMUP", "REPEATS", "measure_latency"]

BATCH = 32
WARMUP = 3
REPEATS = 20


def measure_latency(
    model: keras.Model, images: np.ndarray, batch: int = BATCH, warmup: int = WARMUP, repeats: int = REPEATS
) -> tuple[float, dict[str, Any]]:
    """Median milliseconds per image of ``model`` on ``images[:batch]``, and how it was measured:
    ``{"batch", "warmup", "repeats", "device", "threads"}`` (threads 0: TensorFlow's default, all cores)."""
    if len(images) == 0:
        raise ValueError("latency needs at least one image")
    if warmup < 1 or repeats < 1:
        raise ValueError(f"warmup and repeats must be at least 1, received {warmup} and {repeats}")
    x = tf.convert_to_tensor(np.asarray(images[:batch], dtype=np.float32))
    n = int(x.shape[0])
    forward = tf.function(lambda t: model(t, training=False))
    seconds = []
    try:
        for _ in range(warmup):
            out = forward(x)
            out.numpy()
        for _ in range(repeats):
            start = time.perf_counter()
            forward(x).numpy()
            seconds.append(time.perf_counter() - start)
    except tf.errors.ResourceExhaustedError as e:  # fails this trial, not the study
        raise ResourceError(f"out of memory measuring latency on a batch of {n} images") from e
    how = {
        "batch": n,
        "warmup": warmup,
        "repeats": repeats,
        "device": out.device.rsplit("device:", 1)[-1],
        "threads": tf.config.threading.get_intra_op_parallelism_threads(),
    }
    return statistics.median(seconds) * 1000.0 / n, how
