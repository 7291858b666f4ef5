from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from search.core.config import CNNConfig, ResNetConfig
from search.core.models import InputStats, PerImageStandardization, build_model

STATS = InputStats(pixel_max=255.0, mean=(120.0, 110.0, 100.0), variance=(3000.0, 2900.0, 2800.0))


def conv_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def test_cnn_follows_its_config():
    cfg = CNNConfig(blocks=3, convs_per_block=2, base_filters=16, filter_growth=2.0, kernel_size=5, dense_units=32)
    model = build_model(cfg, (32, 32, 3), 10, "scale", STATS)
    convs = conv_layers(model)
    assert [c.filters for c in convs] == [16, 16, 32, 32, 64, 64]
    assert all(c.kernel_size == (5, 5) for c in convs)
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 6
    assert model.output_shape == (None, 10)
    assert model.layers[-1].dtype_policy.compute_dtype == "float32"


def test_cnn_on_8x8_inputs_stops_pooling_at_1x1():
    model = build_model(
        CNNConfig(blocks=5, convs_per_block=1, base_filters=8, filter_growth=1.0), (8, 8, 1), 10, "scale", STATS
    )
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert len(pools) == 3 and model.output_shape == (None, 10)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("block, n, depth", [("basic", 1, 8), ("bottleneck", 1, 11), ("basic", 2, 14)])
def test_resnet_depth_counts_weighted_layers(version, block, n, depth):
    cfg = ResNetConfig(version=version, blocks_per_stage=n, base_filters=8, block=block)
    model = build_model(cfg, (16, 16, 3), 5, "per_channel", STATS)
    assert cfg.depth == depth
    # weighted layers = stem conv + block convs + dense head; the rest are 1x1 projection shortcuts
    projections = 2 if block == "basic" else 3  # stage 2 and 3 entries (+ the first bottleneck widening)
    assert len(conv_layers(model)) - projections + 1 == depth
    assert model.output_shape == (None, 5)
    n_add = sum(isinstance(layer, keras.layers.Add) for layer in model.layers)
    assert n_add == 3 * n


def test_normalization_layers_use_the_given_statistics():
    x = np.full((1, 4, 4, 3), 120.0, dtype="float32")
    x[..., 1], x[..., 2] = 110.0, 100.0
    scale = build_model(CNNConfig(blocks=1, convs_per_block=1, base_filters=4), (4, 4, 3), 2, "scale", STATS)
    np.testing.assert_allclose(scale.layers[1](x), x / 255.0, rtol=1e-6)
    channel = build_model(CNNConfig(blocks=1, convs_per_block=1, base_filters=4), (4, 4, 3), 2, "per_channel", STATS)
    np.testing.assert_allclose(channel.layers[1](x), 0.0, atol=1e-5)


def test_per_image_standardization_matches_tensorflow():
    import tensorflow as tf

    x = np.random.default_rng(0).uniform(0, 255, (3, 6, 6, 3)).astype("float32")
    x[2] = 7.0  # a flat image: tensorflow divides by 1/sqrt(N) instead of 0
    ours = PerImageStandardization()(x)
    np.testing.assert_allclose(ours, tf.image.per_image_standardization(x), atol=1e-4)


def test_saved_model_reloads_in_safe_mode(tmp_path):
    model = build_model(ResNetConfig(version=2, blocks_per_stage=1, base_filters=4), (8, 8, 1), 3, "per_image", STATS)
    x = np.random.default_rng(0).uniform(0, 16, (2, 8, 8, 1)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)


@pytest.mark.parametrize("version", [1, 2])
def test_resnet_trains_on_64px_inputs(version):
    """TensorFlow 2.21's oneDNN kernels abort the process training a strided 1x1 convolution
    on inputs this size; the projection shortcut pools first instead, to the same result."""
    model = build_model(
        ResNetConfig(version=version, blocks_per_stage=1, base_filters=4), (64, 64, 1), 3, "scale", STATS
    )
    model.compile("adam", "categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (32, 64, 64, 1)).astype("float32")
    history = model.fit(x, np.eye(3)[np.arange(32) % 3], batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not any(
        isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (1, 1) and layer.strides != (1, 1)
        for layer in model.layers
    )


def test_flip_tta_predicts_the_mean_of_each_image_and_its_mirror(tmp_path):
    cfg = CNNConfig(
        blocks=2, convs_per_block=1, base_filters=4, dense_units=0, block_dropout=0.0, head_dropout=0.0, pooling="max"
    )
    tta = build_model(cfg, (8, 8, 3), 4, "per_channel", STATS, flip_tta=True)
    plain = build_model(cfg, (8, 8, 3), 4, "per_channel", STATS)
    plain.set_weights(tta.get_weights())  # the two flip layers hold no weights
    x = np.random.default_rng(0).uniform(0, 255, (5, 8, 8, 3)).astype("float32")
    mirrored = x[:, :, ::-1]
    assert not np.allclose(plain.predict(x, verbose=0), plain.predict(mirrored, verbose=0), atol=1e-4)
    expected = (plain.predict(x, verbose=0) + plain.predict(mirrored, verbose=0)) / 2
    np.testing.assert_allclose(tta.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        tta.predict(x, batch_size=2, verbose=0), expected, rtol=1e-5, atol=1e-6
    )  # a last batch of 1
    tta.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    tta.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    import tensorflow as tf

    loaded = tf.saved_model.load(str(tmp_path / "saved"))  # kept: its variables die with it
    np.testing.assert_allclose(loaded.serve(tf.constant(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    # training sees each image once, as it is (last: a training call moves the norm statistics)
    np.testing.assert_allclose(tta(x, training=True), plain(x, training=True), rtol=1e-5, atol=1e-6)


def test_a_whitening_stem_whitens_the_patches_it_was_set_from():
    from search.core.models import STEM, whiten_stem

    rng = np.random.default_rng(0)
    grey = rng.uniform(0, 255, size=(200, 32, 32, 1))
    images = np.clip(grey + rng.normal(0, 20, size=(200, 32, 32, 3)), 0, 255)  # channels correlated, as photos'
    cfg = CNNConfig(blocks=2, convs_per_block=1, base_filters=8, stem="whiten")
    model = build_model(cfg, (32, 32, 3), 10, "per_channel", STATS)
    stem = model.get_layer(STEM)
    assert stem.filters == 24 and stem.kernel_size == (2, 2) and not stem.trainable
    assert keras.Model(model.input, stem.output).output_shape == (None, 31, 31, 24)
    whiten_stem(model, images)
    out = keras.ops.convert_to_numpy(keras.Model(model.input, stem.output)(images.astype("float32"), training=True))
    half = out[..., :12].reshape(-1, 12).astype("float64")  # the other 12 filters are their negatives
    cov = half.T @ half / len(half)
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 1e-3  # decorrelated
    assert np.diag(cov).max() == pytest.approx(1.0, abs=0.01) and np.diag(cov).min() > 0.5  # unit variance
    np.testing.assert_allclose(out[..., 12:], -out[..., :12], atol=1e-5)
    whole = keras.ops.convert_to_numpy(stem.kernel)
    whiten_stem(model, images, chunk_bytes=1e6)  # the covariance summed over 11 chunks of 21 images
    chunked = keras.ops.convert_to_numpy(stem.kernel)  # an eigenvector's sign is LAPACK's choice: compare sizes
    np.testing.assert_allclose(np.abs(chunked), np.abs(whole), rtol=1e-4, atol=1e-4)


def test_a_whitening_stem_is_set_from_the_training_images_and_kept_while_a_learned_one_trains(digits):
    from search.core.config import RunConfig, TrainConfig
    from search.core.models import STEM
    from search.core.training import build_for_data, fit, keras_session

    cfg = CNNConfig(blocks=2, convs_per_block=1, base_filters=8, dense_units=0, block_dropout=0.0, head_dropout=0.0)
    kernels = {}
    for stem in ("whiten", "conv"):
        config = RunConfig(model=dataclasses.replace(cfg, stem=stem), train=TrainConfig(epochs=2))
        with keras_session():
            built = keras.ops.convert_to_numpy(build_for_data(config, digits).get_layer(STEM).kernel)
            result = fit(config, digits)
            kernels[stem] = (built, keras.ops.convert_to_numpy(result.model.get_layer(STEM).kernel))
        assert result.model.get_layer(STEM).output.shape[1:3] == (7, 7)  # 8x8 digits, no padding
        assert result.history["val_accuracy"][-1] > 0.3  # chance is 0.1
    built, trained = kernels["whiten"]
    assert built.shape == (2, 2, 1, 8) and np.abs(built).max() > 1.0  # set from the data, not the initializer
    np.testing.assert_array_equal(trained, built)
    assert not np.allclose(kernels["conv"][1], kernels["conv"][0])
