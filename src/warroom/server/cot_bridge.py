"""CoT into the server: a :class:`~warroom.cot_listener.CotListener` that lands what TAK clients
send in the workspace's store and announces each batch on the event hub.

Each batch a connection delivers is validated and written in one transaction by
:func:`~warroom.cot_listener.ingest_records`, in a worker thread (``asyncio.to_thread``) and
under ``lock`` (the app's store lock: the store has one SQLite connection), so the event loop
never waits for the store. Reports without ``received_at`` (CoT carries none) get the time of
arrival, as in ``POST /reports``. A batch that accepted at least one report is published as a
``report`` event: ``{accepted, duplicate, conflict, quarantined, format, origin, forces}``.

Wiring (``create_app`` must expose its store lock, e.g. ``app.state.lock = lock``), in the
app's lifespan::

    from warroom.server.cot_bridge import start_cot

    cot = await start_cot(workspace, "127.0.0.1", 8087, hub=app.state.hub,
                          lock=app.state.lock)
    yield
    await cot.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

from warroom.cot_listener import CotListener, ingest_records
from warroom.ingest.base import Record
from warroom.ingest.cot_format import CotFormat
from warroom.ingest.pipeline import IngestResult
from warroom.server.data import ArrivalValidator
from warroom.server.events import EventHub, report_event
from warroom.workspace import Workspace

log = logging.getLogger(__name__)


class CotBridge:
    """The ``handle`` of a CoT listener: validate and store a batch, then publish it."""

    def __init__(self, workspace: Workspace, hub: EventHub | None = None,
                 lock: Any = None) -> None:
        self.store = workspace.store
        self.validator = ArrivalValidator(workspace.scenario)
        self.hub = hub
        self.lock: Any = lock if lock is not None else contextlib.nullcontext()
        self._vlock = threading.Lock()  # the validator's arrival stamp is shared state
        self.results: list[IngestResult] = []

    def ingest(self, records: list[Record], peer: str) -> IngestResult:
        """Validate and store one batch (blocking; call it in a worker thread)."""
        origin = f"cot://{peer}"
        with self.lock, self._vlock:
            self.validator.arrival = int(time.time())
            try:
                return ingest_records(self.store, self.validator, records, origin)
            finally:
                self.validator.arrival = None

    async def __call__(self, records: list[Record], peer: str) -> None:
        result = await asyncio.to_thread(self.ingest, records, peer)
        if result.quarantined or result.conflict:
            log.warning("CoT %s: %s", result.origin, "; ".join(result.messages[:3]))
        if self.hub is not None and result.accepted:
            forces = sorted({str(r.fields["force"]) for r in records
                             if r.fields is not None and r.fields.get("force")})
            self.hub.publish("report", report_event(
                {"accepted": result.accepted, "duplicate": result.duplicate,
                 "conflict": result.conflict, "quarantined": result.quarantined,
                 "format": result.format}, result.origin, forces=forces))


async def start_cot(workspace: Workspace, host: str, port: int, hub: EventHub | None = None,
                    lock: Any = None, *, fmt: CotFormat | None = None) -> CotListener:
    """Start a CoT listener on ``host:port`` (0: an ephemeral port, then ``listener.port``)
    that stores what it reads in ``workspace`` under ``lock`` (a ``threading`` lock, or None)
    and publishes a ``report`` event per batch with accepted reports on ``hub``. Stop it with
    ``await listener.stop()``. Must be awaited on the event loop that serves it."""
    listener = CotListener(host, port, CotBridge(workspace, hub, lock), fmt=fmt)
    await listener.start()
    return listener


__all__ = ["CotBridge", "start_cot"]
