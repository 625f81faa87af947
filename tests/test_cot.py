"""CoT: TAK events map to reports; bad events are quarantined with their bytes, never expanded;
the TCP listener survives bad input and lands what it reads."""

from __future__ import annotations

import asyncio
import io
import socket
import time
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warroom.cot_listener import CotListener, ingest_records
from warroom.ingest import detect
from warroom.ingest.base import CountingReader, Record
from warroom.ingest.cot_format import (
    FORMAT,
    CotError,
    CotFormat,
    EventSplitter,
    grade_of,
    parse_event,
)
from warroom.ingest.pipeline import IngestResult, ingest_stream
from warroom.ingest.validate import Validator
from warroom.store import Store
from warroom.timeutil import parse_time

DECL = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'


def event(uid: str = "ANDROID-1", callsign: str | None = "amundsen", lat: Any = -85.4,
          lon: Any = -167.5, ce: Any = "50.0", how: str | None = "m-g",
          cot_type: str = "a-f-G-U-C", time_: str | None = "1911-11-20T12:00:00Z",
          start: str | None = "1911-11-20T12:00:00Z", decl: bool = True,
          remarks: str = "") -> bytes:
    """A CoT event as a TAK client sends it."""
    a = f'<event version="2.0" uid={quoteattr(uid)} type="{cot_type}"'
    if how is not None:
        a += f' how="{how}"'
    if time_ is not None:
        a += f' time="{time_}"'
    if start is not None:
        a += f' start="{start}"'
    a += ' stale="1911-11-20T12:05:00Z">'
    point = f'<point lat="{lat}" lon="{lon}" hae="2800.0"'
    point += f' ce="{ce}" le="9999999.0"/>' if ce is not None else ' le="9999999.0"/>'
    detail = "<detail>"
    if callsign is not None:
        detail += f"<contact callsign={quoteattr(callsign)} endpoint=\"*:-1:stcp\"/>"
    if remarks:
        detail += f"<remarks>{remarks}</remarks>"
    detail += '<__group name="Cyan" role="Team Member"/></detail>'
    return (DECL if decl else b"") + (a + point + detail + "</event>").encode()


def ingest(store: Store, validator: Validator, data: bytes,
           name: str = "feed.xml") -> IngestResult:
    return ingest_stream(store, validator, io.BytesIO(data), origin=name, filename=name)


def records(data: bytes, fmt: CotFormat = FORMAT) -> list[Record]:
    return list(fmt.records(CountingReader(io.BytesIO(data)), "test"))


# -- parsing -------------------------------------------------------------------------------------

def test_valid_event_maps_every_field() -> None:
    f = parse_event(event())
    assert f == {
        "report_id": "ANDROID-1", "source": "cot", "force": "amundsen",
        "observed_at": "1911-11-20T12:00:00Z", "lat": -85.4, "lon": -167.5,
        "uncertainty_km": 0.05, "grade": "B2", "text": "CoT a-f-G-U-C how=m-g",
        "cot_type": "a-f-G-U-C", "cot_how": "m-g",
    }
    assert "received_at" not in f


def test_valid_event_lands_with_its_fields(store: Store, validator: Validator) -> None:
    res = ingest(store, validator, event())
    assert (res.format, res.accepted, res.quarantined) == ("cot", 1, 0)
    (r,) = store.reports("amundsen")
    assert (r.source, r.report_id, r.lat, r.lon, r.uncertainty_km, r.grade) == (
        "cot", "ANDROID-1", -85.4, -167.5, 0.05, "B2")
    assert r.observed_at == r.received_at == parse_time("1911-11-20T12:00:00Z")
    assert r.extra == {"cot_type": "a-f-G-U-C", "cot_how": "m-g"}


@pytest.mark.parametrize("ce", ["9999999", "9999999.0", "0", "-5", None, ""])
def test_unknown_circular_error_gives_no_uncertainty(ce: str | None) -> None:
    f = parse_event(event(ce=ce))
    assert f is not None and "uncertainty_km" not in f


def test_bad_circular_error_is_named() -> None:
    with pytest.raises(CotError, match=r"point@ce: 'wide' is not a number"):
        parse_event(event(ce="wide"))


def test_uid_force_map_wins_over_callsign() -> None:
    fmt = CotFormat(source="tak-east", uid_forces={"ANDROID-1": "scott"})
    (rec,) = records(event(callsign="amundsen"), fmt)
    assert rec.fields is not None
    assert (rec.fields["force"], rec.fields["source"]) == ("scott", "tak-east")
    (other,) = records(event(uid="ANDROID-2", callsign="amundsen"), fmt)
    assert other.fields is not None and other.fields["force"] == "amundsen"


def test_start_stands_in_for_a_missing_time() -> None:
    f = parse_event(event(time_=None, start="1911-11-21T06:00:00Z"))
    assert f is not None and f["observed_at"] == "1911-11-21T06:00:00Z"


def test_grade_table() -> None:
    assert [grade_of(h) for h in ("m-g", "m-g-d", "h-e", "h-g-i-g-o", "m-f", "", None)] == [
        "B2", "B2", "F6", "F6", "F6", "F6", "F6"]
    f = parse_event(event(how="h-e"))
    assert f is not None and (f["grade"], f["text"]) == ("F6", "CoT a-f-G-U-C how=h-e")
    f = parse_event(event(how=None))
    assert f is not None and (f["grade"], f["text"]) == ("F6", "CoT a-f-G-U-C")
    assert "cot_how" not in f


def test_pings_are_skipped() -> None:
    data = (event(cot_type="t-x-d-d", uid="ping-1") + b"\n" + event() + b"\n"
            + event(cot_type="t-x-c-t", uid="ping-2") + b"\n"
            + event(cot_type="t-x-c-t-r", uid="pong") + b"\n")
    assert parse_event(event(cot_type="t-x-d-d")) is None
    recs = records(data)
    assert [(r.line, r.fields and r.fields["report_id"]) for r in recs] == [(2, "ANDROID-1")]


def test_back_to_back_events_with_declarations_and_whitespace(
        store: Store, validator: Validator) -> None:
    data = (b"\xef\xbb\xbf" + event(uid="a") + event(uid="b", callsign="scott", decl=False)
            + b"\r\n\r\n  \t" + DECL + b"\n" + event(uid="c", decl=False) + b"\n\n")
    assert [(r.line, r.error) for r in records(data)] == [(1, None), (1, None), (3, None)]
    res = ingest(store, validator, data)
    assert (res.accepted, res.quarantined) == (3, 0)
    assert [r.report_id for r in store.reports("amundsen")] == ["a", "c"]
    assert [r.report_id for r in store.reports("scott")] == ["b"]


def test_broken_events_are_quarantined_with_exact_bytes(
        store: Store, validator: Validator) -> None:
    bad_xml = event(uid="bad-xml").replace(b"/><detail>", b"><detail>")  # <point> never closed
    no_point = event(uid="no-point").split(b"<point")[0] + b"<detail/></event>"
    no_uid = event(uid="", time_=None, start=None)
    truncated = event(uid="cut")[:150]  # the sender died mid-event; the next event starts
    unknown = event(uid="who", callsign="shackleton")  # parses; the validator refuses it
    data = b"\n".join([event(uid="ok-1"), bad_xml, no_point, no_uid, truncated,
                       event(uid="ok-2", callsign="scott"), unknown, event(uid="ok-3")]) + b"\n"
    res = ingest(store, validator, data)
    assert (res.accepted, res.quarantined) == (3, 5)
    assert sorted(r.report_id for r in store.reports()) == ["ok-1", "ok-2", "ok-3"]
    q = {row["line"]: row for row in store.quarantined()}
    assert {n: q[n]["raw"] for n in q} == {2: bad_xml, 3: no_point, 4: no_uid, 5: truncated,
                                          7: unknown}
    assert "not well-formed XML (mismatched tag" in q[2]["error"]
    assert q[3]["error"] == "feed.xml line 3, point: missing; expected <point lat=\"...\" " \
        "lon=\"...\"/>"
    assert "uid: missing" in q[4]["error"] and "time: missing" in q[4]["error"]
    assert "incomplete event" in q[5]["error"]
    assert "force: 'shackleton' is not a force of this scenario" in q[7]["error"]
    assert q[7]["report_id"] == "who"


def test_incomplete_event_at_the_end_is_quarantined(store: Store, validator: Validator) -> None:
    tail = event(uid="cut")[:-20]
    res = ingest(store, validator, event() + b"\n" + tail + b"\n")
    assert (res.accepted, res.quarantined) == (1, 1)
    (q,) = store.quarantined()
    assert q["raw"] == tail and "ended before </event>" in q["error"]


BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE event [\n <!ENTITY lol "lol">\n'
    + b"".join(b' <!ENTITY lol%d "%s">\n' % (i, b"".join([b"&lol%d;" % (i - 1)] * 10)
                                              if i > 1 else b"&lol;" * 10) for i in range(1, 10))
    + b']>\n<event version="2.0" uid="lol" type="a-f-G" how="m-g" time="1911-11-20T12:00:00Z">'
    b'<point lat="1" lon="2" ce="10"/><detail><contact callsign="&lol9;"/>'
    b"<remarks>&lol9;</remarks></detail></event>")
EXTERNAL = (b'<?xml version="1.0"?>\n<!DOCTYPE event SYSTEM "file:///etc/passwd">\n'
            b'<event uid="xxe" type="a-f-G" time="1911-11-20T12:00:00Z"><point lat="1" lon="2"/>'
            b"<detail><contact callsign=\"amundsen\"/></detail></event>")
EXTERNAL_ENTITY = (b'<!DOCTYPE event [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                   b'<event uid="xxe2" type="a-f-G" time="1911-11-20T12:00:00Z">'
                   b'<point lat="1" lon="2"/><detail><contact callsign="amundsen"/>'
                   b"<remarks>&xxe;</remarks></detail></event>")


@pytest.mark.parametrize("attack", [BILLION_LAUGHS, EXTERNAL, EXTERNAL_ENTITY])
def test_entity_tricks_are_refused_unexpanded(attack: bytes) -> None:
    t0 = time.perf_counter()
    with pytest.raises(CotError, match="DOCTYPE; refused unexpanded"):
        parse_event(attack)
    assert time.perf_counter() - t0 < 0.5


def test_entity_tricks_are_quarantined_and_the_stream_reads_on(
        store: Store, validator: Validator) -> None:
    data = b"\n".join([event(uid="first"), BILLION_LAUGHS, event(uid="after-1"), EXTERNAL,
                       EXTERNAL_ENTITY,
                       b"<event uid='u' time='1911-11-20T12:00:00Z'><point lat='1' lon='2'/>"
                       b"<detail><remarks>&undefined;</remarks></detail></event>",
                       event(uid="after-2")])
    res = ingest(store, validator, data)
    assert (res.format, res.accepted, res.quarantined) == ("cot", 3, 4)
    assert sorted(r.report_id for r in store.reports()) == ["after-1", "after-2", "first"]
    q = list(store.quarantined())
    assert [row["raw"] for row in q[:3]] == [BILLION_LAUGHS, EXTERNAL, EXTERNAL_ENTITY]
    assert "undefined entity" in q[3]["error"]
    assert all(b"root:" not in (row["raw"] or b"") and "root:" not in row["error"] for row in q)
    assert not any("lol" in (r.text or "") for r in store.reports())


def test_detect_picks_cot_from_content() -> None:
    assert detect(event(), "reports.csv").name == "cot"
    assert detect(b"\xef\xbb\xbf\n  " + event(decl=False), None).name == "cot"
    assert detect(b"<?xml version='1.0'?>\n<event uid='x'>", "a.json").name == "cot"
    assert detect(b"report_id,source,force\n", "a.xml").name == "csv"
    assert FORMAT.sniff(b"<?xml version='1.0'?><kml>", "a.cot") == 0
    assert FORMAT.sniff(b"<eventful/>", None) == 0


def test_a_device_sends_many_positions_under_one_uid(tmp_path: Any,
                                                     validator: Validator) -> None:
    """Default: report_id is the uid, so a device's later positions are conflicts.
    ``per_event_ids``: each position is its own report; a resent event is a duplicate."""
    first = event(time_="1911-11-20T12:00:00Z")
    later = event(time_="1911-11-20T18:00:00Z", lat=-85.6)
    a = Store(tmp_path / "a.db")
    res = ingest(a, validator, first + later)
    assert (res.accepted, res.conflict) == (1, 1)
    b = Store(tmp_path / "b.db")
    fmt = CotFormat(per_event_ids=True)
    recs = records(first + later + first, fmt)
    res = ingest_records(b, validator, recs, "test")
    assert (res.accepted, res.duplicate, res.conflict) == (2, 1, 0)
    assert [r.report_id for r in b.reports()] == ["ANDROID-1@1911-11-20T12:00:00Z",
                                                  "ANDROID-1@1911-11-20T18:00:00Z"]
    assert b.reports()[0].extra["cot_uid"] == "ANDROID-1"
    a.close()
    b.close()


def test_splitter_bounds_an_event_without_end_tag() -> None:
    sp = EventSplitter(max_event=1000)
    junk = b"<event uid='x'>" + b"A" * 4000
    pieces = []
    for i in range(0, len(junk), 100):
        pieces += sp.feed(junk[i:i + 100])
        assert len(sp._buf) <= 1100
    pieces += sp.feed(b"AAA</event>\n" + event(uid="next"))
    pieces += sp.close()
    assert b"".join(p[1] for p in pieces[:-1]) == junk + b"AAA</event>"
    assert all(p[2] and "longer than 1000 bytes" in p[2] for p in pieces[:-1])
    assert pieces[-1] == (2, event(uid="next"), None)


# -- properties ----------------------------------------------------------------------------------

_XML_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")),
                    min_size=1, max_size=20).filter(lambda s: s.strip() != "")


@settings(max_examples=300, deadline=None)
@given(lat=st.floats(-90, 90), lon=st.floats(-180, 180),
       ce=st.one_of(st.floats(0, 2e7), st.just(9999999.0)), uid=_XML_TEXT, callsign=_XML_TEXT)
def test_fields_round_trip(lat: float, lon: float, ce: float, uid: str, callsign: str) -> None:
    f = parse_event(event(uid=uid, callsign=callsign, lat=repr(lat), lon=repr(lon), ce=repr(ce)))
    assert f is not None
    assert abs(f["lat"] - lat) <= 1e-9 and abs(f["lon"] - lon) <= 1e-9
    assert f["report_id"] == uid.strip() and f["force"] == callsign.strip()
    if 0 < ce < 9999999:
        assert abs(f["uncertainty_km"] - ce / 1000) <= 1e-12
    else:
        assert "uncertainty_km" not in f


_STREAM = b"\n".join([event(uid="a"), b"<event uid='broken'><point></event>",
                      event(uid="b", decl=False), event(uid="c")[:80], event(uid="d")]) + b"\n"


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(0, len(_STREAM)), max_size=12))
def test_splitting_does_not_depend_on_chunking(cuts: list[int]) -> None:
    whole = EventSplitter()
    expected = whole.feed(_STREAM) + whole.close()
    sp = EventSplitter()
    got = []
    bounds = [0, *sorted(cuts), len(_STREAM)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        got += sp.feed(_STREAM[a:b])
    got += sp.close()
    assert got == expected
    assert [(p[0], p[2] is None) for p in got] == [(1, True), (2, True), (3, True), (4, False),
                                                   (5, True)]


# -- listener ------------------------------------------------------------------------------------

async def _until(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the listener")
        await asyncio.sleep(0.01)


def _open(sock: socket.socket) -> bool:
    """True while the peer has not closed the connection (nothing to read, no EOF)."""
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True


def _stored(store: Store) -> dict[str, list[str]]:
    return {f: sorted(r.report_id for r in store.reports(f)) for f in ("amundsen", "scott")}


def test_listener_survives_a_bad_event(store: Store, validator: Validator) -> None:
    results: list[IngestResult] = []
    peers: list[str] = []

    def handle(recs: list[Record], peer: str) -> None:
        peers.append(peer)
        results.append(ingest_records(store, validator, recs, f"cot://{peer}"))

    e1 = event(uid="t1", remarks="Axel Heiberg — “glacier” Ω")  # multi-byte UTF-8 to cut into
    e2 = event(uid="t2", callsign="scott")
    e3 = event(uid="t3", decl=False)
    bad = b'<?xml version="1.0"?>\n<event uid="bad" time="1911-11-20T12:00:00Z"><point lat="1"'
    bad += b' lon="2"><detail/></event>'
    e5 = event(uid="t5", callsign="scott")
    stream = e1 + b"\n" + e2 + e3
    dash = stream.index("—".encode())
    end1 = stream.index(b"</event>")
    cuts = sorted({1, 7, dash + 1, dash + 2, end1 + 3, end1 + 8, len(e1) + 20, len(e1) + 21,
                   len(stream) - 1})
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert b"".join(pieces) == stream

    async def scenario() -> None:
        listener = CotListener("127.0.0.1", 0, handle)
        await listener.start()
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            assert listener.port != 0
            await loop.sock_connect(sock, ("127.0.0.1", listener.port))
            for piece in pieces:
                await loop.sock_sendall(sock, piece)
                await asyncio.sleep(0.005)
            await _until(lambda: store.count_reports() == 3)
            await loop.sock_sendall(sock, b"\n" + bad + b"\n")
            await _until(lambda: store.count_quarantined() == 1)
            await asyncio.sleep(0.05)
            assert _open(sock), "the server closed the connection after a bad event"
            await loop.sock_sendall(sock, e5[:30])
            await asyncio.sleep(0.02)
            await loop.sock_sendall(sock, e5[30:] + b"\n")
            await _until(lambda: store.count_reports() == 4)
            assert _open(sock)
        finally:
            sock.close()
            await listener.stop()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert _stored(store) == {"amundsen": ["t1", "t3"], "scott": ["t2", "t5"]}
    (q,) = store.quarantined()
    assert q["raw"] == bad
    assert q["origin"].startswith("cot://127.0.0.1:") and "not well-formed XML" in q["error"]
    assert len(set(peers)) == 1
    assert sum(r.accepted for r in results) == 4


def test_listener_bounds_its_buffer_and_flushes_on_stop(store: Store,
                                                        validator: Validator) -> None:
    def handle(recs: list[Record], peer: str) -> None:
        ingest_records(store, validator, recs, f"cot://{peer}")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with CotListener("127.0.0.1", 0, handle, max_event=2048) as listener:
                await loop.sock_connect(sock, ("127.0.0.1", listener.port))
                await loop.sock_sendall(sock, b"<event uid='flood'>" + b"x" * 10_000)
                await _until(lambda: store.count_quarantined() >= 1)
                await loop.sock_sendall(sock, b"</event>\n" + event(uid="ok") + b"\n")
                await _until(lambda: store.count_reports() == 1)
                assert _open(sock)
                await loop.sock_sendall(sock, event(uid="half")[:100])
                await asyncio.sleep(0.05)
            # stopped while the client is connected: the half event was handed on, then closed
            await _until(lambda: not _open(sock))
        finally:
            sock.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    q = list(store.quarantined())
    assert all("longer than 2048 bytes" in row["error"] for row in q[:-1])
    assert b"".join(row["raw"] for row in q[:-1]) == (b"<event uid='flood'>" + b"x" * 10_000
                                                      + b"</event>")
    assert q[-1]["raw"] == event(uid="half")[:100] and "incomplete" in q[-1]["error"]
    assert [r.report_id for r in store.reports()] == ["ok"]


def test_listener_with_pytak(store: Store, validator: Validator) -> None:
    import pytak  # a test dependency: a real TAK client library

    def handle(recs: list[Record], peer: str) -> None:
        ingest_records(store, validator, recs, f"cot://{peer}")

    async def scenario() -> None:
        async with CotListener("127.0.0.1", 0, handle) as listener:
            reader, writer = await pytak.protocol_factory(
                {"COT_URL": f"tcp://127.0.0.1:{listener.port}"})
            try:
                writer.write(event(uid="pytak-1") + b"\n")
                await writer.drain()
                await _until(lambda: store.count_reports() == 1)
            finally:
                writer.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert [r.report_id for r in store.reports("amundsen")] == ["pytak-1"]
