"""Live events: an in-process hub and a Server-Sent Events endpoint, ``GET /events``.

:class:`EventHub` numbers every published event (1, 2, ...; ``kind`` one of ``alert``,
``briefing``, ``report``) and keeps the last ``maxlen`` for clients that resume. Publishers may
run in any thread (the app's worker threads, the scheduler's thread, the CoT listener on the
event loop); each subscriber is an asyncio task with its own queue, fed through
``loop.call_soon_threadsafe``. A subscriber that falls more than ``max_queue`` events behind is
resynchronised from the buffer (events that already left the buffer are lost to it).

``GET /events`` streams ``text/event-stream``, each event as::

    id: 7
    event: alert
    data: {"event": "firing", "at": "...", "alert": {...}}

with a comment ``: ping`` every ``ping_s`` seconds (15 by default) while idle. A client that
reconnects with the ``Last-Event-ID`` header (or ``?last_event_id=``) first gets the buffered
events after that id. Beyond ``max_subscribers`` concurrent streams the answer is 503.

Wiring (in :func:`warroom.server.app.create_app`; ``hub`` is reachable as ``app.state.hub``)::

    from warroom.server.events import (EventHub, briefing_event, events_router, hub_sink,
                                       report_event)
    hub = EventHub()
    app.state.hub = hub
    alert_sink = hub_sink(hub)
    app.include_router(events_router(hub), dependencies=analyst)  # [] without auth
    # POST /reports, after ingest_file / ingest_telegram built its answer ``res``:
    if res["accepted"]:
        hub.publish("report", report_event(res, "http"))
    # POST /briefings (and the scheduler), after save_alerts + save_briefing:
    for t in transitions:
        alert_sink.send(t)
    hub.publish("briefing", briefing_event(b))

An open event stream never ends by itself, so uvicorn's graceful shutdown would wait for it:
give ``uvicorn.Config`` a ``timeout_graceful_shutdown`` (e.g. 5), or call :meth:`EventHub.close`
first (it ends every stream).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from warroom.assess.lifecycle import Transition
from warroom.assess.sinks import payload

KINDS = ("alert", "briefing", "report")


@dataclass(frozen=True)
class Event:
    """One published event: its id (increasing from 1), kind and JSON-serialisable data."""

    id: int
    kind: str
    data: dict[str, Any]

    def sse(self) -> str:
        """The event in the text/event-stream format (``data`` on one line)."""
        body = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"), default=str)
        return f"id: {self.id}\nevent: {self.kind}\ndata: {body}\n\n"


_WAKE = Event(0, "wake", {})


class HubFull(Exception):
    """Raised by :meth:`EventHub.subscribe` when ``max_subscribers`` streams are open (or the
    hub is closed)."""


class Subscription:
    """One subscriber's view of the hub: an async iterator of events (buffered ones after the
    requested id first, then live ones). :meth:`close` (or leaving ``async with``) ends it and
    frees its place; the iterator also ends when the hub is closed."""

    def __init__(self, hub: EventHub, loop: asyncio.AbstractEventLoop, max_queue: int) -> None:
        self._hub = hub
        self._loop = loop
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._max_queue = max_queue
        self._backlog: deque[Event] = deque()
        self._last = 0
        self._resync = False
        self.closed = False

    # -- called on the subscriber's loop (scheduled by the hub) ---------------------------------
    def _offer(self, ev: Event | None) -> None:
        if self.closed:
            return
        if ev is None:
            self._queue.put_nowait(None)
            return
        if self._queue.qsize() >= self._max_queue:  # too slow: drop the queue, replay later
            while not self._queue.empty():
                self._queue.get_nowait()
            self._resync = True
            self._queue.put_nowait(_WAKE)  # id 0: wakes the reader, which then replays
            return
        self._queue.put_nowait(ev)

    # -- consumer side ---------------------------------------------------------------------
    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event; None after ``timeout`` seconds without one. Raises
        :class:`StopAsyncIteration` once closed."""
        while True:
            if self.closed:
                raise StopAsyncIteration
            if self._resync:
                self._resync = False
                self._backlog.extend(self._hub.since(self._last))
            if self._backlog:
                ev = self._backlog.popleft()
            else:
                try:
                    item = (await self._queue.get() if timeout is None
                            else await asyncio.wait_for(self._queue.get(), timeout))
                except TimeoutError:
                    return None
                if item is None:  # the hub closed
                    self.close()
                    raise StopAsyncIteration
                ev = item
            if ev.id <= self._last:
                continue
            self._last = ev.id
            return ev

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        ev = await self.get()
        assert ev is not None
        return ev

    def close(self) -> None:
        """Stop receiving events and free this subscriber's place (idempotent)."""
        if not self.closed:
            self.closed = True
            self._hub._remove(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()


class EventHub:
    """Numbered events for live subscribers, the last ``maxlen`` kept for resuming.

    :meth:`publish` is thread safe and never blocks on subscribers. ``max_subscribers`` bounds
    the concurrent subscriptions; ``max_queue`` the events waiting for one subscriber before it
    is resynchronised from the buffer."""

    def __init__(self, maxlen: int = 10_000, max_subscribers: int = 100,
                 max_queue: int = 1000) -> None:
        self.maxlen = maxlen
        self.max_subscribers = max_subscribers
        self.max_queue = max_queue
        self._lock = threading.Lock()
        self._buffer: deque[Event] = deque(maxlen=maxlen)
        self._next = 1
        self._subs: set[Subscription] = set()
        self.closed = False

    @property
    def last_id(self) -> int:
        """The id of the latest published event (0 before any)."""
        return self._next - 1

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        with self._lock:
            return len(self._subs)

    def publish(self, kind: str, data: dict[str, Any]) -> int:
        """Publish an event to every subscriber; its id."""
        if kind not in KINDS:
            raise ValueError(f"event kind {kind!r}; expected one of {', '.join(KINDS)}")
        with self._lock:
            ev = Event(self._next, kind, data)
            self._next += 1
            self._buffer.append(ev)
            subs = list(self._subs)
        for sub in subs:
            self._deliver(sub, ev)
        return ev.id

    def since(self, last_event_id: int | None) -> list[Event]:
        """Buffered events after ``last_event_id`` (all of them for None), oldest first."""
        after = 0 if last_event_id is None else last_event_id
        with self._lock:
            return [e for e in self._buffer if e.id > after]

    def subscribe(self, last_event_id: int | None = None) -> Subscription:
        """A subscription of the running event loop: the buffered events after
        ``last_event_id`` (none for None: only new events), then every event published from
        now on, without gap or repeat. An id ahead of the hub's (a hub restarted since) counts
        as None. Raises :class:`HubFull` beyond ``max_subscribers`` or once closed."""
        loop = asyncio.get_running_loop()
        sub = Subscription(self, loop, self.max_queue)
        with self._lock:
            if self.closed:
                raise HubFull("the event hub is closed")
            if len(self._subs) >= self.max_subscribers:
                raise HubFull(f"{len(self._subs)} event streams are open, the most allowed")
            last = self._next - 1
            if last_event_id is not None and 0 <= last_event_id <= last:
                sub._backlog.extend(e for e in self._buffer if e.id > last_event_id)
                sub._last = last_event_id
            else:
                sub._last = last
            self._subs.add(sub)
        return sub

    def close(self) -> None:
        """End every subscription and refuse new ones (publishing still buffers)."""
        with self._lock:
            self.closed = True
            subs = list(self._subs)
        for sub in subs:
            self._deliver(sub, None)

    def _deliver(self, sub: Subscription, ev: Event | None) -> None:
        try:
            sub._loop.call_soon_threadsafe(sub._offer, ev)
        except RuntimeError:  # its loop is closed: the subscriber is gone
            sub.close()

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)


# -- event payloads ------------------------------------------------------------------------------
def briefing_event(b: dict[str, Any]) -> dict[str, Any]:
    """The data of a ``briefing`` event: slot, as_of, lateness and headline of a briefing (the
    full briefing is at ``GET /briefings/{slot}.json``)."""
    return {k: b.get(k) for k in ("slot", "as_of", "late", "headline", "scenario")}


def report_event(counts: dict[str, Any], origin: str | None = None, **extra: Any
                 ) -> dict[str, Any]:
    """The data of a ``report`` event: the ingest counts (as ``POST /reports`` answers them,
    ``errors`` left out), the origin and anything in ``extra``."""
    d = {k: counts[k] for k in ("accepted", "duplicate", "conflict", "quarantined", "format")
         if k in counts}
    if origin is not None:
        d["origin"] = origin
    d.update(extra)
    return d


class HubSink:
    """An alert sink (as in :mod:`warroom.assess.sinks`) publishing each transition as an
    ``alert`` event with :func:`~warroom.assess.sinks.payload`. Suppressed alerts are not
    published unless ``include_suppressed``."""

    def __init__(self, hub: EventHub, include_suppressed: bool = False) -> None:
        self.hub = hub
        self.include_suppressed = include_suppressed

    def send(self, t: Transition) -> None:
        """Publish one transition."""
        if t.alert.suppressed and not self.include_suppressed:
            return
        self.hub.publish("alert", payload(t))

    def close(self) -> None:
        """Nothing to flush."""


def hub_sink(hub: EventHub, include_suppressed: bool = False) -> HubSink:
    """An alert sink publishing to ``hub``."""
    return HubSink(hub, include_suppressed)


# -- the endpoint --------------------------------------------------------------------------------
def _parse_id(text: str | None) -> int | None:
    if text is None or not text.strip():
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise HTTPException(422, f"Last-Event-ID: {text!r} is not an event id; expected an "
                                 "integer") from None


def events_router(hub: EventHub, ping_s: float = 15.0, retry_ms: int = 3000) -> APIRouter:
    """A router with ``GET /events``, the Server-Sent Events stream of ``hub``."""
    router = APIRouter()

    @router.get("/events", summary="Live events (Server-Sent Events)",
                response_class=StreamingResponse,
                responses={200: {"content": {"text/event-stream": {}}},
                           503: {"description": "too many event streams open"}})
    async def get_events(
        request: Request,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
        resume: Annotated[str | None, Query(alias="last_event_id",
                                            description="as the Last-Event-ID header")] = None,
    ) -> StreamingResponse:
        """``alert``, ``briefing`` and ``report`` events as they happen; with
        ``Last-Event-ID`` the buffered events after it first."""
        after = _parse_id(last_event_id if last_event_id is not None else resume)
        try:
            sub = hub.subscribe(after)
        except HubFull as e:
            raise HTTPException(503, str(e), headers={"Retry-After": "5"}) from None

        async def stream() -> AsyncIterator[str]:
            try:
                yield f"retry: {retry_ms}\n\n"
                while True:
                    try:
                        ev = await sub.get(ping_s)
                    except StopAsyncIteration:
                        return
                    if ev is None:
                        if await request.is_disconnected():
                            return
                        yield ": ping\n\n"
                    else:
                        yield ev.sse()
            finally:
                sub.close()

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    return router


__all__ = ["Event", "EventHub", "HubFull", "HubSink", "Subscription", "briefing_event",
           "events_router", "hub_sink", "report_event"]
