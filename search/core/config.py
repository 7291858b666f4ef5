"""The run config: one frozen dataclass tree that describes a whole training run.

A space turns a trial into a ``RunConfig``; the model builder turns it into a Keras
model; training reads it; export writes it as JSON and ``train`` reads it back.
Nothing else carries hyperparameters.

Choice-valued fields are typed with ``Literal``: the annotation is the one list of
allowed values, used both to check configs and to check space files.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from search.core.metrics import METRICS, TEXT_METRICS, is_loss, is_text_dataset, metric_names
from search.core.model_configs import (
    MODEL_KINDS,
    Activation,
    CNNConfig,
    CustomModelConfig,
    Initializer,
    ModelConfig,
    ResNetConfig,
    model_class,
)
from search.core.validate import check_value, fail, require, section_from_dict
from search.errors import ConfigError

__all__ = [
    "SCHEMA_VERSION",
    "MAX_SEED",
    "DataConfig",
    "AugmentConfig",
    "CNNConfig",
    "ResNetConfig",
    "CustomModelConfig",
    "ModelConfig",
    "MODEL_KINDS",
    "Initializer",
    "Activation",
    "model_class",
    "OptimizerConfig",
    "ScheduleConfig",
    "TrainConfig",
    "RunConfig",
    "SECTIONS",
    "METRICS",
    "TEXT_METRICS",
    "is_text_dataset",
    "is_loss",
    "metric_names",
]

SCHEMA_VERSION = 1
MAX_SEED = 2**31 - 1  # NumPy, TensorFlow and Optuna seeds must stay below 2**32 once trial numbers are added


@dataclass(frozen=True)
class DataConfig:
    """Which data to load, how to split it and how to normalize it."""

    dataset: str = "digits"
    data_dir: str | None = None
    val_split: float = 0.1
    limit_train: int | None = None
    normalization: Literal["scale", "per_channel", "per_image"] = "scale"
    # Seeds the validation split (and ``limit_train``'s subset): a study's seed, the same
    # for all its trials, so every trial is judged on the same images.
    split_seed: int = 0

    def __post_init__(self) -> None:
        require(0.0 < self.val_split < 1.0, "data.val_split", "a fraction in (0, 1)", self.val_split)
        require(
            0 <= self.split_seed <= MAX_SEED, "data.split_seed", f"an integer from 0 to {MAX_SEED}", self.split_seed
        )
        if self.limit_train is not None:
            require(self.limit_train >= 20, "data.limit_train", "at least 20 images", self.limit_train)


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation; applied to the training split only.

    ``flip_tta``: with ``horizontal_flip``, the model predicts each image and its mirror
    image and averages the two (flip test-time augmentation, as airbench does); it is part
    of the saved model, so validation, test, ``predict`` and the SavedModel all see it.
    Without ``horizontal_flip`` it does nothing: a model never trained on mirror images
    is not asked about them.

    ``cutout``: the side, as a fraction of the image's shorter side, of a square patch
    erased at a random place of each training image (filled with the batch's mean pixel, which the model's normalization
    maps near zero), as in DeVries & Taylor 2017 ("Improved Regularization of
    Convolutional Neural Networks with Cutout": 16 of CIFAR-10's 32 pixels, 0.5); 0 is off.  A regularizer for long
    schedules on few images: it slows what a short run learns."""

    horizontal_flip: bool = False
    translate: float = 0.0  # random translation, as a fraction of height and width
    pad_crop: int = 0  # pad by this many pixels, then crop back at a random offset
    flip_tta: bool = False
    cutout: float = 0.0

    @property
    def predicts_flips(self) -> bool:
        """Whether the model averages each image's prediction with its mirror image's."""
        return self.horizontal_flip and self.flip_tta

    def __post_init__(self) -> None:
        require(0.0 <= self.translate < 0.5, "augment.translate", "a fraction in [0, 0.5)", self.translate)
        require(0 <= self.pad_crop <= 16, "augment.pad_crop", "pixels in [0, 16]", self.pad_crop)
        require(0.0 <= self.cutout <= 0.75, "augment.cutout", "a fraction of the image side in [0, 0.75]", self.cutout)


@dataclass(frozen=True)
class OptimizerConfig:
    name: Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"] = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9  # SGD and RMSprop only
    nesterov: bool = False  # SGD only
    weight_decay: float = 0.0  # decoupled weight decay (Keras optimizers' ``weight_decay``)
    # an exponential moving average of the weights (Polyak averaging; Keras' ``use_ema``) with this momentum
    # per step, 0 for none: validation sees the average, and the trained model ends with it
    ema: float = 0.0

    def __post_init__(self) -> None:
        require(0.0 < self.learning_rate <= 10.0, "optimizer.learning_rate", "a rate in (0, 10]", self.learning_rate)
        require(0.0 <= self.momentum < 1.0, "optimizer.momentum", "a value in [0, 1)", self.momentum)
        require(0.0 <= self.weight_decay < 1.0, "optimizer.weight_decay", "a value in [0, 1)", self.weight_decay)
        require(0.0 <= self.ema < 1.0, "optimizer.ema", "a momentum in [0, 1), 0 for none", self.ema)


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule; the base rate is ``optimizer.learning_rate``."""

    name: Literal["constant", "step", "cosine", "exponential", "one_cycle", "cyclic", "plateau"] = "constant"
    drop_every: int = 10  # step: epochs between drops
    drop_factor: float = 0.1  # step and plateau: multiply the rate by this
    decay_rate: float = 0.9  # exponential: multiply the rate by this each epoch
    max_lr_factor: float = 10.0  # one_cycle and cyclic: peak rate = learning_rate * this
    cycle_epochs: int = 4  # cyclic: epochs from base to peak (half a cycle)
    patience: int = 2  # plateau: epochs without improvement before a drop

    def __post_init__(self) -> None:
        require(self.drop_every >= 1, "schedule.drop_every", "an integer >= 1", self.drop_every)
        require(0.0 < self.drop_factor < 1.0, "schedule.drop_factor", "a factor in (0, 1)", self.drop_factor)
        require(0.0 < self.decay_rate <= 1.0, "schedule.decay_rate", "a factor in (0, 1]", self.decay_rate)
        require(self.max_lr_factor >= 1.0, "schedule.max_lr_factor", "a factor >= 1", self.max_lr_factor)
        require(self.cycle_epochs >= 1, "schedule.cycle_epochs", "an integer >= 1", self.cycle_epochs)
        require(self.patience >= 1, "schedule.patience", "an integer >= 1", self.patience)


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64
    epochs: int = 10
    label_smoothing: float = 0.0
    # The metric a run is judged by: the trial's value, what pruning, early stopping and
    # the plateau schedule watch.  ``val_``-less names are watched on the training split.
    monitor: str = "val_accuracy"

    def __post_init__(self) -> None:
        require(
            self.monitor in metric_names(text=True),
            "train.monitor",
            "one of " + ", ".join(metric_names(text=True)),
            self.monitor,
        )
        require(1 <= self.batch_size <= 8192, "train.batch_size", "an integer in [1, 8192]", self.batch_size)
        require(1 <= self.epochs <= 10000, "train.epochs", "an integer in [1, 10000]", self.epochs)
        require(0.0 <= self.label_smoothing < 1.0, "train.label_smoothing", "a value in [0, 1)", self.label_smoothing)


# Sections of a run config, in the order spaces sample them and JSON lists them.
SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "augment": AugmentConfig,
    "model": CNNConfig,  # placeholder: the model section's class depends on ``kind``
    "optimizer": OptimizerConfig,
    "schedule": ScheduleConfig,
    "train": TrainConfig,
}


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=CNNConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.augment.horizontal_flip and is_text_dataset(self.data.dataset):  # spaces never sample it for text
            fail(
                "augment.horizontal_flip",
                f"false for the text dataset '{self.data.dataset}' (a mirrored text is not its text)",
                True,
            )
        if self.train.monitor not in metric_names(is_text_dataset(self.data.dataset)):
            fail(
                "train.monitor",
                "one of " + ", ".join(metric_names()) + f" for the image dataset '{self.data.dataset}'",
                self.train.monitor,
            )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        out.update(dataclasses.asdict(self))
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def replace(self, **sections: Any) -> RunConfig:
        return dataclasses.replace(self, **sections)

    @classmethod
    def from_dict(cls, raw: Any, where: str = "config") -> RunConfig:
        """Build and validate a config from plain data; unknown keys are errors."""
        if not isinstance(raw, dict):
            fail(where, "a JSON object with sections " + ", ".join(SECTIONS), type(raw).__name__)
        raw = dict(raw)
        version = raw.pop("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            fail(f"{where}.schema_version", f"{SCHEMA_VERSION} (written by this version of cnn-search)", version)
        seed = check_value(int, raw.pop("seed", 0), f"{where}.seed")
        require(0 <= seed <= MAX_SEED, f"{where}.seed", f"an integer from 0 to {MAX_SEED}", seed)
        sections: dict[str, Any] = {}
        for name, value in raw.items():
            if name not in SECTIONS:
                fail(where, "sections " + ", ".join(SECTIONS) + " and seed", name)
            if not isinstance(value, dict):
                fail(f"{where}.{name}", "a table of settings", value)
            section_cls = (
                model_class(value.get("kind", "cnn"), f"{where}.model.kind") if name == "model" else SECTIONS[name]
            )
            sections[name] = section_from_dict(section_cls, value, f"{where}.{name}")
        return cls(seed=seed, **sections)

    @classmethod
    def from_json(cls, text: str, where: str = "config") -> RunConfig:
        return cls.from_dict(cls._json(text, where), where)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a run config from a JSON file (an export's ``config`` section or a bare config)."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the config file ({e.strerror}); check the path") from e
        raw = RunConfig._json(text, str(path))
        if isinstance(raw, dict) and "config" in raw and isinstance(raw["config"], dict):
            raw = raw["config"]  # an export file: the run config plus where it came from
        return cls.from_dict(raw, str(path))

    @staticmethod
    def _json(text: str, where: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(
                f"{where}: not valid JSON ({e.msg} at line {e.lineno}); pass a file written by 'export'"
            ) from e
