"""What ``train`` leaves for using the model: every artifact written and loadable, the
SavedModel loaded by TensorFlow alone (cnn-search not importable) giving the Keras
model's predictions, ``model.keras`` trainable further, and the per-class metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from search.final.train import FILES

# Run in a fresh interpreter: any attempt to import cnn-search fails, and the test
# checks at the end that nothing did.
NO_CNN_SEARCH = textwrap.dedent("""
    import importlib.abc, sys

    class NoCnnSearch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "search" or name.startswith("search."):
                raise ImportError("cnn-search must not be needed to serve the model")
            return None

    sys.meta_path.insert(0, NoCnnSearch())
    import numpy as np
    import tensorflow as tf

    model_dir, inputs, out = sys.argv[1:4]
    labels = __import__("json").load(open(model_dir + "/labels.json"))
    model = tf.saved_model.load(model_dir + "/" + labels["saved_model"])  # keep it: it owns the variables
    serve = getattr(model, labels["endpoint"])
    x = np.load(inputs)["x"]
    assert list(x.shape[1:]) == labels["input_shape"], (x.shape, labels["input_shape"])
    np.save(out, serve(tf.constant(x, tf.float32)).numpy())

    lite = tf.lite.Interpreter(model_path=model_dir + "/" + labels["tflite"])  # LiteRT, as TensorFlow ships it
    (given,), (answer,) = lite.get_input_details(), lite.get_output_details()
    lite.resize_tensor_input(given["index"], x.shape)
    lite.allocate_tensors()
    lite.set_tensor(given["index"], x.astype(np.float32))
    lite.invoke()
    np.save(out.replace(".npy", "-lite.npy"), lite.get_tensor(answer["index"]))
    assert "search" not in sys.modules and not any(m.startswith("search.") for m in sys.modules)
    print("served", len(x), "images")
""")


def test_train_writes_every_artifact(trained_digits):
    assert {p.name for p in trained_digits.iterdir()} == set(FILES)
    assert (trained_digits / "saved_model" / "saved_model.pb").is_file()
    labels = json.loads((trained_digits / "labels.json").read_text())
    assert labels["class_names"] == [str(i) for i in range(10)] and labels["input_shape"] == [8, 8, 1]
    assert labels["pixel_max"] == 16.0 and labels["text_length"] is None and labels["output_shape"] == [None, 10]
    for name in ("curves.png", "confusion.png", "mistakes.png"):
        with Image.open(trained_digits / name) as im:
            assert im.format == "PNG" and im.width >= 600 and im.height >= 200, (name, im.size)


def test_metrics_have_scikit_learn_per_class_scores(trained_digits):
    from sklearn.metrics import classification_report

    test = json.loads((trained_digits / "metrics.json").read_text())["test"]
    confusion = np.array(test["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == test["images"] == 359
    assert test["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum(), abs=1e-6)
    report = test["classification_report"]
    # rebuild the report from the confusion matrix: the same numbers, to 6 digits
    truth = np.repeat(np.arange(10), confusion.sum(axis=1))
    predicted = np.concatenate([np.repeat(np.arange(10), row) for row in confusion])
    expected = classification_report(
        truth, predicted, target_names=test["class_names"], output_dict=True, zero_division=0
    )
    for name in test["class_names"]:
        for key in ("precision", "recall", "f1-score"):
            assert report[name][key] == pytest.approx(expected[name][key], abs=1e-6), (name, key)
        assert report[name]["recall"] == pytest.approx(test["per_class_accuracy"][name], abs=1e-6)
        assert report[name]["support"] == confusion[int(name)].sum()
    assert report["accuracy"] == pytest.approx(test["accuracy"], abs=1e-6)


def test_the_serving_exports_work_without_cnn_search(trained_digits, digits, tmp_path):
    """The SavedModel and the LiteRT file, each run where cnn-search cannot be imported,
    give the Keras model's probabilities on the test images."""
    import search

    x = digits.x_test.astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_CNN_SEARCH,
            str(trained_digits),
            str(tmp_path / "x.npz"),
            str(tmp_path / "served.npy"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "served 359 images" in result.stdout
    served, lite = np.load(tmp_path / "served.npy"), np.load(tmp_path / "served-lite.npy")
    expected = search.load_model(trained_digits / "model.keras").predict(x, verbose=0)
    assert served.shape == lite.shape == (359, 10)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    np.testing.assert_allclose(lite, expected, atol=1e-5)
    accuracy = json.loads((trained_digits / "metrics.json").read_text())["test"]["accuracy"]
    assert np.mean(served.argmax(axis=1) == digits.y_test) == pytest.approx(accuracy, abs=1e-6)


def test_plain_keras_needs_cnn_search_for_model_keras(trained_digits, tmp_path):
    """Why the SavedModel exists: without cnn-search, model.keras does not load."""
    code = "import keras, sys; keras.saving.load_model(sys.argv[1])"
    result = subprocess.run(
        [sys.executable, "-c", code, str(trained_digits / "model.keras")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode != 0 and "cnn_search" in result.stderr


def test_model_keras_loads_and_trains_further(trained_digits, digits):
    import keras

    import search

    model = search.load_model(trained_digits / "model.keras")
    assert model.optimizer is not None  # compiled, with its optimizer state: fit goes on from here
    x, y = digits.x_train[:128].astype(np.float32), keras.utils.to_categorical(digits.y_train[:128], 10)
    before = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert model.evaluate(x, y, verbose=0, return_dict=True)["loss"] != before  # the weights moved


def test_a_flip_averaging_model_serves_the_same_without_cnn_search(tmp_path):
    """Colour photographs get the recipe's flip test-time augmentation; the SavedModel and
    LiteRT exports average each image with its mirror image too, with TensorFlow alone."""
    import search
    from tests.conftest import run_cli, write_tinted_photos

    write_tinted_photos(tmp_path / "photos" / "train", 24, 32)
    write_tinted_photos(tmp_path / "photos" / "test", 6, 32, seed=1)
    rng = np.random.default_rng(0)
    result = run_cli("train", "--recipe", "folder:photos", "--epochs", "1", "--out", "model", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    model_dir = tmp_path / "model"
    model = search.load_model(model_dir / "model.keras")
    assert "flip_tta" in [layer.name for layer in model.layers]
    x = rng.uniform(0, 255, (7, 32, 32, 3)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    result = subprocess.run(
        [sys.executable, "-c", NO_CNN_SEARCH, str(model_dir), str(tmp_path / "x.npz"), str(tmp_path / "served.npy")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = model.predict(x, verbose=0)
    mirrored = model.predict(x[:, :, ::-1], verbose=0)
    np.testing.assert_allclose(mirrored, expected, atol=1e-5)  # the average of both is the same either way round
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), expected, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "served-lite.npy"), expected, atol=1e-5)
