"""Serve optuna-dashboard on a study's storage, with the search's artifact store.

The dashboard app is optuna-dashboard's own WSGI application; this module only runs
it on a small threaded server that binds where we say (127.0.0.1 by default), logs
no line per request, reports a busy port as one clear error, and stops on Ctrl-C.
"""

from __future__ import annotations

import socket
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna

from search.errors import UsageError

__all__ = ["make_dashboard_server", "dashboard_url"]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # an open browser connection must not block shutdown


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


def make_dashboard_server(
    storage: optuna.storages.BaseStorage, host: str, port: int, artifact_dir: Path | None = None
) -> WSGIServer:
    """A bound (not yet serving) HTTP server running optuna-dashboard on ``storage``."""
    from optuna_dashboard import wsgi

    store = None
    if artifact_dir is not None:
        try:
            artifact_dir.mkdir(parents=True, exist_ok=True)
            store = optuna.artifacts.FileSystemArtifactStore(artifact_dir)
        except OSError:
            store = None  # a read-only place: the dashboard works, without artifacts
    app = wsgi(storage, artifact_store=store)
    server_class = _Server6 if ":" in host else _Server
    try:
        return make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    except OSError as e:
        reason = e.strerror or str(e)
        raise UsageError(f"cannot listen on {host}:{port} ({reason}); choose another --port or --host") from e


def dashboard_url(host: str, port: int, study_id: int | None = None) -> str:
    shown = f"[{host}]" if ":" in host else host
    path = f"/dashboard/studies/{study_id}" if study_id is not None else "/dashboard"
    return f"http://{shown}:{port}{path}"
