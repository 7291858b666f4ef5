from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
from conftest import shared_data
from PIL import Image

from search.core.config import DataConfig
from search.core.data import load_dataset, load_raw, parse_spec, prepare
from search.errors import DataError


def write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def idx_folder(tmp_path, n_train=200, n_test=50):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return tmp_path


def image_folder(root, classes=("cat", "dog"), per_class=12, size=(16, 16), mode="RGB"):
    rng = np.random.default_rng(1)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / c / f"{i}.png")
    return root


def test_digits_splits_are_stratified_disjoint_and_seeded():
    a = load_dataset(DataConfig(val_split=0.2, split_seed=0))
    b = load_dataset(DataConfig(val_split=0.2, split_seed=0))
    c = load_dataset(DataConfig(val_split=0.2, split_seed=1))
    assert a.input_shape == (8, 8, 1) and a.num_classes == 10 and a.pixel_max == 16.0
    assert len(a.x_val) == round(0.2 * (len(a.x_train) + len(a.x_val)))
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.y_val, c.y_val)
    # stratified: every class has the same share of validation images (within one image)
    train_counts, val_counts = np.bincount(a.y_train), np.bincount(a.y_val)
    assert np.all(np.abs(val_counts - 0.25 * train_counts) <= 1.5)
    # disjoint: no validation image appears in the training split
    train_rows = {row.tobytes() for row in a.x_train}
    assert sum(row.tobytes() in train_rows for row in a.x_val) <= 2  # digits has a few exact duplicates
    assert len(a.x_test) == round(0.2 * 1797)  # fixed 20% test split, set aside before validation


def test_statistics_come_from_the_training_split_only():
    d = load_dataset(DataConfig())
    assert d.mean[0] == pytest.approx(d.x_train.mean(), rel=1e-6)
    assert d.variance[0] == pytest.approx(d.x_train.var(), rel=1e-6)
    everything = np.concatenate([d.x_train, d.x_val, d.x_test])
    assert d.mean[0] != pytest.approx(everything.mean(), rel=1e-6)


def test_limit_train_keeps_validation_whole():
    full = load_dataset(DataConfig())
    small = load_dataset(DataConfig(limit_train=300))
    assert len(small.x_train) == 300 and len(small.x_val) == len(full.x_val)
    assert set(np.unique(small.y_train)) == set(range(10))


def test_idx_loader_reads_local_files(tmp_path):
    load_raw.cache_clear()
    raw = load_raw("mnist", str(idx_folder(tmp_path)))
    assert raw.x_train.shape == (200, 28, 28, 1) and raw.x_test.shape == (50, 28, 28, 1)
    assert raw.x_train.dtype == np.uint8 and raw.y_train[:3].tolist() == [0, 1, 2]


def test_idx_loader_names_missing_and_corrupt_files(tmp_path):
    folder = idx_folder(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte.gz"):
        load_raw("fashion_mnist", str(folder))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable idx file"):
        load_raw("fashion_mnist", str(folder))


def test_cifar_loader_reads_the_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": list(np.arange(20) % 10)}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    raw = load_raw("cifar10", str(tmp_path))
    assert raw.x_train.shape == (100, 32, 32, 3) and raw.x_test.shape == (20, 32, 32, 3)
    assert raw.class_names[3] == "c3"
    # channel order: the first 1024 bytes are the red plane of the first image
    first = pickle.loads((folder / "data_batch_1").read_bytes())[b"data"][0]
    np.testing.assert_array_equal(raw.x_train[0, :, :, 0].ravel(), first[:1024])


def test_folder_loader_with_train_and_test(tmp_path):
    image_folder(tmp_path / "train")
    image_folder(tmp_path / "test", per_class=4)
    raw = load_raw(f"folder:{tmp_path}")
    assert raw.x_train.shape == (24, 16, 16, 3) and raw.x_test.shape == (8, 16, 16, 3)
    assert raw.class_names == ("cat", "dog")


def test_folder_loader_carves_a_test_split_and_keeps_grey_images_grey(tmp_path):
    image_folder(tmp_path, per_class=20, mode="L")
    raw = load_raw(f"folder:{tmp_path}")
    assert raw.x_train.shape[1:] == (16, 16, 1)
    assert len(raw.x_test) == 8 and len(raw.x_train) == 32


def test_sixteen_bit_grey_images_are_scaled_by_their_range_not_clipped(tmp_path):
    """Scans and microscopy come as 16-bit grey PNGs: 0..65535 becomes 0..255, as 8-bit
    images of the same picture read (Pillow's own conversion would clip to white)."""
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(10):
            wide = rng.integers(0, 65536, size=(8, 8)).astype(np.uint16)
            Image.fromarray(wide).save(tmp_path / cls / f"{i}.png")  # written as a 16-bit grey PNG
            with Image.open(tmp_path / cls / f"{i}.png") as im:
                assert im.mode.startswith("I")
    raw = load_raw(f"folder:{tmp_path}")
    pixels = np.concatenate([raw.x_train, raw.x_test])
    assert pixels.shape[1:] == (8, 8, 1) and pixels.dtype == np.uint8
    assert (
        100 < pixels.mean() < 155 and pixels.min() < 10 and pixels.max() > 245
    )  # spread over the range, not all white
    from search.core.images import read_image

    wide = np.asarray(Image.open(tmp_path / "a" / "0.png"), dtype=np.float64)
    np.testing.assert_array_equal(
        read_image(tmp_path / "a" / "0.png")[..., 0], np.rint(wide * 255 / 65535).astype(np.uint8)
    )


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda root: (root / "cat" / "0.png").write_bytes(b"not a png"), "0.png: not a readable image"),
        (lambda root: Image.new("RGB", (20, 16)).save(root / "dog" / "odd.png"), "resize all images to one size"),
    ],
)
def test_folder_loader_errors_name_the_file(tmp_path, break_it, message):
    root = image_folder(tmp_path / "d")
    break_it(root)
    with pytest.raises(DataError, match=message):
        load_raw(f"folder:{root}")


def test_folder_loader_refuses_missing_and_empty_folders(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_raw(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_raw(f"folder:{tmp_path / 'empty'}")


def test_npz_loader_and_its_checks(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (60, 10, 10), dtype=np.uint8), np.arange(60) % 3
    np.savez(tmp_path / "ok.npz", x_train=x, y_train=y, x_test=x[:9], y_test=y[:9])
    raw = load_raw(f"npz:{tmp_path / 'ok.npz'}")
    assert raw.x_train.shape == (60, 10, 10, 1) and len(raw.class_names) == 3
    np.savez(tmp_path / "count.npz", x_train=x, y_train=y[:50])
    with pytest.raises(DataError, match="50 labels for 60 images"):
        load_raw(f"npz:{tmp_path / 'count.npz'}")
    xf = x.astype(np.float32)
    xf[3, 2, 2] = np.nan
    np.savez(tmp_path / "nan.npz", x_train=xf, y_train=y)
    with pytest.raises(DataError, match="NaN or infinite pixels in 1 images"):
        load_raw(f"npz:{tmp_path / 'nan.npz'}")
    np.savez(tmp_path / "range.npz", x_train=x, y_train=y, x_test=x[:9], y_test=y[:9] + 5)
    with pytest.raises(DataError, match="y_test has label 7"):
        load_raw(f"npz:{tmp_path / 'range.npz'}")


def test_unknown_dataset_names_the_choices():
    with pytest.raises(DataError, match="unknown dataset 'mnistt'; use one of digits, mnist"):
        parse_spec("mnistt")
    with pytest.raises(DataError, match="no path after 'folder:'"):
        parse_spec("folder:")


def test_too_few_images_for_the_split_is_an_error():
    raw = load_raw("digits")
    with pytest.raises(DataError, match="lower --val-split"):
        prepare(raw, DataConfig(val_split=0.995))


def test_fashion_mnist_from_shared_data():
    folder = shared_data("fashion-mnist")
    d = load_dataset(DataConfig("fashion_mnist", str(folder), limit_train=1000))
    assert d.input_shape == (28, 28, 1) and d.num_classes == 10
    assert len(d.x_val) == 6000 and len(d.x_test) == 10000 and len(d.x_train) == 1000
    assert d.class_names[0] == "T-shirt/top" and d.x_train.dtype == np.uint8


def test_folder_loader_on_the_cifar10_subset():
    folder = shared_data("cifar10-subset")
    d = load_dataset(DataConfig(f"folder:{folder}", limit_train=500))
    assert d.input_shape == (32, 32, 3) and d.num_classes == 10
    assert len(d.x_test) == 2000 and len(d.x_val) == 1000
    assert "airplane" in d.class_names and len(d.mean) == 3


def _cifar_folder(root, batch_1: bytes | None = None):
    """A CIFAR-10 python-version folder of tiny batches, pickled as the originals are."""
    import pickle

    import numpy as np

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"batch_label": b"x",
            b"labels": [i % 10 for i in range(20)],
            b"data": rng.integers(0, 255, (20, 3072), dtype=np.uint8),
            b"filenames": [b"f.png"] * 20,
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(
        pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}, protocol=2)
    )
    if batch_1 is not None:
        (folder / "data_batch_1").write_bytes(batch_1)
    return root


class _RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_cifar_batch_cannot_run_code(tmp_path):
    import pickle

    from search.core.data import load_raw
    from search.errors import DataError

    marker = tmp_path / "pwned"
    folder = _cifar_folder(tmp_path / "data", pickle.dumps({b"data": _RunsAShellCommand(marker)}, protocol=2))
    with pytest.raises(DataError, match="data_batch_1: not a CIFAR batch .*posix.system.*nothing in it was run"):
        load_raw("cifar10", str(folder))
    assert not marker.exists()
