"""The default recipe: sized to the data, and good on its own (trained here on digits)."""

from __future__ import annotations

from search.core.config import RunConfig
from search.core.recipe import RECIPE, DataShape, no_flip_dataset, recipe


def test_recipe_is_sized_to_the_images():
    grey = recipe(DataShape("fashion_mnist", 28, 28, 1, 10, 10000))
    colour = recipe(DataShape("folder:photos", 32, 32, 3, 10, 9000))
    tiny = recipe(DataShape("digits", 8, 8, 1, 10, 1300))
    assert (grey.model.blocks, grey.model.base_filters, grey.model.pooling) == (3, 32, "max")
    assert colour.model.base_filters == 48
    assert tiny.model.blocks == 2 and tiny.augment.pad_crop == 0  # 8x8: no third pooling, no shifts
    assert (grey.train.batch_size, colour.train.batch_size, tiny.train.batch_size) == (128, 128, 64)
    assert recipe(DataShape("folder:photos", 32, 32, 3, 10, 4500)).train.batch_size == 64  # a few thousand images
    assert recipe(DataShape("fashion_mnist", 28, 28, 1, 10, 54000)).train.batch_size == 256  # the full set
    assert recipe(DataShape("captcha", 40, 100, 1, 10, 7000, text=True)).train.batch_size == 128  # text: as before
    assert grey.augment.pad_crop == 2 and grey.train.epochs == RECIPE["epochs"]
    assert grey.optimizer.name == "sgd" and grey.optimizer.nesterov and grey.schedule.name == "one_cycle"


def test_flips_only_where_a_mirror_image_shows_the_same_thing():
    assert not no_flip_dataset(DataShape("fashion_mnist", 28, 28, 1, 10, 100))
    assert not no_flip_dataset(DataShape("cifar10", 32, 32, 3, 10, 100))
    for spec in ("digits", "mnist", "folder:scans"):
        assert no_flip_dataset(DataShape(spec, 28, 28, 1, 10, 100)), spec
    photos, digits = recipe(DataShape("cifar10", 32, 32, 3, 10, 100)), recipe(DataShape("mnist", 28, 28, 1, 10, 100))
    assert (
        photos.augment.predicts_flips and not digits.augment.predicts_flips
    )  # flip test-time augmentation follows flips
    text = recipe(DataShape("captcha", 40, 100, 1, 10, 7000, text=True))
    assert not text.augment.horizontal_flip and text.model.pooling == "flatten"  # the heads need positions
    assert text.data.normalization == "per_image" and text.optimizer.name == "adam"


def test_recipe_round_trips_and_keeps_the_callers_split():
    from search.core.config import DataConfig

    config = recipe(DataShape("mnist", 28, 28, 1, 10, 5000), DataConfig("mnist", "/data", 0.2, 500), epochs=4, seed=3)
    assert RunConfig.from_dict(config.to_dict()) == config
    assert (config.data.val_split, config.data.limit_train, config.data.data_dir) == (0.2, 500, "/data")
    assert config.train.epochs == 4 and config.seed == 3


def test_recipe_trains_well_on_digits(digits):
    from search.core.training import fit, keras_session

    config = recipe(DataShape.of(digits, "digits"), epochs=8)
    with keras_session():
        result = fit(config, digits)
    assert max(result.history["val_accuracy"]) >= 0.93


def test_the_package_exports_the_recipe_under_a_name_the_module_does_not_shadow():
    import search
    import search.core.recipe  # noqa: F401  (binds the module as an attribute of the package)

    assert search.default_recipe is recipe
    assert callable(search.default_recipe) and "default_recipe" in search.__all__


def test_train_recipe_trains_the_default_recipe_with_no_search(tmp_path):
    import json

    from conftest import run_cli

    result = run_cli("train", "--recipe", "digits", "--epochs", "3", "--keep-val", "--out", "m", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["config"]["model"]["early_pool"] is True and config["config"]["train"]["epochs"] == 3
    assert config["source"]["recipe"] is True
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.5 and (tmp_path / "m" / "model.keras").exists()


def test_train_recipe_with_a_missing_dataset_is_one_line(tmp_path):
    from conftest import run_cli

    result = run_cli("train", "--recipe", "folder:nowhere", cwd=tmp_path)
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
