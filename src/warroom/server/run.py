"""Run the API with uvicorn, on a loopback address unless authentication or remote access is on.

Without authentication the API is open, so :func:`serve` refuses a host that is not a loopback
address (``127.0.0.1``, ``::1``, ``localhost``) unless ``allow_remote=True``. With
``auth=True`` every endpoint but ``/healthz`` and the docs needs an API token (``warroom tokens
new``), and any host is allowed.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

import uvicorn

from warroom.server.app import create_app
from warroom.server.auth import TokenStore
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
    ``allow_remote`` (pass ``allow_remote=True`` when authentication is on)."""
    if not allow_remote and not is_loopback(host):
        raise UsageError(f"refusing to listen on {host!r}: without authentication the server "
                         "listens on a loopback address (127.0.0.1, ::1, localhost) only; turn "
                         "authentication on (warroom serve --auth, serve(auth=True)) or pass "
                         "allow_remote=True to listen on other addresses")


def serve(workspace: Workspace, host: str = "127.0.0.1", port: int = 8000, *,
          allow_remote: bool = False, auth: bool = False, log_level: str = "info",
          **app_options: Any) -> None:
    """Serve ``workspace`` until interrupted. ``auth``: require API tokens (and allow any
    host). ``app_options`` go to :func:`~warroom.server.app.create_app` (``max_body_bytes``,
    ``samples``, ``rate_per_s``, ``burst``, ``brief_every_h``, ``cot_host``, ``cot_port``;
    the CoT port has no authentication, so its host must be loopback unless remote access is
    allowed)."""
    check_host(host, allow_remote or auth)
    check_host(app_options.get("cot_host", "127.0.0.1"), allow_remote)
    app = create_app(workspace, auth=auth, **app_options)
    if auth and not any(not t.revoked for t in TokenStore(workspace.store).list()):
        print("warroom: authentication is on but there is no live API token yet; create one "
              "with `warroom tokens new --role admin`", file=sys.stderr)
    # open event streams never end by themselves: give them 5 s at shutdown
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                  timeout_graceful_shutdown=5)).run()
