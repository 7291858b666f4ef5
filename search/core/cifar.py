"""CIFAR-10 and CIFAR-100 from their "python version" folders (or Keras' download cache).

Those folders hold pickles: they are read with an unpickler that admits only what the
official batches hold, so a crafted file cannot run code (it is one line instead).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from search.core.loaders import RawData, existing_dir, keras_download
from search.errors import DataError

__all__ = ["load_cifar"]


def load_cifar(kind: str, data_dir: str | None) -> RawData:
    if data_dir is None:
        x_train, y_train, x_test, y_test = keras_download(kind)
        meta_names = None
    else:
        sub = "cifar-10-batches-py" if kind == "cifar10" else "cifar-100-python"
        folder = existing_dir(data_dir, kind)
        if (folder / sub).is_dir():
            folder = folder / sub
        label_key = b"labels" if kind == "cifar10" else b"fine_labels"
        train_files = [f"data_batch_{i}" for i in range(1, 6)] if kind == "cifar10" else ["train"]
        test_file = "test_batch" if kind == "cifar10" else "test"
        missing = [f for f in [*train_files, test_file] if not (folder / f).is_file()]
        if missing:
            raise DataError(
                f"--data-dir {folder}: missing {', '.join(missing)}; "
                f"point it at the '{sub}' folder of the python version"
            )
        batches = [_read_pickle_batch(folder / f, label_key) for f in train_files]
        x_train = np.concatenate([b[0] for b in batches])
        y_train = np.concatenate([b[1] for b in batches])
        x_test, y_test = _read_pickle_batch(folder / test_file, label_key)
        meta_names = _cifar_names(folder, kind)
    y_train, y_test = y_train.reshape(-1).astype(np.int64), y_test.reshape(-1).astype(np.int64)
    n = 10 if kind == "cifar10" else 100
    names = meta_names or tuple(str(i) for i in range(n))
    return RawData(x_train, y_train, x_test, y_test, names, 255.0)


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what the official CIFAR batches hold (a dict of bytes, ints, lists
    and one uint8 array): any other global, such as ``os.system`` in a crafted file, is
    refused before it can run."""

    ALLOWED = {
        (f"numpy{core}.{module}", name)
        for core in (".core", "._core")  # NumPy 1 and NumPy 2 names of the same functions
        for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))
    } | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it asks to load {module}.{name}, which a CIFAR batch never holds")
        return super().find_class(module, name)


def _safe_pickle_load(f) -> object:
    return _CifarUnpickler(f, encoding="bytes").load()


def _read_pickle_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    # CIFAR's "python version" is distributed as pickles: read with an unpickler that
    # admits only what those files hold, so a crafted file cannot run code.
    try:
        with open(path, "rb") as f:
            batch = _safe_pickle_load(f)
    except pickle.UnpicklingError as e:
        raise DataError(
            f"{path}: not a CIFAR batch ({e}); nothing in it was run; replace it with the original download"
        ) from e
    except Exception as e:  # a truncated or corrupt file can raise almost anything
        raise DataError(
            f"{path}: not a readable CIFAR batch ({type(e).__name__}); replace it with the original download"
        ) from e
    try:
        x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(x), np.asarray(batch[label_key])
    except Exception as e:  # a corrupt pickle can raise almost anything
        raise DataError(
            f"{path}: not a readable CIFAR batch ({type(e).__name__}); replace it with the original download"
        ) from e


def _cifar_names(folder: Path, kind: str) -> tuple[str, ...] | None:
    meta, key = (
        (folder / "batches.meta", b"label_names") if kind == "cifar10" else (folder / "meta", b"fine_label_names")
    )
    try:
        with open(meta, "rb") as f:
            return tuple(n.decode() for n in _safe_pickle_load(f)[key])
    except Exception:
        return None
