"""Live events: the hub, the SSE endpoint over a real uvicorn, the briefing scheduler and the CoT
bridge."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from warroom.assess.lifecycle import Alert, Transition
from warroom.assess.sinks import payload
from warroom.server.app import create_app
from warroom.server.cot_bridge import start_cot
from warroom.server.events import Event, EventHub, HubFull, events_router, hub_sink
from warroom.server.scheduler import BriefingScheduler
from warroom.timeutil import parse_time
from warroom.workspace import Workspace, open_workspace

from .serving import running
from .test_cot import event as cot_event

POLE = Path(__file__).parent / "data" / "pole"
H = 3600


def _transition(key: str = "eta_earlier:amundsen:pole", to: str = "firing",
                suppressed: bool = False) -> Transition:
    at = parse_time("1911-12-14T12:00:00Z")
    alert = Alert(id=key, rule="eta_earlier", force="amundsen", target="pole", state=to,
                  since=at - H, message="Amundsen reaches the Pole earlier", value=1.5,
                  reports=["r1"], fired_at=at, suppressed=suppressed)
    return Transition(at, alert, to)


# -- the hub -------------------------------------------------------------------------------------

def test_ids_increase_and_kinds_are_checked() -> None:
    hub = EventHub()
    assert hub.last_id == 0
    assert [hub.publish("report", {"n": i}) for i in range(3)] == [1, 2, 3]
    assert hub.last_id == 3
    with pytest.raises(ValueError, match="kind"):
        hub.publish("gossip", {})


def test_resume_replays_only_newer_events_then_live_ones() -> None:
    hub = EventHub()
    for i in range(5):
        hub.publish("report", {"n": i})

    async def scenario() -> list[Event]:
        got: list[Event] = []
        async with hub.subscribe(3) as sub:
            got.append(await sub.__anext__())
            got.append(await sub.__anext__())
            threading.Thread(target=hub.publish, args=("briefing", {"n": 5})).start()
            got.append(await asyncio.wait_for(sub.__anext__(), 5))
            assert await sub.get(0.05) is None  # nothing more: a timeout, no repeat
        return got

    got = asyncio.run(scenario())
    assert [(e.id, e.kind) for e in got] == [(4, "report"), (5, "report"), (6, "briefing")]
    assert hub.subscriber_count == 0


def test_new_subscriber_gets_only_new_events_and_stale_ids_count_as_new() -> None:
    hub = EventHub()
    hub.publish("report", {})

    async def scenario() -> tuple[int, int]:
        fresh = hub.subscribe(None)
        ahead = hub.subscribe(999)  # an id from before a restart of the hub
        hub.publish("alert", {})
        a, b = await fresh.get(1), await ahead.get(1)
        assert a is not None and b is not None
        return a.id, b.id

    assert asyncio.run(scenario()) == (2, 2)


def test_buffer_overflow_drops_the_oldest() -> None:
    hub = EventHub(maxlen=3)
    for i in range(5):
        hub.publish("report", {"n": i})
    assert [e.id for e in hub.since(None)] == [3, 4, 5]
    assert [e.id for e in hub.since(1)] == [3, 4, 5]  # 2 is gone: the rest still comes

    async def scenario() -> list[int]:
        async with hub.subscribe(0) as sub:
            return [(await sub.__anext__()).id for _ in range(3)]

    assert asyncio.run(scenario()) == [3, 4, 5]


def test_a_slow_subscriber_is_resynchronised_from_the_buffer() -> None:
    hub = EventHub(maxlen=100, max_queue=2)

    async def scenario() -> list[int]:
        async with hub.subscribe() as sub:
            for i in range(10):
                hub.publish("report", {"n": i})
            await asyncio.sleep(0.05)  # let the deliveries run: the queue overflows
            return [(await asyncio.wait_for(sub.__anext__(), 2)).id for _ in range(10)]

    assert asyncio.run(scenario()) == list(range(1, 11))


def test_max_subscribers_and_close() -> None:
    hub = EventHub(max_subscribers=2)

    async def scenario() -> None:
        a = hub.subscribe()
        b = hub.subscribe()
        with pytest.raises(HubFull):
            hub.subscribe()
        a.close()
        c = hub.subscribe()  # a's place is free again
        hub.close()
        for sub in (b, c):
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(sub.__anext__(), 2)
        with pytest.raises(HubFull):
            hub.subscribe()

    asyncio.run(scenario())
    assert hub.subscriber_count == 0


def test_hub_sink_publishes_payloads_and_skips_suppressed() -> None:
    hub = EventHub()
    sink = hub_sink(hub)
    t = _transition()
    sink.send(t)
    sink.send(_transition("eta_earlier:scott:pole", suppressed=True))
    sink.close()
    (e,) = hub.since(None)
    assert (e.kind, e.data) == ("alert", payload(t))


# -- SSE over a real server -----------------------------------------------------------------------

@dataclass
class Live:
    url: str
    ws: Workspace
    hub: EventHub


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("events")
    ws = open_workspace(str(tmp / "w.db"), str(POLE), create=True)
    hub = EventHub(max_subscribers=2)
    app = create_app(ws, samples=100, event_hub=hub, ping_s=0.5, assess_after_ingest=False)
    with running(app, before_stop=hub.close) as url:
        yield Live(url, ws, hub)
    ws.store.close()


def _sse(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Events of an SSE line stream as dicts of their fields (comments as ``{"comment": ..}``)."""
    ev: dict[str, str] = {}
    for line in lines:
        if line == "":
            if ev:
                yield ev
            ev = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            ev[name] = value.removeprefix(" ")


def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _read(events: Iterator[dict[str, str]], n: int) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for ev in events:
        if "event" in ev:
            out.append(ev)
            if len(out) == n:
                break
    return out


def test_sse_delivers_live_events_in_order_and_resumes(live: Live) -> None:
    hub = live.hub
    base = hub.last_id
    t = _transition()
    with httpx.Client(base_url=live.url, timeout=httpx.Timeout(10.0)) as client:
        with client.stream("GET", "/events") as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            _until(lambda: hub.subscriber_count == 1)

            def ingest_like() -> None:  # what POST /reports and POST /briefings will do
                hub.publish("report", {"accepted": 1, "origin": "test"})
                hub_sink(hub).send(t)
                hub.publish("briefing", {"slot": "1911-12-14T12:00:00Z"})

            threading.Thread(target=ingest_like).start()
            events = _sse(r.iter_lines())
            got = _read(events, 3)
            assert [(e["id"], e["event"]) for e in got] == [
                (str(base + 1), "report"), (str(base + 2), "alert"), (str(base + 3), "briefing")]
            assert json.loads(got[1]["data"]) == payload(t)
            assert json.loads(got[0]["data"]) == {"accepted": 1, "origin": "test"}
            # idle: heartbeats
            assert next(e for e in events if "comment" in e or "event" in e) == {
                "comment": "ping"}
        _until(lambda: hub.subscriber_count == 0)
        # missed while disconnected
        hub.publish("report", {"n": 4})
        hub.publish("report", {"n": 5})
        with client.stream("GET", "/events",
                           headers={"Last-Event-ID": str(base + 3)}) as r:
            got = _read(_sse(r.iter_lines()), 2)
        assert [(e["id"], json.loads(e["data"])) for e in got] == [
            (str(base + 4), {"n": 4}), (str(base + 5), {"n": 5})]
        # the rest of the API still answers
        assert client.get("/healthz").json()["ok"] is True
    _until(lambda: hub.subscriber_count == 0)


def test_sse_refuses_beyond_max_subscribers(live: Live) -> None:
    with httpx.Client(base_url=live.url, timeout=httpx.Timeout(10.0)) as client:
        with client.stream("GET", "/events") as a, client.stream("GET", "/events") as b:
            assert a.status_code == b.status_code == 200
            _until(lambda: live.hub.subscriber_count == 2)
            r = client.get("/events")
            assert r.status_code == 503
            assert r.headers["retry-after"] == "5"
        assert client.get("/events", headers={"Last-Event-ID": "x"}).status_code == 422
    _until(lambda: live.hub.subscriber_count == 0)


# -- the scheduler ------------------------------------------------------------------------------

class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_scheduler_makes_every_missed_slot_in_order_after_downtime() -> None:
    day = parse_time("1911-12-14T00:00:00Z")
    stored: list[tuple[int, bool]] = [(day, False)]
    clock = FakeClock(day + 60)

    def make(slot: int, late: bool) -> dict[str, Any]:
        stored.append((slot, late))
        return {"slot": slot, "late": late}

    sched = BriefingScheduler(make, lambda: max(s for s, _ in stored), every_h=6, clock=clock)
    assert sched.run_due() == []  # the 00:00 briefing exists
    clock.t = day + 20 * H + 120  # down for 20 h: 06, 12 and 18 missed (and late)
    assert sched.run_due() == [(day + 6 * H, True), (day + 12 * H, True), (day + 18 * H, True)]
    clock.t = day + 24 * H + 60  # the next one, on time
    assert sched.run_due() == [(day + 24 * H, False)]
    assert sched.run_due() == []  # nothing twice
    assert [s for s, _ in stored] == [day + k * 6 * H for k in range(5)]


def test_scheduler_never_repeats_even_if_nothing_is_stored_and_retries_failures() -> None:
    day = parse_time("1911-12-14T00:00:00Z")
    clock = FakeClock(day + 13 * H)
    made: list[int] = []
    fail = {day + 12 * H}

    def make(slot: int, late: bool) -> dict[str, Any]:
        if slot in fail:
            fail.discard(slot)
            raise RuntimeError("boom")
        made.append(slot)
        return {}

    sched = BriefingScheduler(make, lambda: day, every_h=6, clock=clock)
    with pytest.raises(RuntimeError):
        sched.run_due()
    assert made == [day + 6 * H]
    assert sched.run_due() == [(day + 12 * H, True)]  # the failed slot, retried
    assert sched.run_due() == []


def test_scheduler_run_forever_polls_in_a_thread_and_stops() -> None:
    day = parse_time("1911-12-14T00:00:00Z")
    clock = FakeClock(day + 7 * H)
    threads: list[str] = []

    def make(slot: int, late: bool) -> dict[str, Any]:
        threads.append(threading.current_thread().name)
        return {}

    sched = BriefingScheduler(make, lambda: day, clock=clock)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sched.run_forever(stop, poll_s=0.02))
        await asyncio.sleep(0.1)
        clock.t = day + 12 * H
        await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(task, 2)

    asyncio.run(scenario())
    assert len(threads) == 2
    assert threading.main_thread().name not in threads


# -- the CoT bridge ------------------------------------------------------------------------------

def test_cot_bridge_stores_reports_and_publishes(tmp_path: Path) -> None:
    ws = open_workspace(str(tmp_path / "w.db"), str(POLE), create=True)
    hub = EventHub()
    lock = threading.RLock()
    before = ws.store.count_reports()

    async def scenario() -> list[Event]:
        listener = await start_cot(ws, "127.0.0.1", 0, hub=hub, lock=lock)
        try:
            assert listener.port != 0
            async with hub.subscribe() as sub:
                loop = asyncio.get_running_loop()
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, ("127.0.0.1", listener.port))
                    await loop.sock_sendall(sock, cot_event(uid="bridge-1") + b"\n")
                    first = await asyncio.wait_for(sub.__anext__(), 5)
                    # a bad event is quarantined and announces nothing; the next one does
                    await loop.sock_sendall(sock, b"<event uid='bad'><point></event>\n")
                    await loop.sock_sendall(sock, cot_event(uid="bridge-2", callsign="scott"))
                    second = await asyncio.wait_for(sub.__anext__(), 5)
                finally:
                    sock.close()
                return [first, second]
        finally:
            await listener.stop()

    events = asyncio.run(asyncio.wait_for(scenario(), 15))
    with lock:
        assert ws.store.count_reports() == before + 2
        (r,) = [r for r in ws.store.reports("amundsen") if r.report_id == "bridge-1"]
        assert ws.store.count_quarantined() == 1
    assert r.source == "cot" and r.received_at > r.observed_at  # stamped on arrival
    assert [e.kind for e in events] == ["report", "report"]
    assert events[0].data["accepted"] == 1 and events[0].data["forces"] == ["amundsen"]
    assert events[0].data["origin"].startswith("cot://127.0.0.1:")
    assert events[1].data["forces"] == ["scott"]
    ws.store.close()


def test_events_router_takes_route_dependencies() -> None:
    """The app's auth dependencies apply with ``include_router(..., dependencies=...)``."""
    from fastapi import Depends, FastAPI, Header, HTTPException

    def need_token(authorization: str | None = Header(None)) -> None:
        if authorization != "Bearer ok":
            raise HTTPException(401, "token needed")

    app = FastAPI()
    app.include_router(events_router(EventHub()), dependencies=[Depends(need_token)])

    async def get() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.get("/events")).status_code

    assert asyncio.run(get()) == 401


def test_sse_client_gets_the_alert_an_ingest_fires(tmp_path) -> None:
    """A client connected to /events before a report is posted receives the `arrived` alert
    the report fires (the rules run on the new situation after the ingest)."""
    import json as _json
    import threading as _threading
    import time as _time

    import httpx

    from warroom.server.app import create_app
    from warroom.workspace import open_workspace

    ws = open_workspace(str(tmp_path / "sse.db"), "tests/data/pole", create=True)
    app = create_app(ws, samples=100)
    got: list[tuple[str, dict]] = []
    with running(app, timeout_graceful_shutdown=1, before_stop=app.state.hub.close) as base:

        def listen() -> None:
            with httpx.stream("GET", f"{base}/events", timeout=30) as r:
                kind = None
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: ") and kind:
                        got.append((kind, _json.loads(line[6:])))
                        if kind == "alert" and got[-1][1]["alert"]["rule"] == "arrived":
                            return

        listener = _threading.Thread(target=listen, daemon=True)
        listener.start()
        _time.sleep(0.5)  # connected before the ingest
        body = ("report_id,source,force,observed_at,place,event,target,grade\n"
                "p1,fram,amundsen,1911-12-14T15:00:00Z,Polheim,reached,pole,A1\n")
        r = httpx.post(f"{base}/reports", content=body, timeout=30)
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.json()
        listener.join(timeout=30)
    kinds = [k for k, _ in got]
    assert "report" in kinds
    arrived = [d for k, d in got if k == "alert" and d["alert"]["rule"] == "arrived"]
    assert arrived and "reached South Pole" in arrived[0]["alert"]["message"]
    assert kinds.index("report") < kinds.index("alert")
