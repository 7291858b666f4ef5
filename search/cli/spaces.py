"""``spaces``: list the built-in search spaces (or check one file) and their parameters."""

from __future__ import annotations

import argparse

from search.core.space_files import builtin_spaces, load_space


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", nargs="?", help="show only this space: a built-in name or a .toml path (validates it)")


def run(args: argparse.Namespace) -> int:
    names = [args.space] if args.space else list(builtin_spaces())
    for i, name in enumerate(names):
        space = load_space(name)
        if i:
            print()
        print(f"{space.name}  ({space.source}, {len(space.params)} parameters)")
        print("\n".join(space.describe()))
    return 0
