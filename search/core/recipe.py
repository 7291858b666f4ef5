"""The default recipe: one good run config, sized to the data, that trains well untuned.

It is what ``train --recipe`` trains with no search, the first trial of every new
study, and the centre the prior-guided sampler (``search.study.prior``) draws around.  Every
value is here, with why it has it, in the way airbench (KellerJordan/cifar10-airbench)
and Myrtle's "How to train your ResNet" (davidcpage/cifar10-fast) write theirs; the
numbers measured on this project's 2-core CPU are in docs/design/recipe.md.

What depends on the data:

* depth: three conv stages, two for images under 16 px (digits are 8x8: a third
  pooling would leave nothing to convolve);
* width: 32 base filters for grey images, 48 for colour (the 48/96/192 net costs
  fewer multiply-adds on 32x32x3 than the 64/128/128 net public CPU recipes use);
* flips: only for photographs of objects (colour images, Fashion-MNIST); never for
  digits, handwriting or text, where a mirror image is another symbol; where it flips,
  the model also predicts each image with its mirror image (``flip_tta``): on the
  CIFAR-10 subset +0.8 points of validation and +1.3 of test accuracy for the same
  training, on Fashion-MNIST +0.2 and +0.3 (docs/design/recipe.md);
* shifts: 2-pixel pad-and-crop from 24 px up; none on tiny images;
* batch size: 64 under 8,192 training images, 128 from 8,192, 256 from 32,768: on this
  CPU an epoch costs the same at half the batch (twice the steps, each half the work), and
  the extra updates paid over three seeds paced by the same clock at 4,500 and at 9,000-10,000
  images (docs/benchmarks/epoch-time.md);
* text (captchas, ``textfolder:``): a flatten head (global pooling would erase where
  each character is), per-image standardization and Adam, which is what learned on
  generated captchas in this project's measurements (docs/guide/data.md, "Text images").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from search.core.config import (
    AugmentConfig,
    CNNConfig,
    DataConfig,
    OptimizerConfig,
    RunConfig,
    ScheduleConfig,
    TrainConfig,
    is_text_dataset,
)

__all__ = ["DataShape", "RECIPE", "recipe", "default_recipe", "no_flip_dataset"]

# The recipe's fixed part: every value, and why it has it.
RECIPE = {
    "convs_per_block": 2,  # two 3x3 convs a stage, the second after pooling (early_pool): 0.9025 vs 0.8775 for one
    "early_pool": True,  # airbench's block: conv, pool, norm, act, conv: 2 convs cost 1.2x one on a CPU, not 2.8x
    "filter_growth": 2.0,  # double the filters at each pooling: constant work per stage
    "kernel_size": 3,  # 3x3 everywhere (VGG); 5x5 costs 2.8x for no gain in short runs
    "batch_norm": True,  # lets the one-cycle peak rate of 0.1 train without diverging
    "activation": "relu",  # GELU measured ~20% slower per epoch on this CPU
    "pooling": "max",  # global max pooling into the softmax: no dense head to overfit
    "block_dropout": 0.0,  # augmentation and label smoothing regularize; dropout slows short runs
    "head_dropout": 0.0,
    "dense_units": 0,
    "initializer": "he_normal",
    "normalization": "per_channel",  # training-split mean and std per channel
    "optimizer": "sgd",  # SGD with Nesterov momentum: the fast CIFAR recipes all use it
    "momentum": 0.9,
    "nesterov": True,
    "learning_rate": 0.01,  # the one-cycle schedule's floor; its peak is 10x: 0.1
    "max_lr_factor": 10.0,
    "schedule": "one_cycle",  # warm up, then anneal: most of the accuracy comes in the last epochs
    "weight_decay": 5e-4,  # as the fast recipes; 5e-3 measured no better on Fashion-MNIST (0.878 both)
    "label_smoothing": 0.2,  # the fast recipes use 0.2; it also keeps confident mistakes cheap
    "epochs": 15,  # one-cycle over 15 epochs: 0.90 on Fashion-MNIST 10k, see docs/design/recipe.md
}


@dataclass(frozen=True)
class DataShape:
    """What the recipe is sized from: the dataset spec, image shape, classes, images."""

    dataset: str
    height: int
    width: int
    channels: int
    num_classes: int
    train_images: int
    text: bool = False

    @classmethod
    def of(cls, data, dataset: str) -> DataShape:
        """The shape of a loaded ``search.core.data.Dataset``."""
        h, w, c = data.input_shape
        return cls(dataset, h, w, c, data.num_classes, len(data.x_train), bool(data.text_length))


def no_flip_dataset(shape: DataShape) -> bool:
    """Whether a horizontal flip would change what an image shows (digits, text, grey
    images of unknown kind); colour photographs and Fashion-MNIST's clothes are flipped."""
    if shape.text or is_text_dataset(shape.dataset):
        return True
    name = shape.dataset.split(":", 1)[0]
    if name in ("digits", "mnist"):
        return True
    if name == "fashion_mnist":
        return False
    return shape.channels != 3


def recipe(shape: DataShape, data: DataConfig | None = None, epochs: int | None = None, seed: int = 0) -> RunConfig:
    """The default run config for data of ``shape``; ``data`` keeps the caller's split
    settings (its normalization is replaced by the recipe's)."""
    r = RECIPE
    text = shape.text or is_text_dataset(shape.dataset)
    small = min(shape.height, shape.width)
    data = data or DataConfig(shape.dataset)
    model = CNNConfig(
        blocks=3 if small >= 16 else 2,
        convs_per_block=r["convs_per_block"],
        early_pool=r["early_pool"],
        base_filters=48 if shape.channels == 3 else 32,
        filter_growth=r["filter_growth"],
        kernel_size=r["kernel_size"],
        batch_norm=r["batch_norm"],
        block_dropout=r["block_dropout"],
        head_dropout=r["head_dropout"],
        dense_units=r["dense_units"],
        initializer=r["initializer"],
        activation=r["activation"],
        pooling="flatten" if text else r["pooling"],
    )
    if text:
        optimizer = OptimizerConfig(name="adam", learning_rate=1e-3)
        schedule = ScheduleConfig(name="constant")
        normalization = "per_image"  # captchas differ in contrast from image to image
    else:
        optimizer = OptimizerConfig(r["optimizer"], r["learning_rate"], r["momentum"], r["nesterov"], r["weight_decay"])
        schedule = ScheduleConfig(name=r["schedule"], max_lr_factor=r["max_lr_factor"])
        normalization = r["normalization"]
    n = shape.train_images
    # paced by the same clock beside the larger batch, 3 seeds each: 128, not 256, from 8,192 images: +3.40
    # validation and +2.45 test points on the CIFAR-10 subset 9k (600 s), +0.37 and +0.47 on Fashion-MNIST
    # 10k (480 s); 64, not 128, under 8,192: +2.97 and +2.15 on the CIFAR-10 subset 4.5k (600 s).  256 stays
    # from 32,768 images, where an epoch has 128 steps or more at 256 (not measured); text keeps 128 from
    # 2,048 images (Adam at a constant rate: not measured at 64)
    batch = 256 if n >= 32768 else 128 if n >= 8192 or (text and n >= 2048) else 64
    return RunConfig(
        data=dataclasses.replace(data, normalization=normalization),  # the caller's dataset and split, its seed too
        augment=AugmentConfig(
            horizontal_flip=(flip := not no_flip_dataset(shape)),
            pad_crop=2 if small >= 24 and not text else 0,
            flip_tta=flip,
        ),
        model=model,
        optimizer=optimizer,
        schedule=schedule,
        train=TrainConfig(
            batch_size=batch, epochs=epochs or r["epochs"], label_smoothing=0.0 if text else r["label_smoothing"]
        ),
        seed=seed,
    )


default_recipe = recipe  # the name ``search`` exports (``search.core.recipe`` is this module)
