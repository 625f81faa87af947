"""Report archives as Parquet datasets, partitioned by force.

Layout: a folder of Hive partitions ``bucket=NN/`` (``NN = crc32(force) % 64``), so that all
reports of a force sit in one partition and a partition is a unit of work for a cluster (see
:mod:`warroom.engine`). Columns (:data:`SCHEMA`) are the stored report fields:

=================  ==============================  ===========================================
column             type                            meaning
=================  ==============================  ===========================================
source, report_id  string                          the report's identity
force              string                          force id
observed_at        timestamp[ms, UTC]              when it happened (bitemporal: valid time)
received_at        timestamp[ms, UTC]              when we learned it (transaction time)
lat, lon           float64 (null)                  degrees, as stored (places resolved)
place              string (null)                   the place name given
uncertainty_km     float64 (null)                  1-sigma km; null: from the grade
grade, event       string                          Admiralty code; position/reached/...
target, text,      string (null)                   as stored
sources
extra              string (null)                   the other fields, a JSON object
digest             string                          the content digest (provenance, see
                                                  :func:`warroom.digest.content_digest`)
=================  ==============================  ===========================================

Times are whole UTC seconds, as in the store (before 1970 too). Writing and reading stream in
record batches: memory stays flat whatever the archive's size.

Reading back into a store (:func:`ingest_parquet`) sends every row through the same
:class:`~warroom.ingest.validate.Validator` and :meth:`~warroom.store.Store.write_batch` as
the text formats (an archive is input like any other; its digest column is not read): duplicates
and conflicts are settled by the store, and a bad row goes to quarantine with an error naming
the file, the row and the field (``bucket=07/part-0.parquet row 12, force: 'x' is not a force
of this scenario; ...``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from warroom.archive.buckets import BUCKETS, bucket_of
from warroom.digest import content_digests
from warroom.domain import Report
from warroom.ingest.pipeline import IngestResult
from warroom.ingest.validate import Validator
from warroom.store import CONTENT, ROW_FIELDS, QuarantineRow, Store

BATCH = 50_000  # rows per record batch, written or read
TIME = pa.timestamp("ms", tz="UTC")  # Parquet has no seconds unit; whole seconds stay exact

SCHEMA = pa.schema([
    ("source", pa.string()), ("report_id", pa.string()), ("force", pa.string()),
    ("observed_at", TIME), ("received_at", TIME),
    ("lat", pa.float64()), ("lon", pa.float64()), ("place", pa.string()),
    ("uncertainty_km", pa.float64()), ("grade", pa.string()), ("event", pa.string()),
    ("target", pa.string()), ("text", pa.string()), ("sources", pa.string()),
    ("extra", pa.string()), ("digest", pa.string()),
    ("bucket", pa.int32()),
])
PARTITIONING = ds.partitioning(pa.schema([("bucket", pa.int32())]), flavor="hive")
# Columns of the archive that are not report fields: never handed to the validator.
ARCHIVE_ONLY = frozenset({"bucket", "digest", "extra"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How columns are encoded in the files. Times are delta-encoded: Parquet's default, a
# dictionary, overflows on times (nearly all distinct) and falls back to plain pages part-way,
# which costs more to decode and to store; unique ids and floats are plain; the rest (few
# distinct values) dictionary-encoded. Readers need nothing special: these are standard
# Parquet encodings.
TIME_COLUMNS = ("observed_at", "received_at")
PLAIN_COLUMNS = frozenset({"report_id", "lat", "lon", "s_km", "digest", "text", "extra"})


def file_options(schema: pa.Schema, plain: frozenset[str] = PLAIN_COLUMNS
                 ) -> ds.FileWriteOptions:
    """The Parquet write options of an archive with ``schema`` (see above; ``plain``: the
    columns of mostly distinct values)."""
    names = [n for n in schema.names if n != "bucket"]
    return ds.ParquetFileFormat().make_write_options(
        compression="snappy",
        use_dictionary=[n for n in names if n not in plain and n not in TIME_COLUMNS],
        column_encoding={n: "DELTA_BINARY_PACKED" for n in TIME_COLUMNS if n in names})


class ArchiveError(Exception):
    """An archive that cannot be written or read (names the path and what is wrong)."""


# -- writing -----------------------------------------------------------------------------------

def _batch(rows: Sequence[tuple[Any, ...]], buckets: dict[str, int]) -> pa.RecordBatch:
    """A record batch of store rows (tuples in ``store.ROW_FIELDS`` order), with the content
    digest of each."""
    cols = list(zip(*rows, strict=True))
    data: dict[str, pa.Array] = {}
    for name, values in zip(ROW_FIELDS, cols, strict=True):
        typ = SCHEMA.field(name).type
        if typ == TIME:
            data[name] = pc.multiply(pa.array(values, type=pa.int64()), 1000).cast(TIME)
        else:
            data[name] = pa.array(values, type=typ)
    data["digest"] = pa.array(content_digests([cols[j] for j in CONTENT], len(rows)),
                              type=pa.string())
    forces = cols[ROW_FIELDS.index("force")]
    for f in set(forces) - buckets.keys():
        buckets[f] = bucket_of(f)
    data["bucket"] = pa.array([buckets[f] for f in forces], type=pa.int32())
    return pa.RecordBatch.from_pydict(data, schema=SCHEMA)


def write_batches(batches: Iterable[pa.RecordBatch], out_dir: str | Path,
                  schema: pa.Schema = SCHEMA) -> None:
    """Write record batches (with a ``bucket`` column) as a Hive-partitioned dataset into
    ``out_dir``, which must be new or empty."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ArchiveError(f"{out}: exists and is not an empty folder; export into a new one")
    out.mkdir(parents=True, exist_ok=True)
    reader = pa.RecordBatchReader.from_batches(schema, iter(batches))
    ds.write_dataset(
        reader, out, format="parquet", partitioning=PARTITIONING,
        file_options=file_options(schema), basename_template="part-{i}.parquet",
        existing_data_behavior="overwrite_or_ignore",
        min_rows_per_group=1 << 14, max_rows_per_group=1 << 17, max_rows_per_file=1 << 22,
        preserve_order=True,
    )


def write_rows(rows: Iterable[tuple[Any, ...]], out_dir: str | Path,
               batch_size: int = BATCH) -> int:
    """Write store rows (``ROW_FIELDS`` tuples) to ``out_dir``; returns how many."""
    count = 0
    buckets: dict[str, int] = {}

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal count
        chunk: list[tuple[Any, ...]] = []
        for r in rows:
            chunk.append(r)
            if len(chunk) >= batch_size:
                count += len(chunk)
                yield _batch(chunk, buckets)
                chunk = []
        if chunk:
            count += len(chunk)
            yield _batch(chunk, buckets)

    write_batches(batches(), out_dir)
    return count


def write_reports(reports: Iterable[Report], out_dir: str | Path,
                  batch_size: int = BATCH) -> int:
    """Write :class:`Report` s to ``out_dir``; returns how many."""
    rows = ((r.source, r.report_id, r.force, r.observed_at, r.received_at, r.lat, r.lon, r.place,
             r.uncertainty_km, r.grade, r.event, r.target, r.text, r.sources,
             json.dumps(r.extra, sort_keys=True) if r.extra else None) for r in reports)
    return write_rows(rows, out_dir, batch_size)


def export_store(store: Store, out_dir: str | Path, batch_size: int = BATCH) -> int:
    """Every stored report (in the order stored) to a Parquet dataset; returns how many."""
    cur = store.conn.execute(f"SELECT {', '.join(ROW_FIELDS)} FROM reports ORDER BY seq")

    def rows() -> Iterator[tuple[Any, ...]]:
        while True:
            chunk = cur.fetchmany(batch_size)
            if not chunk:
                return
            yield from chunk

    return write_rows(rows(), out_dir, batch_size)


# -- reading -----------------------------------------------------------------------------------

def _dataset(path: str | Path) -> ds.Dataset:
    p = Path(path)
    if not p.exists():
        raise ArchiveError(f"{p}: no such file or folder")
    try:
        return ds.dataset(p, format="parquet", partitioning=PARTITIONING
                          if p.is_dir() else None, exclude_invalid_files=False)
    except (pa.ArrowInvalid, OSError) as e:
        raise ArchiveError(f"{p}: not a Parquet dataset ({e})") from None


def fragments(path: str | Path) -> list[tuple[str, ds.Fragment]]:
    """The files of an archive as ``(name relative to path, fragment)``, in name order."""
    root = Path(path)
    out = []
    for frag in _dataset(root).get_fragments():
        p = Path(frag.path)
        name = str(p.relative_to(root)) if root.is_dir() else p.name
        out.append((name, frag))
    return sorted(out, key=lambda x: x[0])


def _seconds(col: pa.ChunkedArray | pa.Array) -> list[int | None] | None:
    """Whole UTC seconds of a timestamp column (rounded like ``parse_time``), None if the
    column is not a timestamp."""
    if not pa.types.is_timestamp(col.type):
        return None
    per_s = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[col.type.unit]
    ints = col.cast(pa.int64())
    valid = np.asarray(ints.is_valid())
    raw = np.asarray(ints.fill_null(0), dtype=np.int64)
    secs = raw if per_s == 1 else np.round(raw / per_s).astype(np.int64)
    return [int(s) if ok else None for s, ok in zip(secs, valid, strict=True)]


def _iso(seconds: int | None) -> str | None:
    """ISO 8601 with a zone, for any year datetime knows (``to_iso``'s strftime is not
    zero-padded before year 1000 on every platform)."""
    if seconds is None:
        return None
    try:
        return (_EPOCH + timedelta(seconds=seconds)).isoformat()
    except OverflowError:
        return str(seconds)  # refused by the validator: not an ISO time


def _columns(batch: pa.RecordBatch) -> tuple[dict[str, list[Any]], dict[str, list[int | None]]]:
    """Python values per column, and whole seconds of the timestamp columns."""
    values: dict[str, list[Any]] = {}
    secs: dict[str, list[int | None]] = {}
    for name in batch.schema.names:
        col = batch.column(name)
        if pa.types.is_timestamp(col.type) and col.type.tz is None:
            # a zone-less time is refused, as in every format: say what it was, without one
            values[name] = [None if v is None else v.isoformat() for v in col.to_pylist()]
            continue
        s = _seconds(col)
        if s is not None:
            secs[name] = s
        else:
            values[name] = col.to_pylist()
    return values, secs


def iter_reports(path: str | Path, batch_size: int = BATCH) -> Iterator[Report]:
    """The reports of an archive as written (no validation), file by file."""
    for name, frag in fragments(path):
        for batch in frag.to_batches(batch_size=batch_size):
            values, secs = _columns(batch)
            n = batch.num_rows

            def col(c: str, values: dict[str, list[Any]] = values, n: int = n) -> list[Any]:
                return values.get(c) or [None] * n

            for k in ("observed_at", "received_at"):
                if k not in secs:
                    raise ArchiveError(f"{name}: column {k} is not a timestamp")
            for i in range(n):
                extra = col("extra")[i]
                yield Report(
                    source=col("source")[i], report_id=col("report_id")[i],
                    force=col("force")[i], observed_at=secs["observed_at"][i],
                    received_at=secs["received_at"][i], lat=col("lat")[i], lon=col("lon")[i],
                    place=col("place")[i], uncertainty_km=col("uncertainty_km")[i],
                    grade=col("grade")[i], event=col("event")[i], target=col("target")[i],
                    text=col("text")[i], sources=col("sources")[i],
                    extra=json.loads(extra) if extra else {})


def records(path: str | Path, batch_size: int = BATCH
            ) -> Iterator[tuple[str, int, dict[str, Any] | None, str | None]]:
    """``(file, row, fields, error)`` for every row: the report fields as the validator takes
    them (times as ISO 8601 text, ``extra`` spread out), or why the row cannot be read."""
    for name, frag in fragments(path):
        row = 0
        try:
            batches = frag.to_batches(batch_size=batch_size)
            for batch in batches:
                values, secs = _columns(batch)
                names = [c for c in values if c not in ARCHIVE_ONLY]
                extras = values.get("extra")
                for i in range(batch.num_rows):
                    row += 1
                    f: dict[str, Any] = {}
                    for c, s in secs.items():
                        if c != "bucket":
                            f[c] = _iso(s[i])
                    for c in names:
                        v = values[c][i]
                        if v is None:
                            continue
                        f[c] = v
                    if extras is not None and extras[i]:
                        try:
                            more = json.loads(extras[i])
                            if not isinstance(more, dict):
                                raise ValueError("not an object")
                        except ValueError as e:
                            yield name, row, f, f"extra: {extras[i][:80]!r} is not a JSON " \
                                f"object of report fields ({e})"
                            continue
                        for k, v in more.items():
                            f.setdefault(k, v)
                    yield name, row, f, None
        except (pa.ArrowInvalid, OSError) as e:
            raise ArchiveError(f"{name}: cannot be read as Parquet after row {row} ({e})"
                               ) from None


def ingest_parquet(store: Store, validator: Validator, path: str | Path,
                   batch_size: int = 20_000,
                   progress: Callable[[int], None] | None = None) -> IngestResult:
    """Ingest an archive (a dataset folder or one .parquet file) into ``store``, file by file
    and batch by batch, through the validator; ``progress`` gets the rows read so far."""
    root = Path(path)
    result = IngestResult(origin=root.name or str(root), format="parquet")
    rows: list[tuple[Any, ...]] = []
    raws: list[bytes | None] = []
    lines: list[int | None] = []
    bad: list[QuarantineRow] = []
    origin = ""
    seen = 0

    note = result.note

    def flush() -> None:
        if not rows and not bad:
            return
        result.add(store.write_batch(rows, raws, lines, origin, bad), len(bad), origin)
        rows.clear()
        raws.clear()
        lines.clear()
        bad.clear()
        if progress is not None:
            progress(seen)

    prefix = f"{root.name}/" if root.is_dir() else ""
    for name, n, fields, error in records(root, batch_size):
        where = prefix + name
        if where != origin:
            flush()
            origin = where
        seen += 1
        raw = json.dumps(fields, sort_keys=True, default=str).encode()
        if error is None and fields is not None:
            row, errs = validator.row(fields)
            if row is not None:
                rows.append(row)
                raws.append(raw)
                lines.append(n)
                if len(rows) >= batch_size:
                    flush()
                continue
            error = "; ".join(errs)
        msg = f"{where} row {n}, {error}"
        f = fields or {}
        bad.append(QuarantineRow(origin, n, "invalid", msg, raw,
                                 _s(f.get("source")), _s(f.get("report_id"))))
        note(msg)
        if len(rows) + len(bad) >= batch_size:
            flush()
    flush()
    return result


def _s(v: Any) -> str | None:
    return None if v is None else str(v)


__all__ = ["ARCHIVE_ONLY", "ArchiveError", "BUCKETS", "SCHEMA", "bucket_of",
           "export_store", "fragments", "ingest_parquet", "iter_reports", "records",
           "write_batches", "write_reports", "write_rows"]
