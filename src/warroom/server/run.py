"""Run the API with uvicorn, on a loopback address unless remote access is asked for.

There is no authentication yet, so :func:`serve` refuses a host that is not a loopback address
(``127.0.0.1``, ``::1``, ``localhost``) unless ``allow_remote=True``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import uvicorn

from warroom.server.app import create_app
from warroom.workspace import UsageError, Workspace


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost`` or a loopback address)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool = False) -> None:
    """Raise :class:`~warroom.workspace.UsageError` for a non-loopback host without
    ``allow_remote``."""
    if not allow_remote and not is_loopback(host):
        raise UsageError(f"refusing to listen on {host!r}: the server has no authentication "
                         "yet, so it listens on a loopback address (127.0.0.1, ::1, localhost) "
                         "only; pass allow_remote=True to listen on other addresses anyway")


def serve(workspace: Workspace, host: str = "127.0.0.1", port: int = 8000, *,
          allow_remote: bool = False, log_level: str = "info", **app_options: Any) -> None:
    """Serve ``workspace`` until interrupted. ``app_options`` go to
    :func:`~warroom.server.app.create_app` (``max_body_bytes``, ``samples``)."""
    check_host(host, allow_remote)
    app = create_app(workspace, **app_options)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level)).run()
