"""Run config -> Keras model.  Plain functions, no Optuna.

Every model starts with an input-normalization layer built from training-split
statistics, so a saved model takes raw pixels, and ends in a float32 softmax (safe
under mixed precision).  Weight decay lives in the optimizer, not in the layers.

For text (``text_length`` L set) the trunk stays and the head becomes one softmax over
the alphabet per character position: a Dense(L * C) reshaped to (L, C), which is L
independent Dense(C) heads in one layer, so the output is (batch, L, C) and one
categorical cross-entropy (averaged over positions) trains them all.  The ResNet's
global average pooling would erase where a character is, so for text it averages over
height only and keeps the columns, left to right.  ``string_accuracy`` (all positions
right) is logged as ``accuracy`` and per-character accuracy as ``char_accuracy``.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from search.core.config import CNNConfig, CustomModelConfig, ModelConfig, ResNetConfig
from search.errors import ConfigError

# Keras' default (0.99) needs hundreds of steps before the moving statistics used at
# evaluation catch up; short trials on small data evaluate with stale statistics.
BN_MOMENTUM = 0.9
STEM = "stem"  # the layer name of a CNN's 2x2 stem (``CNNConfig.stem``)
WHITEN_IMAGES = 5000  # training images a whitening stem's patch statistics come from (airbench's 5,000)

__all__ = [
    "InputStats",
    "PerImageStandardization",
    "FlipBatch",
    "MeanOfFlips",
    "build_model",
    "whiten_stem",
    "normalization_layer",
    "string_accuracy",
    "compile_metrics",
]


@dataclass(frozen=True)
class InputStats:
    """What the normalization layer needs; computed from the training split only."""

    pixel_max: float
    mean: tuple[float, ...]
    variance: tuple[float, ...]


@keras.saving.register_keras_serializable(package="cnn_search")
class PerImageStandardization(layers.Layer):
    """Subtract each image's mean and divide by its standard deviation (all channels)."""

    def call(self, inputs):
        x = keras.ops.cast(inputs, self.compute_dtype)
        mean = keras.ops.mean(x, axis=(1, 2, 3), keepdims=True)
        std = keras.ops.std(x, axis=(1, 2, 3), keepdims=True)
        n = keras.ops.cast(keras.ops.prod(keras.ops.shape(x)[1:]), x.dtype)
        # like tf.image.per_image_standardization: never divide by less than 1/sqrt(N)
        return (x - mean) / keras.ops.maximum(std, keras.ops.rsqrt(n))


@keras.saving.register_keras_serializable(package="cnn_search")
class FlipBatch(layers.Layer):
    """Flip test-time augmentation, first half: in inference, the batch followed by its
    mirror images (batch 2B); in training, the batch as it is."""

    def call(self, inputs, training=None):
        if training:
            return inputs
        return keras.ops.concatenate([inputs, keras.ops.flip(inputs, axis=2)], axis=0)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="cnn_search")
class MeanOfFlips(layers.Layer):
    """Flip test-time augmentation, second half: in inference, the mean of each image's
    prediction and its mirror image's (batch 2B back to B); in training, as it is."""

    def call(self, inputs, training=None):
        if training:
            return inputs
        pair = keras.ops.reshape(inputs, (2, -1, *inputs.shape[1:]))
        return keras.ops.mean(pair, axis=0)

    def compute_output_shape(self, input_shape):
        return input_shape


def normalization_layer(mode: str, stats: InputStats) -> layers.Layer:
    if mode == "scale":
        return layers.Rescaling(1.0 / stats.pixel_max, name="scale")
    if mode == "per_channel":
        variance = [max(v, 1e-12) for v in stats.variance]
        return layers.Normalization(mean=list(stats.mean), variance=variance, name="per_channel")
    if mode == "per_image":
        return PerImageStandardization(name="per_image")
    raise ValueError(f"normalization: expected 'scale', 'per_channel' or 'per_image', received {mode!r}")


def build_model(
    model: ModelConfig,
    input_shape: tuple[int, int, int],
    num_classes: int,
    normalization: str,
    stats: InputStats,
    text_length: int | None = None,
    flip_tta: bool = False,
) -> keras.Model:
    """Build (not compile) the classifier that ``model`` describes; with ``text_length``
    L, one softmax over ``num_classes`` characters per position: output (batch, L, C).
    With ``flip_tta`` it predicts, outside training, the mean of each image's
    probabilities and its mirror image's (``FlipBatch`` ... ``MeanOfFlips``)."""
    if isinstance(model, CustomModelConfig):
        if text_length:
            raise ConfigError("model: a model function of your own classifies images; text datasets use cnn or resnet")
        return _wrap_custom(model, input_shape, normalization, stats, flip_tta)
    inputs = keras.Input(shape=input_shape, name="image")
    x = FlipBatch(name="flip_tta")(inputs) if flip_tta else inputs
    x = normalization_layer(normalization, stats)(x)
    if isinstance(model, CNNConfig):
        x = _cnn_body(model, x)
    elif isinstance(model, ResNetConfig):
        x = _resnet_body(model, x, keep_columns=bool(text_length))
    else:
        raise TypeError(f"model: expected CNNConfig or ResNetConfig, received {type(model).__name__}")
    if text_length:
        x = layers.Dense(text_length * num_classes, dtype="float32", name="positions")(x)
        x = layers.Reshape((text_length, num_classes), dtype="float32")(x)
        outputs = layers.Softmax(dtype="float32", name="predictions")(x)
    else:
        outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    if flip_tta:
        outputs = MeanOfFlips(dtype="float32", name="mean_of_flips")(outputs)
    name = "cnn" if isinstance(model, CNNConfig) else f"resnet{model.depth}_v{model.version}"
    return keras.Model(inputs, outputs, name=name)


def _wrap_custom(
    model: CustomModelConfig, input_shape: tuple[int, int, int], normalization: str, stats: InputStats, flip_tta: bool
) -> keras.Model:
    """A model of its user's own (``search.core.custom``) between the parts every model here
    has: raw pixels in, the normalization, flip test-time augmentation, probabilities out
    (a float32 softmax added where the model ends in logits)."""
    from search.core.custom import build, ends_in_softmax

    inner = build(model)
    _uncompile(inner)
    inputs = keras.Input(shape=input_shape, name="image")
    x = FlipBatch(name="flip_tta")(inputs) if flip_tta else inputs
    x = inner(normalization_layer(normalization, stats)(x))
    final = layers.Activation("linear", dtype="float32", name="predictions") if ends_in_softmax(inner) else None
    x = (final or layers.Softmax(dtype="float32", name="predictions"))(x)
    if flip_tta:
        x = MeanOfFlips(dtype="float32", name="mean_of_flips")(x)
    return keras.Model(inputs, x, name="custom")


def _uncompile(model: keras.Model) -> None:
    """Forget how a model's function compiled it (its optimizer is read into the run config
    by ``search.core.custom``): the model around it compiles once, and its saved file holds
    one optimizer, not an unused second one whose variables ``predict`` could not load."""
    if getattr(model, "compiled", False):
        model.optimizer = None
        model.compiled = False
        model._compile_loss = model._compile_metrics = model._loss_tracker = None  # Keras' own compile state


@keras.saving.register_keras_serializable(package="cnn_search")
def string_accuracy(y_true, y_pred):
    """Per text: 1.0 when the most likely character is right at every position, else 0.0."""
    right = keras.ops.equal(keras.ops.argmax(y_true, axis=-1), keras.ops.argmax(y_pred, axis=-1))
    return keras.ops.cast(keras.ops.all(right, axis=-1), "float32")


def compile_metrics(text: bool) -> list:
    """The metrics ``fit`` compiles: ``accuracy``, plus ``char_accuracy`` for text (then
    ``accuracy`` is whole-string accuracy, so the default monitor means the same thing)."""
    if not text:
        return ["accuracy"]
    return [
        keras.metrics.MeanMetricWrapper(string_accuracy, name="accuracy"),
        keras.metrics.CategoricalAccuracy(name="char_accuracy"),
    ]


def _cnn_body(cfg: CNNConfig, x):
    if cfg.stem != "none" and min(x.shape[1], x.shape[2]) >= 2:
        width = 8 * x.shape[-1] if cfg.stem == "whiten" else cfg.filters(0)
        stem = layers.Conv2D(width, 2, padding="valid", use_bias=not cfg.batch_norm, name=STEM)
        stem.trainable = cfg.stem == "conv"  # a whitening stem is set from the data (``whiten_stem``), not learned
        x = stem(x)
        if cfg.batch_norm:
            x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = layers.Activation(cfg.activation)(x)
    size = min(x.shape[1], x.shape[2])
    for b in range(cfg.blocks):
        for i in range(cfg.convs_per_block):
            x = layers.Conv2D(
                cfg.filters(b),
                cfg.kernel_size,
                padding="same",
                use_bias=not cfg.batch_norm,
                kernel_initializer=cfg.initializer,
            )(x)
            if cfg.early_pool and i == 0 and size >= 2:  # airbench: conv, pool, norm, activation
                x = layers.MaxPooling2D(2)(x)
                size //= 2
            if cfg.batch_norm:
                x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
            x = layers.Activation(cfg.activation)(x)
        if not cfg.early_pool and size >= 2:  # small inputs (digits are 8x8) stop pooling at 1x1
            x = layers.MaxPooling2D(2)(x)
            size //= 2
        if cfg.block_dropout > 0:
            x = layers.Dropout(cfg.block_dropout)(x)
    x = {"flatten": layers.Flatten, "max": layers.GlobalMaxPooling2D, "avg": layers.GlobalAveragePooling2D}[
        cfg.pooling
    ]()(x)
    if cfg.dense_units:
        x = layers.Dense(cfg.dense_units, activation=cfg.activation, kernel_initializer=cfg.initializer)(x)
    if cfg.head_dropout > 0:
        x = layers.Dropout(cfg.head_dropout)(x)
    return x


def whiten_stem(model: keras.Model, images: np.ndarray, eps: float = 5e-4, chunk_bytes: float = 64e6) -> None:
    """Set a ``stem="whiten"`` model's stem to whiten the 2x2 patches of ``images`` (at most
    WHITEN_IMAGES of them, as the model sees them: normalized): each eigenvector of the patch
    covariance over the square root of its eigenvalue, and its negative (airbench's ``init_whiten``).
    The covariance is summed a chunk of images at a time (about ``chunk_bytes`` of patches each)."""
    stem = model.get_layer(STEM)
    seen_by_stem = keras.Model(model.input, stem.input)
    h, w, c = stem.input.shape[1:]
    chunk = max(1, int(chunk_bytes // ((h - 1) * (w - 1) * 4 * c * 8)))
    total, count = np.zeros((4 * c, 4 * c)), 0
    for start in range(0, min(len(images), WHITEN_IMAGES), chunk):
        part = images[start : min(start + chunk, WHITEN_IMAGES)].astype("float32")
        seen = np.asarray(keras.ops.convert_to_numpy(seen_by_stem(part, training=True)), dtype="float64")
        patches = np.stack([seen[:, i : h - 1 + i, j : w - 1 + j, :] for i in (0, 1) for j in (0, 1)], axis=3)
        flat = patches.reshape(-1, 4 * c)  # (kernel row, kernel column, channel): the order of a Keras kernel
        total, count = total + flat.T @ flat, count + len(flat)
    values, vectors = np.linalg.eigh(total / count)
    scaled = vectors / np.sqrt(values + eps)  # one column a filter
    kernel = np.concatenate([scaled, -scaled], axis=1).reshape(2, 2, c, 8 * c)
    stem.kernel.assign(kernel.astype(stem.kernel.dtype))


def _conv(filters: int, kernel: int, strides: int, cfg: ResNetConfig):
    if kernel == 1 and strides > 1:
        # TensorFlow 2.21's oneDNN CPU kernels corrupt memory (the process aborts) training
        # a strided 1x1 convolution on inputs from about 64 px up.  A 1x1 max pool with the
        # same stride keeps the same pixels, so pool-then-convolve computes the same thing.
        conv = _conv(filters, 1, 1, cfg)
        pool = layers.MaxPooling2D(1, strides=strides, padding="same")
        return lambda x: conv(pool(x))
    return layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False, kernel_initializer=cfg.initializer
    )


def _bn_act(x, cfg: ResNetConfig):
    return layers.Activation(cfg.activation)(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))


def _resnet_block(x, filters: int, strides: int, cfg: ResNetConfig):
    """One residual block; v1 is post-activation (He 2015), v2 pre-activation (He 2016)."""
    out_filters = filters * (4 if cfg.block == "bottleneck" else 1)
    if cfg.block == "basic":
        convs = [(filters, 3, strides), (filters, 3, 1)]
    else:
        convs = [(filters, 1, 1), (filters, 3, strides), (out_filters, 1, 1)]
    needs_projection = strides != 1 or x.shape[-1] != out_filters
    if cfg.version == 1:
        shortcut = x
        if needs_projection:
            shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM)(_conv(out_filters, 1, strides, cfg)(x))
        y = x
        for i, (f, k, s) in enumerate(convs):
            y = layers.BatchNormalization(momentum=BN_MOMENTUM)(_conv(f, k, s, cfg)(y))
            if i < len(convs) - 1:
                y = layers.Activation(cfg.activation)(y)
        return layers.Activation(cfg.activation)(layers.Add()([y, shortcut]))
    pre = _bn_act(x, cfg)
    shortcut = _conv(out_filters, 1, strides, cfg)(pre) if needs_projection else x
    y = pre
    for i, (f, k, s) in enumerate(convs):
        if i > 0:
            y = _bn_act(y, cfg)
        y = _conv(f, k, s, cfg)(y)
    return layers.Add()([y, shortcut])


def _resnet_body(cfg: ResNetConfig, x, keep_columns: bool = False):
    x = _conv(cfg.base_filters, 3, 1, cfg)(x)
    if cfg.version == 1:
        x = _bn_act(x, cfg)
    size = min(x.shape[1], x.shape[2])
    for stage in range(3):
        filters = cfg.base_filters * 2**stage
        for i in range(cfg.blocks_per_stage):
            strides = 2 if (stage > 0 and i == 0 and size >= 2) else 1
            if strides == 2:
                size //= 2
            x = _resnet_block(x, filters, strides, cfg)
    if cfg.version == 2:
        x = _bn_act(x, cfg)
    if keep_columns:  # text: average over height, keep each column's features in order
        x = layers.Flatten()(layers.AveragePooling2D(pool_size=(x.shape[1], 1))(x))
    else:
        x = layers.GlobalAveragePooling2D()(x)
    if cfg.head_dropout > 0:
        x = layers.Dropout(cfg.head_dropout)(x)
    return x
