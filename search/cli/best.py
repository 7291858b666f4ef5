"""``best``: a study's best trials (for several objectives: its Pareto front) as a table in the terminal."""

from __future__ import annotations

import argparse
import shlex

from search.cli import add_study_arguments, study_location
from search.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_study_arguments(p)
    p.add_argument("--top", type=int, default=10, help="how many trials to show (default: 10)")
    p.add_argument("--columns", type=int, default=8, help="at most this many parameter columns (default: 8)")


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise UsageError(f"--top must be at least 1, received {args.top}")
    if args.columns < 0:
        raise UsageError(f"--columns must be 0 or more, received {args.columns}")
    from search.reporting.leaderboard import format_table, format_value, leaderboard
    from search.study.objectives import describe_objectives
    from search.study.storage import load_study_for_reading, recorded_settings

    name, url = study_location(args)
    study = load_study_for_reading(name, url)
    settings = recorded_settings(study, url)
    board = leaderboard(study, args.top)
    counts = ", ".join(f"{n} {s.lower()}" for s, n in board.counts.items() if n)
    target = describe_objectives(settings) if settings.multi_objective else f"{settings.monitor} ({settings.direction})"
    print(f"study '{name}': {settings.dataset}, {target}; {counts or 'no trials'}")
    if not board.rows:
        print("no completed trial yet" if board.objectives else "no completed or pruned trial yet")
        return 0
    if board.objectives:
        shown = (
            f"; the first {len(board.rows)} shown (--top {board.front_size} shows all)"
            if len(board.rows) < board.front_size
            else ""
        )
        print(
            f"Pareto front: {board.front_size} trial{'s' * (board.front_size != 1)}, no other trial as good in every "
            f"objective and better in one; ranked by {board.objectives[0]}{shown}"
        )
    print(format_table(board, args.columns))
    hidden = board.columns[args.columns :]
    if hidden:
        print(f"more parameters differ: {', '.join(hidden)}")
    if board.constant:
        print("same in all rows: " + ", ".join(f"{k}={format_value(v)}" for k, v in board.constant.items()))
    if board.rows[0].state != "COMPLETE":
        print("no trial has completed: the values shown are the best each pruned trial reported before it stopped")
    if board.objectives:
        where = " ".join(shlex.quote(a) for a in ["--study", name, *_location(args)])
        print(f"export a point: python run_search.py export {where} --trial {board.rows[0].number}")
    return 0


def _location(args: argparse.Namespace) -> list[str]:
    """The options that found this study, for the command it suggests."""
    from search.study.storage import safe_url

    if args.storage:
        return ["--storage", safe_url(args.storage)]
    return ["--studies-dir", args.studies_dir] if args.studies_dir != "studies" else []
