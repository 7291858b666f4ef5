"""Command-line options the benchmark commands share: which data, and how much of it."""

from __future__ import annotations

import argparse


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="fashion_mnist", help="a dataset spec as for 'search' (default: fashion_mnist)")
    p.add_argument("--data-dir", help="folder with the dataset's files")
    p.add_argument("--limit-train", type=int, default=10000, help="training images (default: 10000)")
    p.add_argument(
        "--val-size", type=int, default=2000, help="validation images carved from the training split (default: 2000)"
    )
