"""Text images: the textfolder loader, generated captchas, per-position models and metrics,
diagnosis on text, and a real search, export and train on generated captchas."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import ROOT, run_cli
from PIL import Image

from search.core.captchas import CaptchaSpec, captcha_folder, generate
from search.core.config import AugmentConfig, CNNConfig, DataConfig, ResNetConfig, RunConfig, TrainConfig
from search.core.data import load_dataset, load_raw
from search.core.diagnose import diagnose_history
from search.core.textdata import decode, encode
from search.errors import ConfigError, DataError

TINY_SPACE = str(ROOT / "tests" / "spaces" / "tiny.toml")


def write_images(folder: Path, names: list[str], size=(30, 12), mode="L", seed=0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / name)


@pytest.fixture(scope="module")
def captchas(tmp_path_factory) -> Path:
    """300 generated captchas in a data folder, shared by the tests that train."""
    data_dir = tmp_path_factory.mktemp("data")
    captcha_folder(300, str(data_dir))
    return data_dir


# --- textfolder -----------------------------------------------------------------------


def test_file_names_give_the_texts_and_a_suffix_tells_duplicates_apart(tmp_path):
    texts = ["AB3", "B3C", "C1A", "3AB", "1CB", "CC3", "A1B", "BA1", "31C", "AB1"] * 3
    names = [f"{t}_{i}.png" if i % 2 else f"{t}-{i}.jpg" for i, t in enumerate(texts)]
    names[0] = "AB3.png"  # no suffix at all
    write_images(tmp_path / "t", names)
    Image.fromarray(np.zeros((20, 40), np.uint8)).save(tmp_path / "t" / "ABC_other_size.png")  # resized to 12x30
    (tmp_path / "t" / "._AB3.png").write_bytes(b"macOS metadata")  # hidden: skipped
    load_raw.cache_clear()
    raw = load_raw(f"textfolder:{tmp_path / 't'}")
    assert raw.text_length == 3 and raw.class_names == ("1", "3", "A", "B", "C")
    assert raw.x_train.shape[1:] == (12, 30, 1) and len(raw.x_train) + len(raw.x_test) == 31
    seen = {"".join(raw.class_names[i] for i in row) for row in np.concatenate([raw.y_train, raw.y_test])}
    assert seen == set(texts) | {"ABC"}
    data = load_dataset(DataConfig(f"textfolder:{tmp_path / 't'}", val_split=0.2))
    assert data.alphabet == "13ABC" and data.num_classes == 5 and data.y_val.shape[1:] == (3,)
    assert "texts of 3 characters from '13ABC'" in data.describe()


def test_labels_csv_wins_and_allows_any_character(tmp_path):
    folder = tmp_path / "t"
    write_images(folder, [f"img{i}.png" for i in range(30)], mode="RGB")
    write_images(folder, ["XYZ_0.png"])  # not listed: ignored
    rows = [f"img{i}.png,{'a_-b'[i % 4]}{'xy'[i % 2]}" for i in range(30)]
    (folder / "labels.csv").write_text("file,text\n" + "\n".join(rows) + "\n")
    load_raw.cache_clear()
    raw = load_raw(f"textfolder:{folder}")
    assert raw.class_names == tuple("-_abxy") and raw.text_length == 2
    assert raw.x_train.shape[1:] == (12, 30, 3) and len(raw.x_train) + len(raw.x_test) == 30


def test_train_and_test_folders_share_the_alphabet_size_and_mode(tmp_path):
    write_images(
        tmp_path / "t" / "train", [f"{a}{b}_{i}.png" for i, (a, b) in enumerate(["12", "21", "13", "31", "23"] * 4)]
    )
    write_images(tmp_path / "t" / "test", ["12.png", "32.png"], size=(60, 24), mode="RGB")
    load_raw.cache_clear()
    raw = load_raw(f"textfolder:{tmp_path / 't'}")
    assert raw.x_test.shape == (2, 12, 30, 1) and raw.y_test.tolist() == [[0, 1], [2, 1]]
    write_images(tmp_path / "t" / "test", ["1Z.png"])
    load_raw.cache_clear()
    with pytest.raises(DataError, match=r"1Z\.png: text '1Z' has 'Z', which no training image has \(alphabet '123'\)"):
        load_raw(f"textfolder:{tmp_path / 't'}")


def test_texts_of_different_lengths_are_one_line_naming_the_file(tmp_path):
    write_images(tmp_path / "t", [f"{t}_{i}.png" for i, t in enumerate(["123", "231", "312", "12"] * 5)])
    result = run_cli("--dataset", f"textfolder:{tmp_path / 't'}", "--trials", "1", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "12_11.png: text '12' has 2 characters but 123_0.png has 3" in line and "pad shorter ones" in line
    assert not (tmp_path / "studies").exists()


@pytest.mark.parametrize(
    "files, message",
    [
        ({"labels.csv": "name,label\na.png,12\n"}, "columns file,text"),
        ({"labels.csv": "file,text\nmissing.png,12\n"}, "names missing.png"),
        ({"_1.png": None}, "gives no text"),
        ({"11.png": None, "11_2.png": None}, "2 or more|two or more"),
    ],
)
def test_bad_text_folders(tmp_path, files, message):
    for name, text in files.items():
        if text is None:
            write_images(tmp_path, [name])
        else:
            (tmp_path / name).write_text(text)
    load_raw.cache_clear()
    with pytest.raises(DataError, match=message):
        load_raw(f"textfolder:{tmp_path}")


def test_encode_and_decode_round_trip():
    y = encode(["ba", "ab"], "ab")
    assert y.tolist() == [[1, 0], [0, 1]]
    probabilities = np.eye(2)[y] * 0.8 + 0.1
    assert decode(probabilities, "ab") == decode(y, "ab") == ["ba", "ab"]


# --- generated captchas ---------------------------------------------------------------


def test_generation_is_deterministic_and_reused(tmp_path):
    spec = CaptchaSpec(count=100)
    a, b = generate(tmp_path / "a", spec), generate(tmp_path / "b", spec)
    files = sorted(p.name for p in a.iterdir())
    assert len(files) == 100 and files == sorted(p.name for p in b.iterdir())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert all(len(f.split("_")[0]) == 4 and f.split("_")[0].isdigit() for f in files)
    with Image.open(a / files[0]) as im:
        assert (im.mode, im.size) == ("L", (100, 40))
    other = generate(tmp_path / "c", CaptchaSpec(count=100, seed=1))
    assert sorted(p.name for p in other.iterdir()) != files
    folder = captcha_folder(100, str(tmp_path))
    stamp = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert captcha_folder(100, str(tmp_path)) == folder  # second time: reused, not regenerated
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamp
    assert folder.name == "captcha-100-4xdigits-100x40-seed0" and not list(tmp_path.glob("*.tmp*"))


def test_without_the_captcha_package_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "captcha.image", None)  # import captcha.image now raises ImportError
    with pytest.raises(DataError, match="pip install captcha"):
        captcha_folder(100, str(tmp_path))


def test_captcha_spec_mistakes():
    load_raw.cache_clear()
    with pytest.raises(DataError, match="captcha:N"):
        load_raw("captcha:many")
    with pytest.raises(DataError, match="at least 100"):
        load_raw("captcha:20")


# --- models, metrics, spaces, diagnosis ---------------------------------------------


def test_text_models_have_one_softmax_per_position():
    from search.core.models import InputStats, build_model

    stats = InputStats(255.0, (128.0,), (4000.0,))
    cnn = build_model(
        CNNConfig(blocks=2, convs_per_block=1, base_filters=8, dense_units=32), (40, 100, 1), 10, "scale", stats, 4
    )
    resnet = build_model(ResNetConfig(blocks_per_stage=1, base_filters=8), (40, 100, 1), 10, "scale", stats, 4)
    x = np.random.default_rng(0).uniform(0, 255, (2, 40, 100, 1)).astype("float32")
    for model in (cnn, resnet):
        assert model.output_shape == (None, 4, 10)
        np.testing.assert_allclose(model.predict(x, verbose=0).sum(axis=-1), 1.0, rtol=1e-5)
    # the ResNet keeps the columns (25 of them at 100 px wide) instead of pooling them away
    assert resnet.get_layer("positions").input.shape == (None, 25 * 32)


def test_string_and_character_accuracy_on_crafted_tensors():
    import keras

    from search.core.models import compile_metrics

    truth = np.eye(3)[[[0, 1], [2, 2], [1, 0]]]  # 3 texts of 2 characters from 3
    guess = np.eye(3)[[[0, 1], [2, 0], [0, 1]]] * 0.7 + 0.1  # all right, one of two, none
    string, char = compile_metrics(text=True)
    assert (string.name, char.name) == ("accuracy", "char_accuracy")
    string.update_state(truth, guess)
    char.update_state(truth, guess)
    assert float(string.result()) == pytest.approx(1 / 3)
    assert float(char.result()) == pytest.approx(3 / 6)
    assert compile_metrics(text=False) == ["accuracy"]
    assert isinstance(char, keras.metrics.CategoricalAccuracy)


def test_spaces_never_flip_text_and_configs_refuse_it():
    from search.core.space_files import load_space

    space = load_space("cnn")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        trial = study.ask()
        config = space.sample(trial, RunConfig(data=DataConfig("captcha:500")))
        assert config.augment.horizontal_flip is False and "horizontal_flip" not in trial.params
    images = [space.sample(study.ask(), RunConfig()).augment.horizontal_flip for _ in range(12)]
    assert True in images  # image data still samples it
    with pytest.raises(ConfigError, match="augment.horizontal_flip: expected false for the text dataset"):
        RunConfig(data=DataConfig("textfolder:x"), augment=AugmentConfig(horizontal_flip=True))


def test_text_stuck_is_judged_per_character():
    # whole-text accuracy 0 after two epochs, but characters well above 1/10: learning, not stuck
    learning = {
        "loss": [2.3, 1.9],
        "accuracy": [0.0, 0.0],
        "char_accuracy": [0.2, 0.35],
        "val_loss": [2.2, 1.8],
        "val_accuracy": [0.0, 0.01],
        "val_char_accuracy": [0.25, 0.4],
    }
    assert diagnose_history(learning, 10) == []
    stuck = {**learning, "val_char_accuracy": [0.1, 0.11]}
    assert diagnose_history(stuck, 10) == ["stuck"]


def test_monitor_check_knows_char_accuracy_only_for_text():
    from search.errors import MetricNotFoundError
    from search.study.setup import check_monitor

    check_monitor("val_char_accuracy", text=True)
    with pytest.raises(MetricNotFoundError):
        check_monitor("val_char_accuracy", text=False)


def test_fit_a_resnet_on_captchas(captchas):
    from search.core.training import fit

    data = load_dataset(DataConfig("captcha:300", data_dir=str(captchas)))
    config = RunConfig(
        data=DataConfig("captcha:300", data_dir=str(captchas)),
        model=ResNetConfig(blocks_per_stage=1, base_filters=8),
        train=TrainConfig(batch_size=32, epochs=1),
    )
    result = fit(config, data)
    assert set(result.history) == {"loss", "accuracy", "char_accuracy", "val_loss", "val_accuracy", "val_char_accuracy"}
    assert 0.0 <= result.history["val_accuracy"][0] <= result.history["val_char_accuracy"][0] <= 1.0


# --- the command line: search, export, train, decode ---------------------------------


def test_search_export_train_and_decode_generated_captchas(captchas, tmp_path):
    where = ("--study", "cap", "--studies-dir", "studies")
    result = run_cli(
        *where,
        "--dataset",
        "captcha:300",
        "--data-dir",
        str(captchas),
        "--space",
        TINY_SPACE,
        "--trials",
        "2",
        "--epochs",
        "2",
        "--limit-train",
        "200",
        "--pruner",
        "none",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "texts of 4 characters from '0123456789'" in result.stdout
    study = optuna.load_study(study_name="cap", storage=f"sqlite:///{tmp_path / 'studies' / 'cap.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for t in study.trials:
        history = t.user_attrs["history"]
        assert set(history) >= {"loss", "accuracy", "char_accuracy", "val_loss", "val_accuracy", "val_char_accuracy"}
        assert list(t.intermediate_values.values()) == pytest.approx(history["val_accuracy"])
        assert t.value == pytest.approx(max(history["val_accuracy"]))
        assert all(s <= c for s, c in zip(history["val_accuracy"], history["val_char_accuracy"]))
        assert isinstance(t.user_attrs["diagnosis"], list)
        config = RunConfig.from_dict(t.user_attrs["config"])
        assert config.data.dataset == "captcha:300" and config.data.limit_train == 200

    export = tmp_path / "best.json"
    assert run_cli("export", *where, "--out", str(export), cwd=tmp_path).returncode == 0
    out = tmp_path / "model"
    trained = run_cli("train", "--config", str(export), "--out", str(out), "--keep-val", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "whole-text accuracy" in trained.stdout and "per-character accuracy" in trained.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["test"]
    assert (metrics["alphabet"], metrics["text_length"], test["images"]) == ("0123456789", 4, 60)
    assert 0.0 <= test["accuracy"] <= test["char_accuracy"] <= 1.0
    assert test["char_accuracy"] == pytest.approx(np.mean(test["per_position_accuracy"]), abs=1e-6)
    assert np.array(test["confusion_matrix"]).sum() == 4 * 60
    assert metrics["validation"]["best_accuracy"] == pytest.approx(study.best_value, abs=0.01)

    # the saved model, read back in safe mode, decodes texts and scores what metrics.json says
    import search

    data = load_dataset(RunConfig.load(export).data)
    model = search.load_model(out / "model.keras")
    texts = search.decode(model.predict(data.x_test.astype("float32"), verbose=0), metrics["alphabet"])
    truth = decode(data.y_test, metrics["alphabet"])
    assert np.mean([a == b for a, b in zip(texts, truth)]) == pytest.approx(test["accuracy"], abs=1e-6)
    assert [e["predicted"] for e in test["examples"]] == texts[:10]
