"""``predict`` runs no code from a model folder: a crafted SavedModel is never loaded,
a ``model.keras`` with a Lambda layer or a foreign class is refused in one line, and an
edited ``labels.json`` or a damaged ``model.keras`` is one line, exit status 2."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_error, run_cli


@pytest.fixture
def inputs(tmp_path: Path, digits) -> Path:
    np.savez(tmp_path / "x.npz", x=digits.x_test[:5], y=digits.y_test[:5])
    return tmp_path


def copy_model(trained: Path, to: Path) -> Path:
    shutil.copytree(trained, to)
    return to


def test_a_crafted_saved_model_does_not_run(trained_digits: Path, inputs: Path):
    """Its serve function writes a file when called; predict must never call it."""
    import tensorflow as tf

    model = copy_model(trained_digits, inputs / "crafted")
    marker = inputs / "pwned.txt"

    class Crafted(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32)])
        def serve(self, x):
            tf.io.write_file(str(marker), "code from the model folder ran")
            return tf.ones([tf.shape(x)[0], 10]) / 10.0

    shutil.rmtree(model / "saved_model")
    tf.saved_model.save(Crafted(), str(model / "saved_model"))
    result = run_cli("predict", "--model", "crafted", "npz:x.npz", cwd=inputs)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not marker.exists()
    assert "5 images; accuracy" in result.stdout  # the model.keras answered, not the uniform 0.1 of the crafted one
    assert "0.1000, " not in result.stdout.splitlines()[0]


def _keras_file_with(model_dir: Path, layer) -> None:
    import keras

    net = keras.Sequential(
        [keras.Input((8, 8, 1)), layer, keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    )
    (model_dir / "model.keras").unlink()
    net.save(model_dir / "model.keras")


def test_a_lambda_layer_is_refused_and_does_not_run(trained_digits: Path, inputs: Path):
    import keras

    model = copy_model(trained_digits, inputs / "lambda")
    _keras_file_with(model, keras.layers.Lambda(lambda x: x * 2))
    one_line_error(
        run_cli("predict", "--model", "lambda", "npz:x.npz", cwd=inputs),
        "model.keras",
        "Lambda layer",
        "runs code from the file",
    )


def test_a_class_from_another_module_is_refused(trained_digits: Path, inputs: Path):
    model = copy_model(trained_digits, inputs / "foreign")
    with zipfile.ZipFile(model / "model.keras") as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    config["config"]["layers"][1]["module"] = "os"  # resolved by name, Keras would import it
    config["config"]["layers"][1]["registered_name"] = "system"
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(model / "model.keras", "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    one_line_error(
        run_cli("predict", "--model", "foreign", "npz:x.npz", cwd=inputs),
        "from module 'os'",
        "neither Keras' nor cnn-search's",
    )


DAMAGED = {
    # what is done to a copy of the folder: words of the one line (images without labels, of the shape
    # labels.json gives: the folder's own check, not the input's, must answer)
    "2 class names": (
        lambda m: _edit_labels(m, class_names=["a", "b"]),
        ["labels.json says 2 classes", "outputs [10]"],
    ),
    "another input shape": (
        lambda m: _edit_labels(m, input_shape=[28, 28, 1]),
        ["input_shape [28, 28, 1]", "[8, 8, 1]"],
    ),
    "text length on a class model": (lambda m: _edit_labels(m, text_length=4), ["4 positions", "outputs [10]"]),
    "pixel range not positive": (lambda m: _edit_labels(m, pixel_max=-1), ["pixel_max -1.0", "above 0"]),
    "truncated model.keras": (
        lambda m: (m / "model.keras").write_bytes((m / "model.keras").read_bytes()[:2000]),
        ["model.keras", "not a readable Keras model file"],
    ),
    "weights missing": (
        lambda m: _drop_from_archive(m / "model.keras", "model.weights.h5"),
        ["model.keras", "cannot be loaded"],
    ),
    "no model.keras": (lambda m: (m / "model.keras").unlink(), ["no model.keras in it"]),
}


def _edit_labels(model: Path, **changes) -> None:
    d = json.loads((model / "labels.json").read_text())
    d.update(changes)
    (model / "labels.json").write_text(json.dumps(d))


def _drop_from_archive(path: Path, member: str) -> None:
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist() if n != member}
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)


@pytest.mark.parametrize("case", list(DAMAGED), ids=list(DAMAGED))
def test_a_damaged_or_edited_model_folder_is_one_line(trained_digits: Path, inputs: Path, case: str):
    damage, words = DAMAGED[case]
    model = copy_model(trained_digits, inputs / "damaged")
    damage(model)
    shape = json.loads((model / "labels.json").read_text())["input_shape"]
    np.savez(inputs / "plain.npz", x=np.zeros((3, *shape), np.float32))
    one_line_error(run_cli("predict", "--model", "damaged", "npz:plain.npz", cwd=inputs), *words)
