"""Load a model folder's ``model.keras`` without running code from it.

A SavedModel (``saved_model/``) is a TensorFlow program: loading and calling it runs
whatever graph it holds (a crafted ``serve`` function can write files).  ``predict``
therefore never loads it; it rebuilds the model from ``model.keras`` in Keras' safe mode,
and before that reads the archive's ``config.json`` itself and refuses, in one line:

* a ``Lambda`` layer (Python code serialized in the file), and the layers that load
  another program (``TFSMLayer`` loads a SavedModel, ``TorchModuleWrapper`` unpickles);
* any class that is neither Keras' own nor one cnn-search registered (package
  ``cnn_search``): Keras would otherwise resolve it by name.

The weights are then checked against ``labels.json`` (class count, input shape, text
length) by ``check_against_labels``.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from search.errors import UsageError

__all__ = ["MODEL_FILE", "read_config", "check_classes", "load_safe", "check_against_labels"]

MODEL_FILE = "model.keras"
OUR_PACKAGE = "cnn_search"
REFUSED = {"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"}
_CONFIG_LIMIT = 16 * 2**20


def read_config(path: Path) -> dict[str, Any]:
    """The model config inside a ``.keras`` archive; one line if it is not one."""
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("config.json")
            if info.file_size > _CONFIG_LIMIT:
                raise UsageError(
                    f"{path}: its config.json is {info.file_size / 2**20:.0f} MiB, not a model's; train the model again"
                )
            config = json.loads(z.read(info).decode("utf-8"))
    except UsageError:
        raise
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"{path}: not a readable Keras model file ({type(e).__name__}); train the model again") from e
    if not isinstance(config, dict):
        raise UsageError(f"{path}: config.json holds {type(config).__name__}, not a model; train the model again")
    return config


def _objects(node: Any) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "class_name" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check_classes(config: dict[str, Any], where: Path) -> None:
    """Refuse code-carrying layers and classes that are neither Keras' nor ours.  The
    compile config (loss, metrics) is not read: ``load_safe`` loads without compiling."""
    for obj in _objects({k: v for k, v in config.items() if k != "compile_config"}):
        name = str(obj.get("class_name"))
        module = obj.get("module")
        registered = obj.get("registered_name")
        if name == "function" and isinstance(obj.get("config"), str) and obj["config"].startswith(f"{OUR_PACKAGE}>"):
            continue  # a function cnn-search registered, named by its registered name
        if name in REFUSED:
            raise UsageError(
                f"{where}: holds a {name} layer, which runs code from the file; cnn-search loads only its own "
                "models: train the model again with 'train'"
            )
        if isinstance(module, str) and not module.split(".", 1)[0] == "keras":
            if not (isinstance(registered, str) and registered.startswith(f"{OUR_PACKAGE}>")):
                raise UsageError(
                    f"{where}: holds class {name!r} from module {module!r}, neither Keras' nor cnn-search's; "
                    "cnn-search loads only its own models: train the model again with 'train'"
                )


def load_safe(path: Path) -> Any:
    """The Keras model of ``path``, checked by ``check_classes`` and loaded in safe mode."""
    check_classes(read_config(path), path)
    import keras

    import search.core.models  # noqa: F401 - registers cnn-search's layers
    import search.core.schedules  # noqa: F401 - and its learning-rate schedules

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # a damaged archive or weights file can raise almost anything
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise UsageError(f"{path}: cannot be loaded ({type(e).__name__}: {first}); train the model again") from e


def check_against_labels(model: Any, info: Any, where: Path) -> None:
    """``labels.json`` (``info``) must describe ``model``: input shape, classes, text length."""
    fix = "labels.json was edited or belongs to another model; train the model again"
    input_shape = tuple(int(v) for v in model.input_shape[1:])
    if input_shape != tuple(info.input_shape):
        raise UsageError(
            f"{where}: labels.json says input_shape {list(info.input_shape)} but the model takes "
            f"{list(input_shape)}; {fix}"
        )
    output = tuple(model.output_shape[1:])
    expected = (info.text_length, len(info.class_names)) if info.text_length else (len(info.class_names),)
    if output != expected:
        what = (
            f"{info.text_length} positions of {len(info.class_names)} characters"
            if info.text_length
            else f"{len(info.class_names)} classes"
        )
        raise UsageError(f"{where}: labels.json says {what} but the model outputs {list(output)}; {fix}")
