"""Where worker processes run: which GPU each sees, how many TensorFlow threads it gets,
and its precision.  ``plan_workers`` is a pure function, so it is tested without a GPU;
``configure_tensorflow`` applies a plan in the worker before TensorFlow runs anything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from search.errors import UsageError

__all__ = ["WorkerPlan", "available_cores", "parse_gpus", "plan_workers", "configure_tensorflow", "QuietRetracing"]


GPU_ID = re.compile(r"^(\d+|(GPU|MIG)-[0-9A-Za-z/-]+)$")  # an index or a UUID, as nvidia-smi -L shows


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker process gets: its index, environment, threads and precision."""

    index: int
    env: tuple[tuple[str, str], ...] = ()  # set before TensorFlow loads
    intra_threads: int | None = None  # None: TensorFlow's default (all cores)
    inter_threads: int | None = None
    mixed_precision: bool = False

    @property
    def gpu(self) -> str | None:
        return dict(self.env).get("CUDA_VISIBLE_DEVICES")

    def describe(self) -> str:
        where = f"GPU {self.gpu}" if self.gpu is not None else "CPU"
        threads = (
            f", {self.intra_threads} TensorFlow thread{'s' * (self.intra_threads != 1)}" if self.intra_threads else ""
        )
        return f"worker {self.index}: {where}{threads}{', mixed precision' if self.mixed_precision else ''}"


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def parse_gpus(text: str | None) -> tuple[str, ...]:
    """``"0,1"`` -> ``("0", "1")``; a GPU may repeat to run two workers on it."""
    if text is None:
        return ()
    ids = tuple(t.strip() for t in text.split(","))
    bad = [t for t in ids if not GPU_ID.match(t)]
    if bad:
        raise UsageError(
            f"--gpus {text!r}: {bad[0]!r} is not a GPU index or UUID; write e.g. --gpus 0,1 (see nvidia-smi -L)"
        )
    return ids


def plan_workers(
    workers: int | None, gpus: Sequence[str] = (), cores: int = 1, mixed_precision: bool = False
) -> tuple[WorkerPlan, ...]:
    """One plan per worker.  With GPUs, worker i sees only ``gpus[i % len(gpus)]``.

    One CPU worker keeps TensorFlow's defaults; several share the cores:
    ``cores // n`` intra-op threads each (at least 1), and 1 inter-op thread (2 when a
    worker has 4 or more cores), so N workers do not fight over the same cores.
    """
    n = workers if workers is not None else max(len(gpus), 1)
    if n < 1:
        raise UsageError(f"--workers must be at least 1, received {n}")
    if n == 1 and not gpus:
        return (WorkerPlan(0, mixed_precision=mixed_precision),)
    share = max(1, cores // n)
    return tuple(
        WorkerPlan(
            index=i,
            env=(("CUDA_VISIBLE_DEVICES", gpus[i % len(gpus)]),) if gpus else (),
            intra_threads=share,
            inter_threads=2 if share >= 4 else 1,
            mixed_precision=mixed_precision,
        )
        for i in range(n)
    )


class QuietRetracing(logging.Filter):
    """Drop TensorFlow's "N out of the last M calls ... triggered tf.function retracing"
    warning: every trial builds a new model, so tracing its train step again is expected
    and the warning's advice does not apply."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def configure_tensorflow(plan: WorkerPlan) -> None:
    """Apply a plan's threads and precision; call before TensorFlow runs anything."""
    from search.core.tfimport import import_tensorflow_quietly

    import_tensorflow_quietly()  # a worker's first import: without the C++ start-up lines
    import tensorflow as tf

    tf.get_logger().addFilter(QuietRetracing())

    if plan.intra_threads:
        tf.config.threading.set_intra_op_parallelism_threads(plan.intra_threads)
        tf.config.threading.set_inter_op_parallelism_threads(plan.inter_threads or 1)
    for gpu in tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(RuntimeError, ValueError):
            tf.config.experimental.set_memory_growth(gpu, True)  # workers sharing a GPU take what they use
    if plan.mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16")
