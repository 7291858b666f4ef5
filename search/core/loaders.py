"""Dataset loaders: each reads one kind of dataset from disk (or Keras' download cache)
into ``RawData``: images as (N, H, W, C) arrays, integer labels, a train and a test split.

``search.core.data`` picks the loader a dataset spec names, checks what it returned and
splits it; nothing here splits for validation or knows about configs.
"""

from __future__ import annotations

import dataclasses
import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.core.images import IMAGE_SUFFIXES, read_image
from search.errors import DataError

TEST_FRACTION = 0.2  # carved (stratified, seed 0) for datasets that ship no test split


@dataclass(frozen=True)
class RawData:
    """Images as (N, H, W, C) arrays and integer labels, before any split of ours."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]  # text datasets: the alphabet, one character each
    pixel_max: float  # the value that ``scale`` maps to 1.0
    text_length: int | None = None  # text datasets: characters per image (labels are (N, L))


def load_digits() -> RawData:
    from sklearn import datasets

    bunch = datasets.load_digits()
    x = bunch.images.astype(np.float32)[..., None]
    y = bunch.target.astype(np.int64)
    return with_carved_test(x, y, tuple(str(i) for i in range(10)), pixel_max=16.0)


IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def load_idx_dataset(kind: str, data_dir: str | None) -> RawData:
    names = FASHION_CLASSES if kind == "fashion_mnist" else tuple(str(i) for i in range(10))
    if data_dir is None:
        arrays = keras_download(kind)
    else:
        folder = existing_dir(data_dir, kind)
        missing = [f for f in IDX_FILES.values() if not (folder / f).is_file()]
        if missing:
            raise DataError(
                f"--data-dir {folder}: missing {', '.join(missing)}; point it at the folder with the four idx .gz files"
            )
        arrays = tuple(_read_idx(folder / IDX_FILES[k]) for k in ("x_train", "y_train", "x_test", "y_test"))
    x_train, y_train, x_test, y_test = arrays
    return RawData(
        x_train[..., None], y_train.astype(np.int64), x_test[..., None], y_test.astype(np.int64), names, 255.0
    )


def _read_idx(path: Path) -> np.ndarray:
    """Read one idx file (optionally gzipped): a magic number, the dims, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("bad magic number")
        dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
        return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    except (OSError, ValueError, struct.error, EOFError) as e:
        raise DataError(f"{path}: not a readable idx file ({e}); replace it with the original download") from e


def keras_download(kind: str) -> tuple[np.ndarray, ...]:
    import keras

    loader = getattr(keras.datasets, kind)
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as e:
        raise DataError(
            f"dataset '{kind}': download failed ({type(e).__name__}); pass --data-dir with the dataset's files "
            "(idx .gz files for MNIST/Fashion-MNIST, the python-version folder for CIFAR)"
        ) from e
    return x_train, y_train, x_test, y_test


def load_folder(root: Path) -> RawData:
    root = existing_dir(str(root), "folder")
    if (root / "train").is_dir():
        x_train, y_train, names = _read_class_folders(root / "train", None)
        if (root / "test").is_dir():
            x_test, y_test, _ = _read_class_folders(root / "test", names)
            same_image_shape(x_train, x_test, root)
            return RawData(x_train, y_train, x_test, y_test, names, 255.0)
        return with_carved_test(x_train, y_train, names, 255.0)
    x, y, names = _read_class_folders(root, None)
    return with_carved_test(x, y, names, 255.0)


def _read_class_folders(root: Path, names: tuple[str, ...] | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if names is None:
        names = tuple(p.name for p in class_dirs)
        if len(names) < 2:
            raise DataError(
                f"{root}: found {len(names)} class folders; put each class's images in its own sub-folder (two or more)"
            )
    else:
        unknown = [p.name for p in class_dirs if p.name not in names]
        if unknown:
            raise DataError(f"{root}: class folders {unknown} are not in the training classes; rename or remove them")
    images: list[np.ndarray] = []
    labels: list[int] = []
    first: tuple[Path, tuple[int, ...]] | None = None
    for class_dir in class_dirs:
        label = names.index(class_dir.name)
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            arr = read_image(path)
            if first is None:
                first = (path, arr.shape)
            elif arr.shape[:2] != first[1][:2]:
                raise DataError(
                    f"{path}: image is {arr.shape[1]}x{arr.shape[0]} but "
                    f"{first[0].name} is {first[1][1]}x{first[1][0]}; "
                    "resize all images to one size"
                )
            images.append(arr)
            labels.append(label)
    if not images:
        raise DataError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}); check the folder")
    channels = max(a.shape[-1] for a in images)
    if channels == 3:  # a folder mixing grey and colour images: make all RGB
        images = [np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a for a in images]
    return np.stack(images), np.asarray(labels, dtype=np.int64), names


def load_textfolder(root: Path) -> RawData:
    """Text images (see ``textdata``): ``train/`` and ``test/`` if present, else one folder."""
    from search.core.textdata import alphabet_of, encode, read_text_split

    root = existing_dir(str(root), "textfolder")
    train_dir = root / "train" if (root / "train").is_dir() else root
    x, texts, paths = read_text_split(train_dir)
    alphabet = alphabet_of(texts, train_dir)
    names, length = tuple(alphabet), len(texts[0])
    y = encode(texts, alphabet, paths)
    if train_dir != root and (root / "test").is_dir():
        mode = "L" if x.shape[-1] == 1 else "RGB"
        x_test, test_texts, test_paths = read_text_split(root / "test", x.shape[1:3], mode, length)
        return RawData(x, y, x_test, encode(test_texts, alphabet, test_paths), names, 255.0, length)
    return dataclasses.replace(with_carved_test(x, y, names, 255.0), text_length=length)


def load_npz(path: Path) -> RawData:
    if not path.is_file():
        raise DataError(f"npz file {path} does not exist; check the path after 'npz:'")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}); save it with numpy.savez") from e
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing arrays {missing}; save x_train and y_train (and optionally x_test, y_test)")
    x, y = as_images(arrays["x_train"], path, "x_train"), np.asarray(arrays["y_train"]).reshape(-1)
    y = as_labels(y, len(x), path, "y_train")
    names = tuple(str(i) for i in range(int(y.max()) + 1))
    pixel_max = 255.0 if x.dtype == np.uint8 else float(max(1.0, np.nanmax(x)))
    if "x_test" in arrays and "y_test" in arrays:
        xt = as_images(arrays["x_test"], path, "x_test")
        yt = as_labels(np.asarray(arrays["y_test"]).reshape(-1), len(xt), path, "y_test")
        same_image_shape(x, xt, path)
        if yt.max() >= len(names):
            raise DataError(
                f"{path}: y_test has label {int(yt.max())} but y_train's "
                f"labels stop at {len(names) - 1}; fix the labels"
            )
        return RawData(x, y, xt, yt, names, pixel_max)
    return with_carved_test(x, y, names, pixel_max)


def as_images(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "uifb":
        raise DataError(f"{path}: {key} holds {x.dtype} values; pixels must be numbers (uint8 0..255 or floats)")
    if len(x) == 0:
        raise DataError(f"{path}: {key} holds 0 images; save at least one image per class")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise DataError(f"{path}: {key} has shape {x.shape}; expected (N, H, W) or (N, H, W, C) with C in 1, 3, 4")
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    return x


def as_labels(y: np.ndarray, n: int, path: Path, key: str) -> np.ndarray:
    if len(y) != n:
        raise DataError(f"{path}: {key} has {len(y)} labels for {n} images; give one label per image")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: {key} has dtype {y.dtype}; labels must be integers 0..K-1")
    if y.min() < 0:
        raise DataError(f"{path}: {key} has label {int(y.min())}; labels must be integers 0..K-1")
    return y.astype(np.int64)


def same_image_shape(a: np.ndarray, b: np.ndarray, where: Path) -> None:
    if a.shape[1:] != b.shape[1:]:
        raise DataError(f"{where}: training images are {a.shape[1:]} but test images are {b.shape[1:]}; use one size")


def stratify_labels(y: np.ndarray) -> np.ndarray | None:
    if y.ndim > 1:  # texts: too many distinct labels to stratify on
        return None
    counts = np.bincount(y)
    return y if counts[counts > 0].min() >= 2 else None


def with_carved_test(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], pixel_max: float) -> RawData:
    """Set aside a fixed test split for datasets that ship none (seed 0, never varied)."""
    from sklearn.model_selection import train_test_split

    n_test = max(int(round(len(x) * TEST_FRACTION)), len(names))
    if len(x) - n_test < 2 * len(names):
        raise DataError(f"only {len(x)} images for {len(names)} classes; need at least {n_test + 2 * len(names)}")
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=n_test, stratify=stratify_labels(y), random_state=0)
    return RawData(x_tr, y_tr, x_te, y_te, names, pixel_max)


def existing_dir(path: str, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        where = f"the path after '{what}:'" if what in ("folder", "textfolder") else "--data-dir"
        raise DataError(f"{what}: folder {p} does not exist; check {where}")
    if not p.is_dir():
        raise DataError(f"{what}: {p} is not a folder; pass the folder that holds the data")
    return p
