"""What a trained model needs to be used without cnn-search: a TensorFlow SavedModel and
``labels.json``.

``model.keras`` holds cnn-search's custom layer and schedules, so it loads only where
this package is installed (``search.load_model``).  ``train`` therefore also writes
``saved_model/`` with Keras' ``model.export``: a plain TensorFlow graph whose ``serve``
endpoint takes raw pixels, float32 (batch, height, width, channels), and returns the
probabilities (batch, classes), or (batch, positions, characters) for text; the
normalization is inside.  ``tf.saved_model.load`` reads it with TensorFlow alone.

``model.tflite`` is the same model for LiteRT (TensorFlow Lite), converted by Keras'
``format="litert"`` with TensorFlow's own converter; a model the converter cannot take
is a printed note, not a failed ``train`` (the SavedModel is what ``predict`` uses).

``labels.json`` says what goes in and what comes out: input shape, the pixel value of
white (``pixel_max``: 255, or 16 for digits), the class names in output order, and for
text the alphabet and text length.  ``predict`` reads both.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.errors import UsageError

__all__ = ["SAVED_MODEL", "TFLITE", "LABELS", "ENDPOINT", "ModelInfo", "write_serving", "read_model_info"]

SAVED_MODEL = "saved_model"
TFLITE = "model.tflite"
MODEL = "model.keras"
LABELS = "labels.json"
ENDPOINT = "serve"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ModelInfo:
    """What a trained model takes and returns; the contents of ``labels.json``."""

    dataset: str
    input_shape: tuple[int, int, int]  # height, width, channels
    class_names: tuple[str, ...]  # output order; for text, the alphabet's characters
    pixel_max: float  # the pixel value of full intensity in the training images
    text_length: int | None = None

    @property
    def alphabet(self) -> str | None:
        return "".join(self.class_names) if self.text_length else None

    @property
    def output_shape(self) -> list[int | None]:
        return [None, self.text_length, len(self.class_names)] if self.text_length else [None, len(self.class_names)]

    @classmethod
    def of(cls, data: Any) -> ModelInfo:
        """From a loaded ``search.core.data.Dataset``."""
        return cls(
            data.name,
            tuple(int(v) for v in data.input_shape),
            tuple(data.class_names),  # type: ignore[arg-type]
            float(data.pixel_max),
            data.text_length,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "dataset": self.dataset,
            "input_shape": list(self.input_shape),
            "input_dtype": "float32",
            "pixel_max": self.pixel_max,
            "class_names": list(self.class_names),
            "text_length": self.text_length,
            "alphabet": self.alphabet,
            "output_shape": self.output_shape,
            "saved_model": SAVED_MODEL,
            "endpoint": ENDPOINT,
            "tflite": TFLITE,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: Path) -> ModelInfo:
        try:
            shape = tuple(int(v) for v in d["input_shape"])
            names = tuple(str(n) for n in d["class_names"])
            info = cls(
                str(d.get("dataset", "?")),
                shape,
                names,
                float(d["pixel_max"]),  # type: ignore[arg-type]
                int(d["text_length"]) if d.get("text_length") else None,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise UsageError(
                f"{where}: not a labels.json written by 'train' ({type(e).__name__}: {e}); train the model again"
            ) from e
        if len(shape) != 3 or len(names) < 2 or min(shape) < 1:
            raise UsageError(
                f"{where}: input_shape {list(shape)} or {len(names)} "
                "class names is not a model's; train the model again"
            )
        if not math.isfinite(info.pixel_max) or info.pixel_max <= 0:
            raise UsageError(
                f"{where}: pixel_max {info.pixel_max} must be a finite number above 0; train the model again"
            )
        return info


def write_serving(model: Any, out_dir: Path, info: ModelInfo) -> list[str]:
    """Write ``saved_model/``, ``model.tflite`` and ``labels.json`` into ``out_dir``;
    returns notes on what could not be written (the LiteRT conversion only)."""
    import shutil

    target = out_dir / SAVED_MODEL
    if target.exists():  # a model trained into the same folder before
        shutil.rmtree(target)
    model.export(str(target), format="tf_saved_model", verbose=False)
    notes = []
    (out_dir / TFLITE).unlink(missing_ok=True)
    try:
        model.export(str(out_dir / TFLITE), format="litert", verbose=False)
    except Exception as e:  # the converter's failures have no common type; the SavedModel stands
        notes.append(
            f"note: {TFLITE} not written: the LiteRT converter failed "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        )
    (out_dir / LABELS).write_text(json.dumps(info.to_dict(), indent=2) + "\n")
    return notes


def read_model_info(model_dir: str | Path) -> tuple[ModelInfo, Path]:
    """The ``ModelInfo`` and ``model.keras`` path of a folder ``train`` wrote; one line if it
    is not one.  ``predict`` runs ``model.keras`` in Keras' safe mode (``search.final.safe_model``),
    never the SavedModel: that is a program, for serving stacks that trust its source."""
    folder = Path(model_dir)
    if not folder.exists():
        raise UsageError(f"--model {folder}: no such folder; pass the folder 'train' wrote (its --out)")
    if not folder.is_dir():
        raise UsageError(
            f"--model {folder}: is a file; pass the folder 'train' wrote (its --out), which holds {LABELS} and {MODEL}"
        )
    labels, model = folder / LABELS, folder / MODEL
    missing = [name for name, p in ((LABELS, labels), (MODEL, model)) if not p.is_file()]
    if missing:
        config = folder / "config.json"
        fix = (
            f"it was written before 'train' wrote them: train it again with train --config {config} --out {folder}"
            if config.is_file()
            else "pass the folder 'train' wrote (its --out)"
        )
        raise UsageError(f"--model {folder}: no {' or '.join(missing)} in it; {fix}")
    try:
        d = json.loads(labels.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{labels}: not readable JSON ({type(e).__name__}); train the model again") from e
    if not isinstance(d, dict):
        raise UsageError(f"{labels}: holds {type(d).__name__}, not a JSON object; train the model again")
    return ModelInfo.from_dict(d, labels), model
