"""A real uvicorn server for the tests: an ephemeral loopback port, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def running(app: Any, lifespan: str = "off", timeout_graceful_shutdown: int = 5,
            before_stop: Any = None) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1:<ephemeral> in a thread; yields its base URL and stops it
    (after calling ``before_stop``, e.g. closing event streams) on the way out."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan=lifespan,
                                           timeout_graceful_shutdown=timeout_graceful_shutdown))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "server thread died"
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if before_stop is not None:
            before_stop()
        server.should_exit = True
        thread.join(15)
        assert not thread.is_alive()
