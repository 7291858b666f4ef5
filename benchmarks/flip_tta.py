"""What flip test-time augmentation is worth: train the default recipe once without it,
then predict the validation and test images as they are and averaged with their mirror
images (what ``augment.flip_tta`` builds into the model).  One JSON line per seed.

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 taskset -c 1 python benchmarks/flip_tta.py \\
        --dataset folder:../shared/data/cifar10-subset --limit-train 10000 --val-size 1000 --seeds 0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.args import add_data_arguments
from benchmarks.tools import load_data
from search.core.recipe import DataShape, recipe
from search.core.training import fit, keras_session
from search.errors import CnnSearchError, UsageError


def accuracy(model, x: np.ndarray, y: np.ndarray, mirrored: bool) -> float:
    x = x.astype(np.float32)
    p = model.predict(x, batch_size=512, verbose=0)
    if mirrored:
        p = p + model.predict(x[:, :, ::-1], batch_size=512, verbose=0)
    return float(np.mean(p.argmax(axis=-1) == y))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(p)
    p.add_argument("--epochs", type=int, default=None, help="the recipe's schedule length (default: the recipe's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = p.parse_args(argv)
    try:
        cfg, data = load_data(args.dataset, args.data_dir, args.limit_train, args.val_size)
        shape = DataShape.of(data, args.dataset)
        if not recipe(shape, cfg).augment.horizontal_flip:
            raise UsageError(
                f"the recipe does not flip {args.dataset}, so it has no flip test-time augmentation to measure; "
                "pass colour photographs or fashion_mnist"
            )
    except CnnSearchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for seed in args.seeds:
        config = recipe(shape, cfg, epochs=args.epochs, seed=seed)
        config = dataclasses.replace(config, augment=dataclasses.replace(config.augment, flip_tta=False))
        with keras_session():
            start = time.perf_counter()
            result = fit(config, data)
            row = {
                "dataset": args.dataset,
                "seed": seed,
                "epochs": config.train.epochs,
                "train_s": round(time.perf_counter() - start, 1),
            }
            for split, x, y in (("val", data.x_val, data.y_val), ("test", data.x_test, data.y_test)):
                row[f"{split}_plain"] = accuracy(result.model, x, y, mirrored=False)
                row[f"{split}_flip"] = accuracy(result.model, x, y, mirrored=True)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
