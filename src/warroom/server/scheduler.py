"""The briefing scheduler: briefings on the fixed grid of :func:`warroom.brief.due_slots`.

:class:`BriefingScheduler` asks which slots are due after the last stored briefing and makes
each in order with ``make_briefing(slot, late)``; after downtime every missed slot is made,
marked late, never skipped. It is pure logic over two callables and a clock (tests pass a fake
clock); :meth:`BriefingScheduler.run_forever` is the asyncio task that polls it, running the
work in a thread (``asyncio.to_thread``) so the event loop never waits for a briefing.

Wiring (in :func:`warroom.server.app.create_app`, where ``briefing_chain``, ``lock``,
``brief_lock`` and ``store`` are in scope; ``briefing_chain`` needs a ``late`` argument passed
on to ``build_briefing(..., slot, late)``)::

    from warroom.server.scheduler import BriefingScheduler

    def make_briefing(slot: int, late: bool) -> dict[str, Any]:
        with brief_lock:
            b, alerts, transitions = briefing_chain(slot, late)   # as of the slot
            with lock:
                store.save_alerts([a.as_dict() for a in alerts.values()],
                                  [(t.alert.id, t.to, t.at, payload(t)) for t in transitions])
                store.save_briefing(slot, slot, late, b)
        for t in transitions:
            alert_sink.send(t)                       # see warroom.server.events
        hub.publish("briefing", briefing_event(b))
        return b

    def last_slot() -> int | None:
        with lock:
            return store.last_briefing_slot()

    app.state.scheduler = BriefingScheduler(make_briefing, last_slot, every_h=6)

and in the app's lifespan (``FastAPI(lifespan=...)``)::

    stop = asyncio.Event()
    task = asyncio.create_task(app.state.scheduler.run_forever(stop))
    yield
    stop.set()
    await task
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from warroom.brief import due_slots

log = logging.getLogger(__name__)

MakeBriefing = Callable[[int, bool], dict[str, Any]]
"""``make_briefing(slot, late)``: build, store (and publish) the briefing of ``slot``."""


class BriefingScheduler:
    """Makes the due briefings: every ``every_h`` hours from ``offset_h`` past 00:00 UTC; a
    briefing made more than ``grace_s`` after its slot is late. Without any stored briefing
    only the latest slot is due (or every slot from ``first`` on, if given).

    ``last_slot()`` is the slot of the latest stored briefing (None for none); the scheduler
    also remembers the last slot it made itself, so a slot is never made twice even if
    ``make_briefing`` does not store it."""

    def __init__(self, make_briefing: MakeBriefing, last_slot: Callable[[], int | None],
                 every_h: float = 6.0, offset_h: float = 0.0,
                 clock: Callable[[], float] = time.time, *, grace_s: int = 900,
                 first: int | None = None) -> None:
        if every_h <= 0:
            raise ValueError(f"every_h: {every_h}; expected a positive number of hours")
        self.make_briefing = make_briefing
        self.last_slot = last_slot
        self.every_h = every_h
        self.offset_h = offset_h
        self.clock = clock
        self.grace_s = grace_s
        self.first = first
        self.made: int | None = None
        self._lock = threading.Lock()

    def due(self) -> list[tuple[int, bool]]:
        """The slots due now, each with whether it is late (nothing is made)."""
        stored = self.last_slot()
        last = max((s for s in (stored, self.made) if s is not None), default=None)
        return due_slots(last, int(self.clock()), self.every_h, self.offset_h, self.grace_s,
                         self.first)

    def run_due(self) -> list[tuple[int, bool]]:
        """Make every due briefing in slot order; the ``(slot, late)`` made. An exception from
        ``make_briefing`` propagates after the slots before it were made (the failed slot is
        due again next time). Runs one at a time (thread safe)."""
        done: list[tuple[int, bool]] = []
        with self._lock:
            for slot, late in self.due():
                self.make_briefing(slot, late)
                self.made = slot if self.made is None else max(self.made, slot)
                done.append((slot, late))
        return done

    async def run_forever(self, stop_event: asyncio.Event, poll_s: float = 30.0) -> None:
        """Run :meth:`run_due` in a thread every ``poll_s`` seconds until ``stop_event`` is
        set (a briefing being made then is finished first). A failure is logged and retried
        at the next poll."""
        while not stop_event.is_set():
            try:
                made = await asyncio.to_thread(self.run_due)
            except Exception:
                log.exception("scheduled briefing failed; retrying in %.0f s", poll_s)
            else:
                for slot, late in made:
                    log.info("briefing made for slot %d%s", slot, " (late)" if late else "")
            try:
                await asyncio.wait_for(stop_event.wait(), poll_s)
            except TimeoutError:
                pass


__all__ = ["BriefingScheduler", "MakeBriefing"]
