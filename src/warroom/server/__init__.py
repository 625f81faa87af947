"""The warroom HTTP server: a JSON API over one workspace (store + scenario).

:func:`create_app` builds the FastAPI application; :func:`serve` runs it with uvicorn on a
loopback address (authentication comes later, so remote hosts are refused unless asked for).
"""

from __future__ import annotations

from warroom.server.app import create_app
from warroom.server.run import serve

__all__ = ["create_app", "serve"]
