"""``dashboard``: optuna-dashboard on a study, with its trials' curves and model summaries."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from search.cli import add_study_arguments, study_location
from search.errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_study_arguments(p)
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default: {DEFAULT_HOST}, this machine only; 0.0.0.0 opens it to the network)",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, received {args.port}")
    # The dashboard computes importances on every page load; Optuna's accuracy
    # warnings about small studies would flood this terminal.
    warnings.filterwarnings("ignore", message="Some regimes for parameter")
    from search.reporting.dashboard import dashboard_url, make_dashboard_server
    from search.study.storage import default_artifact_dir, load_study_for_reading, open_storage, safe_url

    name, url = study_location(args)
    load_study_for_reading(name, url)  # a missing database or study is one clear error
    storage = open_storage(url)
    artifact_dir = default_artifact_dir(name, url, Path(args.studies_dir))
    server = make_dashboard_server(storage, args.host, args.port, artifact_dir)
    port = server.server_address[1]  # the real one when --port 0
    print(f"optuna-dashboard on study '{name}' in {safe_url(url)} (artifacts: {artifact_dir})")
    print(
        f"open {dashboard_url(args.host, port, storage.get_study_id_from_name(name))}   (Ctrl-C stops it)", flush=True
    )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"note: listening on {args.host}: anyone who can reach this machine can read and edit the study",
            file=sys.stderr,
        )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\ndashboard stopped")
    finally:
        server.server_close()
    return 0
