"""Command line: ``run_search.py [search] ...`` and the other sub-commands.

Each sub-command lives in its own module of this package (``search.cli.train`` for
``train``, ...) with ``add_arguments(parser)`` and ``run(args) -> int``.  This module
parses, dispatches, and turns the project's usage errors into one line on stderr and
exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from search.errors import DiskFullError, SearchInterrupted, UsageError, disk_full

__all__ = ["main", "COMMANDS", "require_tensorflow", "add_study_arguments", "study_location"]

# name -> (module, one-line help); ``search`` is the default when no name is given.
COMMANDS: dict[str, tuple[str, str]] = {
    "search": ("search.cli.search", "run or resume a search (the default)"),
    "spaces": ("search.cli.spaces", "list the built-in search spaces and their parameters"),
    "dashboard": ("search.cli.dashboard", "open optuna-dashboard on a study (learning curves, artifacts)"),
    "best": ("search.cli.best", "print a study's best trials as a table"),
    "export": ("search.cli.export", "write the best (or a chosen) trial's run config as JSON"),
    "train": ("search.cli.train", "train a model from an exported config and evaluate it on the test split"),
    "predict": ("search.cli.predict", "run a trained model on images: top classes (or the text) with probabilities"),
    "report": ("search.cli.report", "write a self-contained HTML report of a study or a trained model"),
    "lr-find": ("search.cli.lrfind", "learning-rate range test: loss against rate, suggested base and max rates"),
}
DEFAULT_COMMAND = "search"


class _Parser(argparse.ArgumentParser):
    """argparse that exits with one line (status 2) instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}; see --help")


def require_tensorflow(import_now: bool = True) -> None:
    """Commands that train call this first: TensorFlow comes from an extra, not by default.

    ``import_now=False`` only checks that it is installed: a process that leaves the
    training to worker processes need not load it.
    """
    try:
        if import_now:
            from search.core.tfimport import import_tensorflow_quietly

            import_tensorflow_quietly()
        elif importlib.util.find_spec("tensorflow") is None:
            raise ImportError("tensorflow")
    except ImportError as e:
        raise UsageError(
            "TensorFlow is not installed; run: pip install -e '.[cpu]' (or '.[gpu]' on a machine with an NVIDIA GPU)"
        ) from e


def add_study_arguments(p: argparse.ArgumentParser, required: bool = True) -> None:
    """``--study``, ``--storage`` and ``--studies-dir``: the options that find a study."""
    p.add_argument("--study", required=required, help="study name")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///<studies-dir>/<study>.db)")
    p.add_argument("--studies-dir", default="studies", help="where default databases live (default: studies)")


def study_location(args: argparse.Namespace) -> tuple[str, str]:
    """The checked study name and its storage URL, from ``add_study_arguments`` options."""
    from pathlib import Path

    from search.study.storage import check_study_name, default_storage

    name = check_study_name(args.study)
    return name, args.storage or default_storage(name, Path(args.studies_dir))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cnn-search", description="Optuna hyperparameter search for Keras image classifiers.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, DEFAULT_COMMAND)
    try:
        args = build_parser().parse_args(args_list)
        if getattr(args, "verbose", False):  # before TensorFlow loads, here or in a worker (which inherits it)
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        module = importlib.import_module(COMMANDS[args.command][0])
        return int(module.run(args) or 0)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SearchInterrupted as e:
        print(f"interrupted: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a full disk is the machine's state, not a bug: one line, and the study resumes
        why = disk_full(e)
        if why is None:
            raise
        print(f"error: {DiskFullError(why)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
