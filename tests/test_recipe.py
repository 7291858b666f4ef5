"""The default recipe: sized to the data, and good on its own (trained here on digits)."""

from __future__ import annotations

from search.config import RunConfig
from search.recipe import RECIPE, DataShape, no_flip_dataset, recipe


def test_recipe_is_sized_to_the_images():
    grey = recipe(DataShape("fashion_mnist", 28, 28, 1, 10, 10000))
    colour = recipe(DataShape("folder:photos", 32, 32, 3, 10, 9000))
    tiny = recipe(DataShape("digits", 8, 8, 1, 10, 1300))
    assert (grey.model.blocks, grey.model.base_filters, grey.model.pooling) == (3, 32, "max")
    assert colour.model.base_filters == 48
    assert tiny.model.blocks == 2 and tiny.augment.pad_crop == 0  # 8x8: no third pooling, no shifts
    assert grey.train.batch_size == 256 and tiny.train.batch_size == 64
    assert grey.augment.pad_crop == 2 and grey.train.epochs == RECIPE["epochs"]
    assert grey.optimizer.name == "sgd" and grey.optimizer.nesterov and grey.schedule.name == "one_cycle"


def test_flips_only_where_a_mirror_image_shows_the_same_thing():
    assert not no_flip_dataset(DataShape("fashion_mnist", 28, 28, 1, 10, 100))
    assert not no_flip_dataset(DataShape("cifar10", 32, 32, 3, 10, 100))
    for spec in ("digits", "mnist", "folder:scans"):
        assert no_flip_dataset(DataShape(spec, 28, 28, 1, 10, 100)), spec
    text = recipe(DataShape("captcha", 40, 100, 1, 10, 7000, text=True))
    assert not text.augment.horizontal_flip and text.model.pooling == "flatten"  # the heads need positions
    assert text.data.normalization == "per_image" and text.optimizer.name == "adam"


def test_recipe_round_trips_and_keeps_the_callers_split():
    from search.config import DataConfig

    config = recipe(DataShape("mnist", 28, 28, 1, 10, 5000), DataConfig("mnist", "/data", 0.2, 500), epochs=4, seed=3)
    assert RunConfig.from_dict(config.to_dict()) == config
    assert (config.data.val_split, config.data.limit_train, config.data.data_dir) == (0.2, 500, "/data")
    assert config.train.epochs == 4 and config.seed == 3


def test_recipe_trains_well_on_digits(digits):
    from search.training import fit, keras_session

    config = recipe(DataShape.of(digits, "digits"), epochs=8)
    with keras_session():
        result = fit(config, digits)
    assert max(result.history["val_accuracy"]) >= 0.93
