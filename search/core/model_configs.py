"""The model section of a run config: one frozen dataclass per model kind (the built-in
``cnn`` and ``resnet`` families, and ``custom``, a function of the user's own), and
``model_class``, which reads a kind back.  ``search.core.config`` gathers the sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from search.core.validate import fail, require

__all__ = [
    "CNNConfig",
    "ResNetConfig",
    "CustomModelConfig",
    "ModelConfig",
    "MODEL_KINDS",
    "Initializer",
    "Activation",
    "model_class",
]

Initializer = Literal["he_normal", "he_uniform", "glorot_uniform", "glorot_normal", "lecun_normal"]
Activation = Literal["relu", "elu", "selu", "swish", "gelu", "leaky_relu"]


@dataclass(frozen=True)
class CNNConfig:
    """A VGG-style network: blocks of convolutions, each block followed by pooling."""

    kind: Literal["cnn"] = "cnn"
    blocks: int = 3
    convs_per_block: int = 2
    base_filters: int = 32
    filter_growth: float = 2.0  # filters of block i = base_filters * filter_growth**i
    kernel_size: int = 3
    batch_norm: bool = True
    block_dropout: float = 0.25
    head_dropout: float = 0.5
    dense_units: int = 128  # 0 means no hidden dense layer
    initializer: Initializer = "he_normal"
    activation: Activation = "relu"
    # What joins the last block to the head: flatten every position, or keep each
    # filter's largest ("max") or mean ("avg") response (global pooling: far fewer
    # head weights, and the network's answer no longer depends on where a feature is).
    pooling: Literal["flatten", "max", "avg"] = "flatten"
    # Pool after a block's first convolution instead of after its last (airbench's
    # block): the other convolutions of the block run at half the resolution, a quarter
    # of the work, so two convolutions a block cost little more than one.
    early_pool: bool = False
    # A 2x2 convolution with no padding before the blocks (airbench's first layer; issue 25): "conv" learns it;
    # "whiten" fixes it to whiten the training images' 2x2 patches (the patch covariance's eigenvectors, each
    # over the square root of its eigenvalue, and their negatives: 8 filters a channel), as airbench does.
    stem: Literal["none", "conv", "whiten"] = "none"

    def __post_init__(self) -> None:
        require(1 <= self.blocks <= 8, "model.blocks", "an integer in [1, 8]", self.blocks)
        require(1 <= self.convs_per_block <= 6, "model.convs_per_block", "an integer in [1, 6]", self.convs_per_block)
        require(1 <= self.base_filters <= 1024, "model.base_filters", "an integer in [1, 1024]", self.base_filters)
        require(1.0 <= self.filter_growth <= 4.0, "model.filter_growth", "a number in [1, 4]", self.filter_growth)
        require(self.kernel_size in (1, 3, 5, 7), "model.kernel_size", "one of 1, 3, 5, 7", self.kernel_size)
        require(0.0 <= self.block_dropout < 1.0, "model.block_dropout", "a rate in [0, 1)", self.block_dropout)
        require(0.0 <= self.head_dropout < 1.0, "model.head_dropout", "a rate in [0, 1)", self.head_dropout)
        require(0 <= self.dense_units <= 8192, "model.dense_units", "an integer in [0, 8192]", self.dense_units)

    def filters(self, block: int) -> int:
        """Number of filters in block ``block`` (0-based)."""
        return max(1, int(round(self.base_filters * self.filter_growth**block)))


@dataclass(frozen=True)
class ResNetConfig:
    """A CIFAR-style ResNet (He et al.): three stages, depth 6n+2 (basic) or 9n+2 (bottleneck)."""

    kind: Literal["resnet"] = "resnet"
    version: Literal[1, 2] = 1
    blocks_per_stage: int = 3  # n
    base_filters: int = 16
    block: Literal["basic", "bottleneck"] = "basic"
    head_dropout: float = 0.0
    initializer: Initializer = "he_normal"
    activation: Activation = "relu"

    def __post_init__(self) -> None:
        require(
            1 <= self.blocks_per_stage <= 18, "model.blocks_per_stage", "an integer in [1, 18]", self.blocks_per_stage
        )
        require(1 <= self.base_filters <= 256, "model.base_filters", "an integer in [1, 256]", self.base_filters)
        require(0.0 <= self.head_dropout < 1.0, "model.head_dropout", "a rate in [0, 1)", self.head_dropout)

    @property
    def depth(self) -> int:
        """Number of weighted layers: 6n+2 for basic blocks, 9n+2 for bottleneck blocks."""
        per_block = 2 if self.block == "basic" else 3
        return 3 * per_block * self.blocks_per_stage + 2


@dataclass(frozen=True)
class CustomModelConfig:
    """A model of its user's own (``search.core.custom``): ``build`` names the function
    (``FILE.py:NAME`` or ``module:NAME``) and ``hp`` holds the values its ``hp`` calls
    took, by name; the function rebuilds the model from them."""

    kind: Literal["custom"] = "custom"
    build: str = ""
    hp: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        require(bool(self.build), "model.build", "the model function as FILE.py:NAME or module:NAME", self.build)
        for name, value in self.hp.items():
            ok = value is None or isinstance(value, (bool, int, float, str))
            require(ok, f"model.hp.{name}", "a number, a string, true/false or null", value)


ModelConfig = CNNConfig | ResNetConfig | CustomModelConfig
# The built-in model kinds: those a space file's [model] section can build.  A custom
# model is named on the command line (--model), never sampled.
MODEL_KINDS: dict[str, type] = {"cnn": CNNConfig, "resnet": ResNetConfig}


def model_class(kind: Any, where: str) -> type:
    if kind == "custom":
        return CustomModelConfig
    if not isinstance(kind, str) or kind not in MODEL_KINDS:
        fail(where, "one of " + ", ".join(map(repr, [*MODEL_KINDS, "custom"])), kind)
    return MODEL_KINDS[kind]
