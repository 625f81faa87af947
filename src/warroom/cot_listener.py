"""A TCP listener for TAK clients: CoT XML events in, batches of records out.

TAK clients (ATAK, WinTAK, iTAK, pytak gateways) stream CoT events over plain TCP ("TAK protocol
version 0": XML events back to back). Each connection's bytes go through its own
:class:`~warroom.ingest.cot_format.CotDecoder`, the same parser as a CoT file, and every read
that completes events hands them, as one batch, to a callback::

    def handle(records: list[Record], peer: str) -> None: ...

(or an ``async def``; it is awaited). A malformed event becomes a record with an error and its
exact raw bytes, and the connection reads on; only that event is lost. A connection that sends
more than ``max_event`` bytes without ``</event>`` has what it sent quarantined and its buffer
reset. An exception in ``handle`` is logged and the connection reads on.

:func:`ingest_records` is the usual ``handle`` body: it validates a batch and lands it in the
store in one transaction, bad records in quarantine with their raw bytes::

    listener = CotListener("0.0.0.0", 8087,
                           lambda recs, peer: ingest_records(store, validator, recs,
                                                             f"cot://{peer}"))
    await listener.start()
    ...
    await listener.stop()

(``async with CotListener(...) as listener:`` does the same.) ``handle`` runs on the event loop:
a store write blocks the loop for its duration, which is fine for a few clients; for many, pass
an async handle that writes through ``asyncio.to_thread``. Not handled: TLS (port 8089), the TAK
protobuf protocol (version 1) and UDP; a client that negotiates protobuf is not understood.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from warroom.ingest.base import Record
from warroom.ingest.cot_format import FORMAT, MAX_EVENT, CotDecoder, CotFormat
from warroom.ingest.pipeline import IngestResult
from warroom.ingest.validate import Validator
from warroom.store import QuarantineRow, Store

log = logging.getLogger(__name__)

Handle = Callable[[list[Record], str], Awaitable[None] | None]
"""``handle(records, peer)``: a batch of one connection's records; ``peer`` is ``host:port``."""
READ_SIZE = 1 << 16


class CotListener:
    """An asyncio TCP server for CoT streams. ``port`` 0 binds an ephemeral port; after
    :meth:`start`, :attr:`port` is the bound one. ``fmt`` sets the mapping (source, uid->force
    map); ``max_event`` bounds each connection's buffer."""

    def __init__(self, host: str, port: int, handle: Handle, *, fmt: CotFormat | None = None,
                 max_event: int = MAX_EVENT, read_size: int = READ_SIZE) -> None:
        self.host = host
        self.port = port
        self.handle = handle
        self.fmt = fmt if fmt is not None else FORMAT
        self.max_event = max_event
        self.read_size = read_size
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._server is not None:
            raise RuntimeError("the CoT listener is already started")
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("CoT listener on %s:%d", self.host, self.port)

    @property
    def clients(self) -> int:
        """Connected clients."""
        return len(self._writers)

    def broadcast(self, data: bytes) -> int:
        """Send ``data`` (CoT events) to every connected client; how many it went to. Call on
        the listener's event loop. A client that cannot keep up (more than ``max_event`` bytes
        unsent) is skipped this time rather than buffered without bound."""
        sent = 0
        for w in list(self._writers):
            if w.is_closing() or w.transport.get_write_buffer_size() > self.max_event:
                continue
            w.write(data)
            sent += 1
        return sent

    def broadcast_threadsafe(self, loop: asyncio.AbstractEventLoop) -> Any:
        """A function any thread may call with bytes to :meth:`broadcast` them on ``loop``."""
        return lambda data: loop.call_soon_threadsafe(self.broadcast, data)

    async def stop(self) -> None:
        """Stop accepting, end every connection (an event cut short is handed on as an
        incomplete event) and wait for them."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        conns = list(self._conns)
        for task in conns:
            task.cancel()
        await asyncio.gather(*conns, return_exceptions=True)
        await server.wait_closed()

    async def serve_forever(self) -> None:
        """Start (when not started) and serve until cancelled; then stop."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        finally:
            await self.stop()

    async def __aenter__(self) -> CotListener:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        peer = _peer(writer)
        self._writers.add(writer)
        decoder = CotDecoder(self.fmt, self.max_event)
        log.info("CoT client %s connected", peer)
        try:
            while True:
                try:
                    data = await reader.read(self.read_size)
                except (ConnectionError, OSError) as e:
                    log.info("CoT client %s: %s", peer, e)
                    break
                if not data:
                    break
                await self._deliver(decoder.feed(data), peer)
            await self._deliver(decoder.close(), peer)
        except asyncio.CancelledError:
            # shutting down: keep what was half-received, and end quietly (asyncio's stream
            # callback would log a cancelled connection task as an error)
            with contextlib.suppress(asyncio.CancelledError):
                await self._deliver(decoder.close(), peer)
        finally:
            if task is not None:
                self._conns.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                await writer.wait_closed()
            log.info("CoT client %s disconnected", peer)

    async def _deliver(self, records: list[Record], peer: str) -> None:
        if not records:
            return
        try:
            result = self.handle(records, peer)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("CoT listener: handling %d record(s) from %s failed", len(records),
                          peer)


def _peer(writer: asyncio.StreamWriter) -> str:
    addr = writer.get_extra_info("peername")
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = f"[{addr[0]}]" if ":" in str(addr[0]) else str(addr[0])
        return f"{host}:{addr[1]}"
    return str(addr)


def ingest_records(store: Store, validator: Validator, records: list[Record],
                   origin: str) -> IngestResult:
    """Validate a batch of records and land it in one transaction: good ones as reports, bad
    ones (parse errors and invalid reports) in quarantine with their raw bytes, each error
    prefixed with ``origin`` and the line."""
    result = IngestResult(origin=origin, format="cot")
    rows: list[tuple[Any, ...]] = []
    raws: list[bytes | str | None] = []
    lines: list[int | None] = []
    bad: list[QuarantineRow] = []
    for rec in records:
        where = origin if rec.line is None else f"{origin} line {rec.line}"
        raw = rec.raw.encode("utf-8", "surrogateescape") if isinstance(rec.raw, str) else rec.raw
        if rec.fields is None:
            msg = f"{where}, {rec.error}"
            bad.append(QuarantineRow(origin, rec.line, "invalid", msg, raw))
        else:
            row, errs = validator.row(rec.fields)
            if row is not None:
                rows.append(row)
                raws.append(rec.raw)
                lines.append(rec.line)
                continue
            msg = f"{where}, " + "; ".join(errs)
            bad.append(QuarantineRow(origin, rec.line, "invalid", msg, raw,
                                     _s(rec.fields.get("source")),
                                     _s(rec.fields.get("report_id"))))
        result.note(msg)
    if rows or bad:
        result.add(store.write_batch(rows, raws, lines, origin, bad), len(bad), origin)
    return result


def _s(v: Any) -> str | None:
    return None if v is None else str(v)
