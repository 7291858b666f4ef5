"""``lr-find``: a learning-rate range test for a config file, or for a space on a dataset."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from search.core.config import DataConfig, RunConfig
from search.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="a run config or export file to test")
    p.add_argument("--space", help="instead of --config: a space whose fixed values and defaults give the model")
    p.add_argument("--dataset", default=None, help="with --space: the dataset (default: digits)")
    p.add_argument("--data-dir", help="folder with the dataset's files")
    p.add_argument("--limit-train", type=int, help="use only this many training images")
    p.add_argument("--min-lr", type=float, default=1e-7)
    p.add_argument("--max-lr", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=200, help="batches in the test (default: 200)")
    p.add_argument("--out", default="studies/lr-find", help="folder for lr-find.png and lr-find.json")
    p.add_argument("--write-space", help="write a space file extending --space (or cnn) with the suggested bounds")


def base_config(args: argparse.Namespace) -> tuple[RunConfig, str]:
    """The config to test and the space a --write-space file should extend."""
    if args.config and args.space:
        raise UsageError("give --config or --space, not both")
    if args.config:
        from search.reporting.export import read_export

        config = read_export(args.config).config  # with the trial's split (an older export's source.split_seed)
        if args.data_dir or args.dataset or args.limit_train:
            data = config.data
            config = config.replace(
                data=dataclasses.replace(
                    data,
                    dataset=args.dataset or data.dataset,
                    data_dir=args.data_dir or data.data_dir,
                    limit_train=args.limit_train or data.limit_train,
                )
            )
        return config, "cnn" if config.model.kind == "cnn" else "resnet"
    import optuna

    from search.core.space_files import load_space

    space = load_space(args.space or "cnn")
    data = DataConfig(args.dataset or "digits", args.data_dir, limit_train=args.limit_train)

    class Defaults(optuna.trial.FixedTrial):
        """Replays fixed values; a sampled parameter takes its first choice or its range's middle."""

        def __init__(self) -> None:
            super().__init__({})

        def suggest_categorical(self, name, choices):
            return choices[0]

        def suggest_int(self, name, low, high, step=1, log=False):
            return int(round((low * high) ** 0.5)) if log else (low + high) // 2

        def suggest_float(self, name, low, high, *, step=None, log=False):
            return (low * high) ** 0.5 if log else (low + high) / 2

    return space.sample(Defaults(), RunConfig(data=data)), args.space or "cnn"


def check_rates(args: argparse.Namespace) -> None:
    import math

    for name in ("min_lr", "max_lr"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"--{name.replace('_', '-')} must be a positive finite rate, received {value}")
    if args.min_lr >= args.max_lr:
        raise UsageError(f"--min-lr must be below --max-lr, received {args.min_lr:g} and {args.max_lr:g}")


def check_outputs(args: argparse.Namespace) -> None:
    """Every path lr-find writes, checked before TensorFlow loads (nothing of another's overwritten)."""
    from search.core.outputs import check_output_file, check_output_folder

    out = Path(args.out)
    check_output_folder(out, "--out", lambda folder: True, "")  # a folder of other files is fine: two names are ours
    check_output_file(out / "lr-find.png", "--out", "png")
    check_output_file(out / "lr-find.json", "--out", "lr-find.json")
    if args.write_space:
        if Path(args.write_space).suffix != ".toml":
            raise UsageError(f"--write-space {args.write_space}: expected a .toml file name (a space file)")
        check_output_file(args.write_space, "--write-space", "space")


def run(args: argparse.Namespace) -> int:
    from search.cli import require_tensorflow

    check_rates(args)
    check_outputs(args)
    require_tensorflow()
    config, space_ref = base_config(args)
    from search.core.data import load_dataset
    from search.core.lrfind import lr_range_test, plot, write_space
    from search.core.outputs import atomic_write

    data = load_dataset(config.data)
    print(
        f"lr-find on {data.describe()}: {config.model.kind} model, "
        f"{config.optimizer.name}, batch {config.train.batch_size}, "
        f"{args.steps} steps from {args.min_lr:g} to {args.max_lr:g}"
    )
    result = lr_range_test(config, data, args.min_lr, args.max_lr, args.steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(result, out / "lr-find.png")
    atomic_write(out / "lr-find.json", json.dumps(result.to_dict(), indent=2))
    print(
        f"suggested base rate {result.base_lr:.3g}, max rate {result.max_lr:.3g} "
        f"(cyclic / one-cycle peak factor {result.max_lr / result.base_lr:.3g})"
    )
    print(f"curve: {out / 'lr-find.png'}")
    if args.write_space:
        write_space(space_ref, result.base_lr, result.max_lr, Path(args.write_space))
        print(f"space with these bounds: {args.write_space} (use --space {args.write_space})")
    return 0
