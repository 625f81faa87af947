"""Ingest: every format lands the same reports; bad input is named, quarantined, never lost."""

from __future__ import annotations

import io
import json
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from warroom.ingest import detect
from warroom.ingest.pipeline import ingest_stream
from warroom.store import Store

HEADER = "report_id,source,force,observed_at,received_at,lat,lon,place,grade,event,target,text\n"
GOOD = [
    "r1,fram,amundsen,1911-11-20T12:00:00Z,1911-11-21T00:00:00Z,-85.4,-167.5,,B2,position,,",
    "r2,fram,amundsen,1911-12-14T15:00:00Z,1911-12-15T00:00:00Z,,,Polheim,A1,reached,pole,"
    "\"Arrived, flag planted\"",
    "r3,terra-nova,scott,1911-12-10T12:00:00+01:00,,-83.5,170.0,,C3,crossed,mountains,",
]


def ingest_bytes(store: Store, validator: Any, data: bytes, name: str = "in.csv"):
    return ingest_stream(store, validator, io.BytesIO(data), origin=name, filename=name)


def rows(store: Store) -> set[tuple]:
    return set(store.conn.execute(
        "SELECT source, report_id, force, observed_at, received_at, lat, lon, place, "
        "uncertainty_km, grade, event, target, text, sources, extra FROM reports"))


def test_csv_lands_and_resolves_places(store: Store, validator: Any) -> None:
    res = ingest_bytes(store, validator, (HEADER + "\n".join(GOOD) + "\n").encode())
    assert (res.accepted, res.duplicate, res.conflict, res.quarantined) == (3, 0, 0, 0)
    r2 = next(r for r in store.reports("amundsen") if r.report_id == "r2")
    assert (r2.lat, r2.lon) == (-90.0, 0.0)  # Polheim is an alternate name of the South Pole
    assert r2.text == "Arrived, flag planted"
    r3 = store.reports("scott")[0]
    assert r3.observed_at == r3.received_at  # received_at defaults to observed_at
    assert r3.observed_at == datetime(1911, 12, 10, 11, tzinfo=UTC).timestamp()


def test_same_reports_in_every_format_store_identically(tmp_path: Path, validator: Any) -> None:
    csv_data = (HEADER + "\n".join(GOOD) + "\n").encode()
    a = Store(tmp_path / "a.db")
    ingest_bytes(a, validator, csv_data)
    recs = [dict(zip(HEADER.strip().split(","), line_values(line), strict=True)) for line in GOOD]
    recs = [{k: v for k, v in r.items() if v != ""} for r in recs]
    nd = "\n".join(json.dumps(r) for r in recs).encode()
    feats = []
    for r in recs:
        props = {k: v for k, v in r.items() if k not in ("lat", "lon")}
        geom = ({"type": "Point", "coordinates": [float(r["lon"]), float(r["lat"])]}
                if "lat" in r else None)
        feats.append({"type": "Feature", "properties": props, "geometry": geom})
    gj = json.dumps({"type": "FeatureCollection", "features": feats}, indent=1).encode()
    b, c = Store(tmp_path / "b.db"), Store(tmp_path / "c.db")
    assert ingest_bytes(b, validator, nd, "x.txt").format == "ndjson"
    assert ingest_bytes(c, validator, gj, "y.txt").format == "geojson"
    assert rows(a) == rows(b) == rows(c)
    assert len(rows(a)) == 3


def line_values(line: str) -> list[str]:
    import csv

    return next(csv.reader([line]))


def test_detection_uses_content_not_extension() -> None:
    assert detect(b'{"report_id": "1"}\n', "data.csv").name == "ndjson"
    assert detect(b'{\n "type": "FeatureCollection",\n "features": []}', "a.csv").name == "geojson"
    assert detect(b"report_id,source,force\n", "a.json").name == "csv"


def test_same_file_twice_is_all_duplicate(store: Store, validator: Any) -> None:
    data = (HEADER + "\n".join(GOOD) + "\n").encode()
    ingest_bytes(store, validator, data)
    before = rows(store)
    res = ingest_bytes(store, validator, data)
    assert (res.accepted, res.duplicate, res.conflict, res.quarantined) == (0, 3, 0, 0)
    assert rows(store) == before


def test_conflict_is_quarantined_and_original_kept(store: Store, validator: Any) -> None:
    ingest_bytes(store, validator, (HEADER + GOOD[0] + "\n").encode())
    changed = GOOD[0].replace("-85.4", "-85.9")
    res = ingest_bytes(store, validator, (HEADER + changed + "\n").encode(), "late.csv")
    assert (res.accepted, res.conflict) == (0, 1)
    assert store.reports("amundsen")[0].lat == -85.4
    (q,) = store.quarantined()
    assert q["kind"] == "conflict" and q["origin"] == "late.csv" and q["line"] == 2
    assert b"-85.9" in q["raw"] and "conflicts with the stored report" in q["error"]


def test_duplicate_ids_inside_one_file(store: Store, validator: Any) -> None:
    changed = GOOD[0].replace("-85.4", "-85.9")
    data = (HEADER + GOOD[0] + "\n" + GOOD[0] + "\n" + changed + "\n").encode()
    res = ingest_bytes(store, validator, data)
    # one version lands (the same one whatever the row order: earliest received, then
    # smallest content digest); rows equal to it are duplicates, the others conflicts in quarantine
    assert res.accepted == 1 and res.duplicate + res.conflict == 2 and res.conflict >= 1
    assert len(list(store.quarantined())) == res.conflict
    kept = store.reports("amundsen")[0]
    other = Store(":memory:")
    flipped = ingest_bytes(other, validator, (HEADER + changed + "\n" + GOOD[0] + "\n"
                                              + GOOD[0] + "\n").encode())
    assert flipped.accepted == 1 and flipped.conflict == res.conflict
    assert other.reports("amundsen")[0] == kept


BAD_CASES = [
    ("missing column", "report_id,source,observed_at,lat,lon\nr1,x,1911-11-20T12:00:00Z,1,2\n",
     "header: missing required column(s) force"),
    ("unparseable time", HEADER + "r9,fram,amundsen,12 April,,-85,-167,,B2,,,\n",
     "line 2, observed_at: '12 April' is not an ISO 8601 time with a zone"),
    ("time without zone", HEADER + "r9,fram,amundsen,1911-11-20T12:00:00,,-85,-167,,B2,,,\n",
     "observed_at: '1911-11-20T12:00:00' has no zone"),
    ("latitude 95", HEADER + "r9,fram,amundsen,1911-11-20T12:00:00Z,,95,-167,,B2,,,\n",
     "lat: '95' is out of range"),
    ("NaN", HEADER + "r9,fram,amundsen,1911-11-20T12:00:00Z,,nan,-167,,B2,,,\n",
     "lat: 'nan' is out of range"),
    ("unknown force", HEADER + "r9,fram,amundson,1911-11-20T12:00:00Z,,-85,-167,,B2,,,\n",
     "force: 'amundson' is not a force of this scenario (did you mean amundsen?)"),
    ("unknown place", HEADER + "r9,fram,amundsen,1911-11-20T12:00:00Z,,,,Framhiem,B2,,,\n",
     "place: 'Framhiem' is not in the scenario's gazetteer; did you mean Framheim?"),
    ("bad grade", HEADER + "r9,fram,amundsen,1911-11-20T12:00:00Z,,-85,-167,,G9,,,\n",
     "grade: 'G9' is not an Admiralty grade"),
    ("wrong field count", HEADER + "r9,fram,amundsen\n", "3 fields, expected 12"),
    ("unknown target", HEADER + "r9,fram,amundsen,1911-11-20T12:00:00Z,,,,,B2,reached,moon,\n",
     "target: 'moon' is not an objective"),
]


@pytest.mark.parametrize("label,data,expected", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_rows_are_named_and_kept(store: Store, validator: Any, label: str, data: str,
                                     expected: str) -> None:
    good = GOOD[2] + "\n"
    payload = data + (good if data.startswith(HEADER) else "")
    res = ingest_bytes(store, validator, payload.encode(), "bad.csv")
    assert res.quarantined == 1
    assert any(expected in m for m in res.messages), res.messages
    assert res.messages[0].startswith("bad.csv line 2")
    (q,) = store.quarantined()
    assert q["raw"].decode().strip() == data.splitlines()[1].strip()
    if data.startswith(HEADER):
        assert res.accepted == 1  # the good row of the same file still lands


def test_several_problems_of_one_row_are_all_named(store: Store, validator: Any) -> None:
    res = ingest_bytes(store, validator,
                       (HEADER + "r9,fram,amundson,noon,,95,-167,,B2,,,\n").encode())
    msg = res.messages[0]
    assert "force:" in msg and "observed_at:" in msg and "lat:" in msg


def test_empty_file(store: Store, validator: Any) -> None:
    res = ingest_bytes(store, validator, b"", "empty.csv")
    assert res.quarantined == 1 and "the file is empty" in res.messages[0]


def test_binary_junk_is_kept_byte_for_byte(store: Store, validator: Any) -> None:
    junk = bytes(range(256)) * 4 + b"\n\xff\xfe\x00\x01"
    res = ingest_bytes(store, validator, junk, "junk.bin")
    assert res.accepted == 0 and res.quarantined >= 1
    kept = b"".join(bytes(q["raw"]) for q in store.quarantined())
    assert kept.split() == junk.split()  # every byte but blank lines' whitespace is kept


def test_utf8_bom_and_semicolons_with_decimal_commas(store: Store, validator: Any) -> None:
    data = ("\ufeffreport_id;source;force;observed_at;lat;lon;grade\n"
            "r1;fram;amundsen;1911-11-20T12:00:00Z;-85,4;-167,5;B2\n").encode("utf-8")
    res = ingest_bytes(store, validator, data)
    assert (res.accepted, res.quarantined) == (1, 0)
    r = store.reports("amundsen")[0]
    assert (r.lat, r.lon) == (-85.4, -167.5)


def test_extra_columns_are_kept(store: Store, validator: Any) -> None:
    data = (HEADER.strip() + ",unit\n" + GOOD[0] + ",4th Armd\n").encode()
    ingest_bytes(store, validator, data)
    assert store.reports("amundsen")[0].extra == {"unit": "4th Armd"}


def test_broken_geojson_keeps_the_good_features_and_the_rest(store: Store, validator) -> None:
    feat = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-167.5, -85.4]},
            "properties": {"report_id": "g1", "source": "fram", "force": "amundsen",
                           "observed_at": "1911-11-20T12:00:00Z"}}
    data = ('{"type": "FeatureCollection", "features": [\n' + json.dumps(feat)
            + ',\n{"type": "Feature", "geometry": oops}\n]}').encode()
    res = ingest_bytes(store, validator, data, "broken.geojson")
    assert res.accepted == 1 and res.quarantined == 1
    assert "broken.geojson line 3, invalid JSON" in res.messages[0]
    (q,) = store.quarantined()
    assert bytes(q["raw"]).startswith(b'{"type": "Feature", "geometry": oops}')


def test_large_input_streams_in_bounded_memory(tmp_path: Path, validator: Any) -> None:
    """Peak Python memory for 50,000 rows stays near that of 5,000 (batches, not the file)."""

    def peak(n: int) -> int:
        path = tmp_path / f"big{n}.csv"
        with open(path, "w") as fh:
            fh.write(HEADER)
            for i in range(n):
                fh.write(f"b{i},fram,amundsen,1911-11-20T12:00:00Z,,-85.4,-167.5,,B2,,,\n")
        s = Store(tmp_path / f"big{n}.db")
        tracemalloc.start()
        with open(path, "rb") as fh:
            res = ingest_stream(s, validator, fh, origin=path.name, batch_size=2_000)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert res.accepted == n
        return top

    small, large = peak(5_000), peak(50_000)
    assert large < small * 1.5


# -- the bulk CSV path: the same rows, lines, raws and problems as row by row -----------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from warroom.ingest.base import Batch, CountingReader  # noqa: E402
from warroom.ingest.csv_format import FORMAT as CSV  # noqa: E402
from warroom.ingest.validate import Validator  # noqa: E402

_odd_line = st.one_of(
    st.sampled_from([
        'r3,fram,scott,1911-11-20T12:00:00Z,,-85,170,,,,,"quoted, with comma"',
        'r4,fram,scott,1911-11-20T12:00:00Z,,-85,170,,,,,"two\nlines"',
        'r5,fram,scott,1911-11-20T12:00:00Z,,-85,170,,,,,"open quote',
        "r6,fram,scott\r", "", "   ", "r8,x\x00y,amundsen,1911-11-20T12:00:00Z,,-85,-167,,,,,",
        "r10,fram,amundsen,1911-11-20T12:00:00Z,,-85.4,-167.5,,B2,,,\r", "\udcff,x",
    ]),
    st.text(alphabet=st.sampled_from('ab,;"\n\r \x00é'), max_size=12))
# Plain lines (no quotes): mostly 12 fields, some with one field too few or too many, some
# blank (only delimiters), some numbers with a decimal comma.
def _lines(d: str) -> st.SearchStrategy[list[str]]:
    plain = st.builds(d.join, st.integers(11, 13).flatmap(lambda k: st.lists(st.sampled_from(
        ["r1", "fram", "amundsen", "1911-11-20T12:00:00Z", "", "", "-85.4", "-85,4", "B2",
         "x y", "é"]), min_size=k, max_size=k)))
    return st.lists(st.one_of(plain, plain, plain, st.just(d * 11), _odd_line), max_size=14)


def _items(data: bytes, size: int) -> list[tuple]:
    """The records of a CSV stream, from batches() expanded row by row, or from records()."""
    stream = CountingReader(io.BytesIO(data))
    if size == 0:
        return [(r.line, r.raw, r.fields, r.error) for r in CSV.records(stream, "t")]
    out = []
    for item in CSV.batches(stream, "t", size):
        if isinstance(item, Batch):
            out += [(item.lines[i], item.raws[i], item.fields(i), None) for i in range(len(item))]
        else:
            out.append((item.line, item.raw, item.fields, item.error))
    return out


@settings(max_examples=500, deadline=None)
@given(st.data(), st.integers(1, 5), st.booleans(), st.sampled_from(
    [HEADER, HEADER, HEADER.replace(",", ";"), "report_id,source\n", ""]))
def test_csv_batches_give_the_records(data: Any, size: int, bom: bool, header: str) -> None:
    lines = data.draw(_lines(";" if ";" in header else ","))
    raw = (("\ufeff" if bom else "") + header + "\n".join(lines)).encode(
        "utf-8", "surrogateescape")

    assert _by_line(_items(raw, size)) == _by_line(_items(raw, 0))


def _by_line(items: list[tuple]) -> list[tuple]:
    """Items in line order (a chunk's refused rows may come before its batch: they land in
    the same transaction, in line order)."""
    return sorted(items, key=lambda x: x[0])


def test_csv_rows_of_other_widths_in_a_plain_chunk() -> None:
    good = GOOD[0] + "\n"
    for lines in ([GOOD[0] + ",x\n", "a,b,c,d,e,f,g,h,i,j,k\n"], [",,,,,,,,,,,\n", good],
                  [good, "a,b,c,d,e,f,g,h,i,j,k\n", GOOD[0] + ",x\n"]):
        data = (HEADER + good + "".join(lines) + good).encode()
        assert _by_line(_items(data, 10)) == _by_line(_items(data, 0))


class _RowByRow(Validator):
    def row(self, f: dict[str, Any]) -> Any:  # a subclass's own row(): batches go row-wise
        return super().row(f)


def _mixed_file(n: int) -> bytes:
    out = [HEADER]
    for i in range(n):
        k = i % 10
        if k == 7:
            out.append(f"b{i},fram,amundsen,12 April,,-85.4,-167.5,,B2,,,\n")
        elif k == 8:
            out.append(f"b{i - 8},fram,amundsen,1911-11-20T12:00:00Z,,-85.9,-167.5,,B2,,,\n")
        elif k == 9:
            out.append(f"p{i},fram,amundsen,1911-11-21T12:00:00Z,,,,Framheim,C3,,,\n")
        else:
            out.append(f"b{i},fram,{('amundsen', 'scott')[i % 2]},1911-11-{20 + i % 9:02d}T"
                       f"{i % 24:02d}:00:00Z,,-85.{i % 97},-167.{i % 89}0,,B2,,,rpt {i}\n")
    return "".join(out).encode()


def test_bulk_ingest_stores_what_row_by_row_stores(tmp_path: Path, validator: Any) -> None:
    """Good rows, bad rows, places, conflicts across batches and a second run, landed by the
    bulk path and row by row: the same reports, quarantine and counts."""
    data = _mixed_file(1_000)
    results, snaps = [], []
    for name, v in (("bulk", validator), ("rows", _RowByRow(validator.scenario))):
        s = Store(tmp_path / f"{name}.db")
        for _ in range(2):
            r = ingest_stream(s, v, io.BytesIO(data), origin="m.csv", batch_size=64)
            results.append((r.accepted, r.duplicate, r.conflict, r.quarantined, r.messages))
        snaps.append((sorted(rows(s)), sorted((q["line"], q["kind"], q["error"], bytes(q["raw"]))
                                              for q in s.quarantined())))
    assert results[0] == results[2] and results[1] == results[3]
    assert results[0][:4] == (800, 0, 100, 100)  # bad times, conflicts; places land
    assert results[1][:4] == (0, 800, 100, 100)  # a second run: duplicates, same refusals
    assert snaps[0] == snaps[1]
