"""The store: WAL on a real file, schema migrations, bitemporal reads, permutation invariance."""

from __future__ import annotations

import io
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warroom.ingest.pipeline import ingest_stream
from warroom.store import SCHEMA_VERSION, Store, StoreError
from warroom.timeutil import parse_time

HEADER = "report_id,source,force,observed_at,received_at,lat,lon,grade\n"


def test_real_file_in_wal_mode(tmp_path: Path) -> None:
    s = Store(tmp_path / "w.db")
    s.close()
    c = sqlite3.connect(tmp_path / "w.db")
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_migrates_an_empty_old_store_forward(tmp_path: Path) -> None:
    c = sqlite3.connect(tmp_path / "old.db")
    c.execute("PRAGMA user_version = 0")
    c.close()
    s = Store(tmp_path / "old.db")
    assert s.schema_version == SCHEMA_VERSION
    assert s.count_reports() == 0


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    c = sqlite3.connect(tmp_path / "new.db")
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    c.close()
    with pytest.raises(StoreError, match="newer than this warroom understands"):
        Store(tmp_path / "new.db")


def test_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    p = tmp_path / "junk.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a warroom store"):
        Store(p)


def test_deferred_checkpoints_are_done_by_the_checkpointer(tmp_path: Path,
                                                           validator: Any) -> None:
    """With checkpoints left to a checkpointer, a commit leaves its pages in the WAL (the
    database file does not grow, though the connection checkpointed at every commit before),
    and the checkpointer's thread copies them into the database (it does)."""
    from warroom.checkpointer import FALLBACK_PAGES, checkpoint_in_background

    db = tmp_path / "w.db"
    s = Store(db)
    s.conn.execute("PRAGMA wal_autocheckpoint=1")  # (would checkpoint at every commit)
    ck = checkpoint_in_background(s, interval_s=3600.0)  # (its first run: at stop)
    assert s.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == FALLBACK_PAGES
    empty = db.stat().st_size
    rows = "".join(f"c{i},fram,amundsen,1911-11-22T12:00:00Z,,-86,-167,B2\n"
                   for i in range(3000))
    ingest_stream(s, validator, io.BytesIO((HEADER + rows).encode()), origin="c.csv")
    assert db.stat().st_size == empty  # every page of it still in the WAL
    ck.stop()  # runs a last checkpoint
    assert ck.runs == 1
    assert db.stat().st_size > empty + 100_000  # the reports are in the database file now
    assert s.count_reports() == 3000
    s.close()


def test_as_of_reads_only_what_was_received(store: Store, validator: Any) -> None:
    data = (HEADER
            + "late,fram,amundsen,1911-11-20T12:00:00Z,1911-11-25T00:00:00Z,-85,-167,B2\n"
            + "early,fram,amundsen,1911-11-22T12:00:00Z,1911-11-22T13:00:00Z,-86,-167,B2\n")
    ingest_stream(store, validator, io.BytesIO(data.encode()), origin="t.csv")
    as_of = parse_time("1911-11-23T00:00:00Z")  # after both were observed, before 'late' came
    assert [r.report_id for r in store.reports("amundsen", as_of)] == ["early"]
    # all known: in observed order, whatever the arrival order
    assert [r.report_id for r in store.reports("amundsen")] == ["late", "early"]


_row = st.tuples(
    st.sampled_from(["a", "b", "c", "d", "e"]),          # report_id (small: forces collisions)
    st.sampled_from(["fram", "terra-nova"]),              # source
    st.integers(0, 3),                                    # observed day
    st.integers(0, 2),                                    # received delay (days)
    st.sampled_from(["-85.0", "-86.5", "95", "x"]),       # lat (some invalid)
)


def _lines(rows: list[tuple]) -> list[str]:
    out = []
    for rid, src, day, delay, lat in rows:
        out.append(f"{rid},{src},amundsen,1911-11-{10 + day:02d}T12:00:00Z,"
                   f"1911-11-{10 + day + delay:02d}T12:00:00Z,{lat},-167.0,B2\n")
    return out


def _snapshot(s: Store) -> tuple[set, list]:
    reports = set(s.conn.execute(
        "SELECT source, report_id, force, observed_at, received_at, lat, lon, text "
        "FROM reports"))
    quarantine = sorted((q["kind"], bytes(q["raw"])) for q in s.quarantined())
    return reports, quarantine


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_row, min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_any_permutation_of_rows_gives_the_same_store(tmp_path_factory: Any, validator: Any,
                                                      rows: list[tuple], rnd: Any) -> None:
    lines = _lines(rows)
    shuffled = lines[:]
    rnd.shuffle(shuffled)
    snaps = []
    for variant in (lines, shuffled):
        d = tmp_path_factory.mktemp("perm")
        s = Store(d / "p.db")
        ingest_stream(s, validator, io.BytesIO((HEADER + "".join(variant)).encode()),
                      origin="p.csv")
        snaps.append(_snapshot(s))
        s.close()
    assert snaps[0] == snaps[1]


def test_migrates_a_version_1_store_keeping_its_reports(tmp_path: Path, validator: Any) -> None:
    from warroom.store import MIGRATIONS

    c = sqlite3.connect(tmp_path / "v1.db")
    for stmt in MIGRATIONS[0]:
        c.execute(stmt)
    c.execute("PRAGMA user_version = 1")
    c.execute("INSERT INTO reports (source, report_id, force, observed_at, received_at, lat, lon,"
              " grade, event, digest, ingested_at) VALUES ('fram', 'old', 'amundsen', 0, 0, "
              "-85.0, -167.0, 'B2', 'position', 'd', 0)")
    c.commit()
    c.close()
    s = Store(tmp_path / "v1.db")
    assert s.schema_version == SCHEMA_VERSION >= 2
    assert [r.report_id for r in s.reports()] == ["old"]
    # version 3 keeps no digest: a report already stored is told apart by its content
    assert "digest" not in {r[1] for r in s.conn.execute("PRAGMA table_info(reports)")}
    row, _ = validator.row({"report_id": "old", "source": "fram", "force": "amundsen",
                            "observed_at": "1970-01-01T00:00:00Z", "lat": "-85", "lon": "-167",
                            "grade": "B2"})
    assert s.write_batch([row], ["raw"], [2], "again.csv").duplicate == 1
    s.save_briefing(10, 10, False, {"as_of": "x"})  # the tables version 2 added work
    assert s.briefing_before(11) == {"as_of": "x"} and s.briefing_before(10) is None


def test_migrating_to_version_3_keeps_every_field(tmp_path: Path, validator: Any) -> None:
    """Version 3 rebuilds the reports table without its digest column: every other field of
    every row, and its sequence number, come through unchanged; the key stays unique."""
    from warroom.store import MIGRATIONS

    c = sqlite3.connect(tmp_path / "v2.db")
    for stmt in MIGRATIONS[0] + MIGRATIONS[1]:
        c.execute(stmt)
    c.execute("PRAGMA user_version = 2")
    cols = ("seq, source, report_id, force, observed_at, received_at, lat, lon, place, "
            "uncertainty_km, grade, event, target, text, sources, extra, digest, ingested_at, "
            "origin")
    rows = [(7, "fram", "a", "amundsen", -10, 5, -85.5, -167.25, "Polheim", 2.5, "B2",
             "reached", "pole", "it's there", "x;y", '{"weather": "fog"}', "d1", 99, "a.csv"),
            (9, "fram", "b", "scott", 0, 0, None, None, None, None, "F6", "halted", None, None,
             None, None, "d2", 100, None)]
    c.executemany(f"INSERT INTO reports ({cols}) VALUES ({', '.join('?' * 19)})", rows)
    c.commit()
    c.close()
    s = Store(tmp_path / "v2.db")
    assert s.schema_version == SCHEMA_VERSION == 3
    got = s.conn.execute(f"SELECT {cols.replace('digest, ', '')} FROM reports ORDER BY seq")
    assert got.fetchall() == [r[:16] + r[17:] for r in rows]
    with pytest.raises(sqlite3.IntegrityError):
        s.conn.execute("INSERT INTO reports (source, report_id, force, observed_at, "
                       "received_at, grade, event, ingested_at) VALUES ('fram', 'a', "
                       "'amundsen', 0, 0, 'B2', 'position', 0)")
    s.close()


@pytest.mark.parametrize("origin", ["it's.csv", "tab\there.csv", "Küstrin.csv", None])
def test_origin_is_stored_verbatim(tmp_path: Path, validator: Any, origin: str | None) -> None:
    s = Store(tmp_path / "o.db")
    row, errs = validator.row({"report_id": "r1", "source": "fram", "force": "amundsen",
                               "observed_at": "1911-11-20T12:00:00Z", "lat": "-85", "lon": "-167"})
    assert errs == []
    before = int(time.time())
    assert s.write_batch([row], ["raw"], [2], origin).accepted == 1
    got, at = s.conn.execute("SELECT origin, ingested_at FROM reports").fetchone()
    assert got == origin and before <= at <= time.time()


def test_batch_with_stored_and_repeated_keys(tmp_path: Path, validator: Any) -> None:
    """One batch: a new key, a key already stored (same content: duplicate; other content:
    conflict) and a key twice inside the batch; the counts and the quarantine say which."""
    s = Store(tmp_path / "k.db")

    def row(rid: str, lat: str) -> tuple:
        r, _ = validator.row({"report_id": rid, "source": "fram", "force": "amundsen",
                              "observed_at": "1911-11-20T12:00:00Z", "lat": lat, "lon": "-167"})
        return r

    s.write_batch([row("old1", "-85"), row("old2", "-85")], ["a", "b"], [2, 3], "first.csv")
    rows = [row("new", "-85"), row("old1", "-85"), row("old2", "-86"), row("twice", "-85"),
            row("twice", "-87")]
    res = s.write_batch(rows, [f"raw{i}" for i in range(5)], [2, 3, 4, 5, 6], "second.csv")
    assert (res.accepted, res.duplicate, res.conflict) == (2, 1, 2)
    assert s.count_reports() == 4
    kinds = sorted((q["line"], q["kind"]) for q in s.quarantined())
    assert [k for _, k in kinds] == ["conflict", "conflict"]
    assert kinds[0][0] == 4 and kinds[1][0] in (5, 6)  # old2, and one of the twins
    lats = dict(s.conn.execute("SELECT report_id, lat FROM reports"))
    assert lats["old2"] == -85.0  # the stored one is kept


_BASE = {"report_id": "r1", "source": "fram", "force": "amundsen", "grade": "B2",
         "observed_at": "1911-11-20T12:00:00Z", "received_at": "1911-11-21T12:00:00Z",
         "lat": "-85.5", "lon": "-167", "text": "at the depot", "weather": "fog"}


@pytest.mark.parametrize("field,other,same", [
    ("received_at", "1911-11-25T00:00:00Z", True),  # heard again later: not new content
    ("lat", "-0.0", False), ("lon", "-167.25", False), ("text", "at the depot.", False),
    ("grade", "A1", False), ("observed_at", "1911-11-20T12:00:01Z", False),
    ("weather", "snow", False), ("uncertainty_km", "3", False), ("sources", "sledge", False),
])
def test_stored_key_is_a_duplicate_only_with_the_same_content(
        tmp_path: Path, validator: Any, field: str, other: str, same: bool) -> None:
    """A stored key comes back with one field changed: a duplicate when only received_at
    differs, a conflict for any content field (an extra column too), in the next batch or in
    the same one."""
    first, _ = validator.row(_BASE)
    second, _ = validator.row({**_BASE, field: other})
    assert first is not None and second is not None
    s = Store(tmp_path / "d.db")
    assert s.write_batch([first], ["a"], [2], "a.csv").accepted == 1
    res = s.write_batch([second], ["b"], [2], "b.csv")
    assert (res.accepted, res.duplicate, res.conflict) == (0, int(same), int(not same))
    both = Store(tmp_path / "e.db").write_batch([first, second], ["a", "b"], [2, 3], "c.csv")
    assert (both.accepted, both.duplicate, both.conflict) == (1, int(same), int(not same))
    assert [r.lat for r in s.reports()] == [-85.5]  # the stored one is kept


def test_minus_zero_is_the_zero_stored(tmp_path: Path, validator: Any) -> None:
    """SQLite stores -0.0 as 0.0: a report sent again with -0 for 0 is still a duplicate."""
    s = Store(tmp_path / "z.db")
    rows = [validator.row({**_BASE, "lat": lat, "lon": "0"})[0] for lat in ("0", "-0.0")]
    assert s.write_batch(rows[:1], ["a"], [2], "a.csv").accepted == 1
    assert s.write_batch(rows[1:], ["b"], [2], "b.csv").duplicate == 1


@pytest.mark.parametrize("source", ["o'brien", "tab\tsource", "plain"])
def test_batch_constants_are_stored_verbatim(tmp_path: Path, validator: Any, source: str) -> None:
    """A text the same in every row of a batch is written as an SQL literal: quotes and odd
    characters must come back as they went in."""
    s = Store(tmp_path / "c.db")
    rows = [validator.row({"report_id": f"r{i}", "source": source, "force": "amundsen",
                           "observed_at": "1911-11-20T12:00:00Z", "lat": "-85", "lon": "-167",
                           "grade": "C3", "event": "position"})[0] for i in range(3)]
    assert s.write_batch(rows, ["raw"] * 3, [2, 3, 4], "c.csv").accepted == 3
    got = set(s.conn.execute("SELECT source, grade, event FROM reports"))
    assert got == {(source, "C3", "position")}
    assert s.write_batch(rows, ["raw"] * 3, [2, 3, 4], "c.csv").duplicate == 3
