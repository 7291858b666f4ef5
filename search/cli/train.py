"""``train``: train the model an exported config describes, save it, evaluate it on the test split."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from search.errors import TrialError, UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", help="a file written by 'export' (or a bare run config JSON)")
    what.add_argument(
        "--recipe",
        metavar="DATASET",
        help="train the default recipe for DATASET (as --dataset of a search), no search and no config file",
    )
    p.add_argument("--out", help="output folder (default: the config's path without .json, plus -model)")
    p.add_argument(
        "--keep-val",
        action="store_true",
        help="keep the validation split apart (reproduces the trial); default: train on train+validation",
    )
    p.add_argument(
        "--early-stopping",
        type=int,
        metavar="PATIENCE",
        help="with --keep-val: stop after PATIENCE epochs without improvement, keep the best weights",
    )
    p.add_argument("--epochs", type=int, help="train this many epochs instead of the config's")
    p.add_argument(
        "--full-train", action="store_true", help="use every training image (drop the --limit-train the search used)"
    )
    p.add_argument("--data-dir", help="where the dataset's files are on this machine (overrides the config's)")
    p.add_argument(
        "--split-seed",
        type=int,
        help="seed of the validation split (default: the study's seed recorded in the export, else 0)",
    )


def _stem(dataset: str) -> str:
    return (
        Path(dataset.split(":", 1)[1]).name
        if ":" in dataset and not dataset.startswith("captcha:")
        else dataset.replace(":", "")
    )


def recipe_export(dataset: str, data_dir: str | None, split_seed: int):
    """The default recipe for ``dataset`` as an export (its source says it is the recipe)."""
    from search.core.config import DataConfig
    from search.core.data import load_dataset
    from search.core.recipe import DataShape, recipe
    from search.reporting.export import Export

    data_cfg = DataConfig(dataset, str(Path(data_dir).resolve()) if data_dir else None, split_seed=split_seed)
    data = load_dataset(data_cfg)  # a bad dataset stops here, before any folder is made
    config = recipe(DataShape.of(data, dataset), data_cfg)
    return Export(config, {"recipe": True, "monitor": "val_accuracy", "split_seed": split_seed})


def run(args: argparse.Namespace) -> int:
    if args.early_stopping is not None and not args.keep_val:
        raise UsageError("--early-stopping watches the validation split; add --keep-val")
    if args.early_stopping is not None and args.early_stopping < 1:
        raise UsageError(f"--early-stopping must be at least 1 epoch, received {args.early_stopping}")
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, received {args.epochs}")
    if args.recipe is not None and not args.recipe.strip():
        raise UsageError("--recipe needs a dataset, as --dataset of a search takes: e.g. --recipe digits")
    if args.config is not None and not args.config.strip():
        raise UsageError("--config needs a file written by 'export'")
    if args.recipe is not None:
        export = recipe_export(args.recipe, args.data_dir, args.split_seed or 0)
        args.config = f"studies/{_stem(args.recipe)}-recipe.json"  # names the default --out folder
    else:
        from search.reporting.export import read_export

        export = read_export(args.config)
        if export.defaulted:
            sections = ", ".join(f"[{s}]" for s in export.defaulted)
            print(
                f"note: {args.config} has no {sections} section; "
                f"{'it takes its' if len(export.defaulted) == 1 else 'they take their'} defaults"
            )
    config = export.config
    if args.epochs is not None:
        config = config.replace(train=dataclasses.replace(config.train, epochs=args.epochs))
    if args.full_train:
        config = config.replace(data=dataclasses.replace(config.data, limit_train=None))
    if args.data_dir:
        config = config.replace(data=dataclasses.replace(config.data, data_dir=str(Path(args.data_dir).resolve())))
    if args.split_seed is not None:
        config = config.replace(data=dataclasses.replace(config.data, split_seed=args.split_seed))
    elif not export.split_recorded:
        print(f"note: {args.config} records no split seed (not written by 'export'); the validation split uses seed 0")
    out = Path(args.out) if args.out else Path(args.config).with_suffix("").with_name(Path(args.config).stem + "-model")
    from search.core.outputs import check_output_folder, is_model_folder

    if check_output_folder(out, "--out", is_model_folder, "a model folder 'train' wrote"):
        print(f"note: {out} holds a model trained before; it is replaced when this one is done")

    from search.cli import require_tensorflow

    require_tensorflow()
    from search.final.train import train_final

    where = "train split, validation kept apart" if args.keep_val else "train + validation splits"
    print(
        f"training {config.model.kind} on {config.data.dataset} ({where}) "
        f"for up to {config.train.epochs} epochs, seed {config.seed}"
    )
    try:
        result = train_final(
            config,
            out,
            keep_val=args.keep_val,
            early_stopping=args.early_stopping,
            source=export.source,
            verbose=2,
        )
    except TrialError as e:  # diverged or out of memory: nothing was saved
        print(f"error: training failed, nothing saved: {e}", file=sys.stderr)
        return 1
    test = result.metrics["test"]
    if "char_accuracy" in test:
        print(
            f"test: whole-text accuracy {test['accuracy']:.4f}, per-character accuracy {test['char_accuracy']:.4f}, "
            f"loss {test['loss']:.4f} on {test['images']} images"
        )
    else:
        print(f"test: accuracy {test['accuracy']:.4f}, loss {test['loss']:.4f} on {test['images']} images")
    validation = result.metrics.get("validation")
    if validation:
        trial_value = export.source.get("value")
        versus = (
            f" (trial {export.source.get('trial')}: {trial_value:.4f})"
            if config.train.monitor == "val_accuracy" and trial_value is not None
            else ""
        )
        print(
            f"validation: best accuracy {validation['best_accuracy']:.4f} "
            f"at epoch {validation['best_accuracy_epoch']}{versus}"
        )
    from search.final.train import FILES

    for note in result.notes:
        print(note)
    print(f"wrote {out}/: {', '.join(f + '/' if (out / f).is_dir() else f for f in FILES if (out / f).exists())}")
    return 0
