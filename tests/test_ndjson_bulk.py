"""NDJSON read in blocks and validated by column lands exactly what line-by-line reading lands:
the same reports, the same quarantine (lines, raw bytes, wording) and the same counts, for any
mix of plain rows, odd values, bad lines and blank lines; with and without the server's stamp
of the arrival time."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warroom.domain import Scenario
from warroom.ingest import ndjson_format
from warroom.ingest.ndjson_format import NdjsonFormat
from warroom.ingest.pipeline import ingest_stream
from warroom.ingest.validate import Validator
from warroom.server.data import ArrivalValidator
from warroom.store import Store
from warroom.timeutil import parse_time

ARRIVAL = parse_time("1911-12-20T00:00:00Z")


class LineByLine(NdjsonFormat):
    """The same format without its bulk reader: every line a record (the reference)."""

    batches = None  # type: ignore[assignment]


def _plain(i: int) -> dict[str, Any]:
    return {"report_id": f"p{i}", "source": "fram", "force": "amundsen",
            "observed_at": f"1911-12-{1 + i % 19:02d}T12:00:00Z", "lat": -85.0 - (i % 7) / 10,
            "lon": 160.0 + i % 5, "grade": "B2"}


_odd = st.sampled_from([
    {"lat": 52}, {"lat": "-85.5"}, {"lat": 95.0}, {"lat": float("nan")}, {"lat": True},
    {"lon": None}, {"report_id": 17}, {"force": "nobody"}, {"place": ""}, {"place": "Framheim"},
    {"received_at": "1911-12-21T00:00:00Z"}, {"received_at": ""}, {"received_at": "  "},
    {"observed_at": "1911-12-25T00:00:00Z"}, {"observed_at": "1911-12-01T12:00:00+01:00"},
    {"observed_at": "12 April"}, {"uncertainty_km": 2}, {"extra_note": "kept"},
    {"extra_n": 5}, {"grade": "Z9"}, {"text": "Polheim \u00e9"},
])
_line = st.one_of(
    st.integers(0, 40).map(lambda i: _plain(i)),
    st.tuples(st.integers(0, 40), _odd).map(lambda t: {**_plain(t[0]), **t[1]}),
    st.sampled_from(["", "   ", "{not json", "[1, 2]", "17", '{"a": 1}, {"b": 2}', "again",
                     '\x1e' + json.dumps(_plain(3)),
                     json.dumps({"type": "Feature", "id": "f1", "properties": {
                         "force": "scott", "source": "fram", "observed_at":
                         "1911-12-02T00:00:00Z"}, "geometry": {"type": "Point",
                                                               "coordinates": [161.0, -85.0]}})]),
)


def _texts(items: list[Any]) -> list[str]:
    """The lines: each report object gets a key of its own (which of two rows with one key
    and different content is kept depends on where batches end, which is no contract), but
    "again" repeats the line before it verbatim (a duplicate, whatever the batches)."""
    out: list[str] = []
    for n, item in enumerate(items):
        if item == "again":
            out.append(out[-1] if out else "")
        elif isinstance(item, dict):
            rid = item["report_id"]
            out.append(json.dumps({**item, "report_id": f"{rid}-{n}" if isinstance(rid, str)
                                   else rid + 1000 * n}))
        else:
            out.append(item)
    return out


def _facts(s: Store) -> tuple[Any, ...]:
    return (sorted(s.conn.execute("SELECT source, report_id, force, observed_at, received_at, "
                                  "lat, lon, place, uncertainty_km, grade, event, text, extra, "
                                  "origin FROM reports")),
            sorted(s.conn.execute("SELECT origin, line, kind, error, raw, source, report_id "
                                  "FROM quarantine")))


def _ingest(tmp: Path, name: str, validator: Validator, data: bytes, fmt: Any,
            batch_size: int) -> tuple[Any, ...]:
    s = Store(tmp / f"{name}.db")
    import warroom.ingest.pipeline as pipeline
    detect = pipeline.detect
    pipeline.detect = lambda head, filename=None: fmt  # type: ignore[assignment]
    try:
        r = ingest_stream(s, validator, io.BytesIO(data), origin="feed.ndjson",
                          batch_size=batch_size)
    finally:
        pipeline.detect = detect  # type: ignore[assignment]
    out = (r.as_dict(), _facts(s))
    s.close()
    return out


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_line, max_size=40), bom=st.booleans(), final_newline=st.booleans(),
       arrival=st.booleans(), batch_size=st.sampled_from([3, 20_000]),
       block=st.sampled_from([64, 1 << 20]))
def test_bulk_ndjson_lands_what_line_by_line_lands(
        tmp_path_factory: pytest.TempPathFactory, pole: Scenario, lines: list[Any], bom: bool,
        final_newline: bool, arrival: bool, batch_size: int, block: int) -> None:
    text = "\n".join(_texts(lines)) + ("\n" if final_newline and lines else "")
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    tmp = tmp_path_factory.mktemp("nd")
    v: Validator = ArrivalValidator(pole) if arrival else Validator(pole)
    if arrival:
        v.arrival = ARRIVAL  # type: ignore[attr-defined]
    old_block = ndjson_format.BLOCK
    ndjson_format.BLOCK = block  # small blocks: lines split across block reads
    try:
        got = _ingest(tmp, "bulk", v, data, NdjsonFormat(), batch_size)
    finally:
        ndjson_format.BLOCK = old_block
    want = _ingest(tmp, "lines", v, data, LineByLine(), batch_size)
    assert got == want


def test_bulk_ndjson_takes_the_column_path(pole: Scenario) -> None:
    """Plain rows come as batches by column (the fast path is the one taken), with their own
    line numbers and raw bytes."""
    body = "".join(json.dumps(_plain(i)) + "\n" for i in range(5)) + "\n{bad\n" + \
        json.dumps(_plain(9)) + "\n"
    from warroom.ingest.base import Batch, CountingReader, Record
    items = list(NdjsonFormat().batches(CountingReader(io.BytesIO(body.encode())), "x", 100))
    # the block cannot be parsed at once (a bad line): line by line, plain runs still batched
    assert [type(i) for i in items] == [Batch, Record, Batch]
    assert items[1].line == 7 and items[1].fields is None
    assert list(items[2].lines) == [8]
    plain = "".join(json.dumps(_plain(i)) + "\n" for i in range(5)).encode()
    items = list(NdjsonFormat().batches(CountingReader(io.BytesIO(plain)), "x", 100))
    assert len(items) == 1 and isinstance(items[0], Batch)
    b = items[0]
    assert list(b.lines) == [1, 2, 3, 4, 5]
    assert b.raws[2] == (json.dumps(_plain(2)) + "\n").encode()
    assert b.columns[b.names.index("lat")][3] == repr(_plain(3)["lat"])
