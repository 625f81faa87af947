"""Stream a file into the store: detect the format, parse, validate, land in batches.

Memory is bounded by the batch size (not the file size): each batch of good rows lands in one
transaction together with that batch's bad rows in quarantine.

Formats that can parse in bulk (``batches``, CSV) hand over whole batches by column; those are
validated column at a time (:meth:`Validator.batch`) and written with
:meth:`Store.write_columns`. Other formats go record by record.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from warroom.ingest import detect
from warroom.ingest.base import Batch, CountingReader
from warroom.ingest.validate import Validator
from warroom.store import BatchResult, QuarantineRow, Store

BATCH = 20_000
MAX_MESSAGES = 50


@dataclass
class IngestResult:
    """Counts of one ingest; ``messages`` holds the first problems, one line each."""

    origin: str
    format: str = ""
    accepted: int = 0
    duplicate: int = 0
    conflict: int = 0
    quarantined: int = 0
    messages: list[str] = field(default_factory=list)

    def note(self, msg: str) -> None:
        """Keep a problem line (the first ``MAX_MESSAGES`` only)."""
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(msg)

    def add(self, br: BatchResult, quarantined: int, origin: str) -> None:
        """Count a written batch (``quarantined``: its invalid rows), noting conflicts."""
        self.accepted += br.accepted
        self.duplicate += br.duplicate
        self.conflict += br.conflict
        self.quarantined += quarantined
        if br.conflict:
            self.note(f"{origin}: {br.conflict} conflicting report(s) kept in quarantine (same "
                      "source and report_id as a stored report, different content)")

    @property
    def clean(self) -> bool:
        return self.quarantined == 0 and self.conflict == 0

    def as_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "format": self.format, "accepted": self.accepted,
                "duplicate": self.duplicate, "conflict": self.conflict,
                "quarantined": self.quarantined, "messages": self.messages}


def ingest_stream(
    store: Store, validator: Validator, raw: BinaryIO, origin: str,
    filename: str | None = None, batch_size: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Ingest one byte stream; ``progress`` is called with the bytes read so far."""
    buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)  # type: ignore[arg-type]
    head = buffered.peek(1 << 16)[: 1 << 16]  # type: ignore[union-attr]
    fmt = detect(head, filename)
    result = IngestResult(origin=origin, format=fmt.name)
    stream = CountingReader(buffered)  # type: ignore[arg-type]
    rows: list[tuple[Any, ...]] = []
    raws: list[bytes | None] = []
    lines: list[int | None] = []
    bad: list[QuarantineRow] = []
    row_of = validator.row

    note = result.note

    def flush() -> None:
        if not rows and not bad:
            return
        br = store.write_batch(rows, raws, lines, origin, bad)
        rows.clear()
        raws.clear()
        lines.clear()
        count(br)

    def land(b: Batch) -> None:
        """A batch of rows by column (bulk formats): validated and written at once."""
        if rows:
            flush()  # rows before it land first
        vb = validator.batch(b)
        for i, fields, errs in vb.bad:
            line = b.lines[i]
            msg = f"{_where(origin, line)}, " + "; ".join(errs)
            bad.append(QuarantineRow(origin, line, "invalid", msg, _bytes(b.raws[i]),
                                     _s(fields.get("source")), _s(fields.get("report_id"))))
            note(msg)
        if len(vb.bad) < len(bad):  # refusals the format made in this chunk: file order
            bad.sort(key=lambda q: -1 if q.line is None else q.line)
        index = vb.index
        if isinstance(index, range) and len(index) == len(b):
            raws_, lines_ = b.raws, b.lines
        else:
            raws_ = [b.raws[i] for i in index]
            lines_ = [b.lines[i] for i in index]
        count(store.write_columns(vb.columns, raws_, lines_, origin, bad))

    def count(br: BatchResult) -> None:
        result.add(br, len(bad), origin)
        bad.clear()
        if progress is not None:
            progress(stream.pos)

    batches = getattr(fmt, "batches", None)
    items = (fmt.records(stream, origin) if batches is None
             else batches(stream, origin, batch_size))
    for rec in items:
        if isinstance(rec, Batch):
            land(rec)
            continue
        fields = rec.fields
        if fields is not None:
            row, errs = row_of(fields)
            if row is not None:
                rows.append(row)
                raws.append(rec.raw)
                lines.append(rec.line)
                if len(rows) >= batch_size:
                    flush()
                continue
            msg = f"{_where(origin, rec.line)}, " + "; ".join(errs)
            bad.append(QuarantineRow(origin, rec.line, "invalid", msg, _bytes(rec.raw),
                                     _s(fields.get("source")), _s(fields.get("report_id"))))
        else:
            msg = f"{_where(origin, rec.line)}, {rec.error}"
            bad.append(QuarantineRow(origin, rec.line, "invalid", msg, _bytes(rec.raw)))
        note(msg)
        if len(rows) + len(bad) >= batch_size:
            flush()
    flush()
    return result


def _where(origin: str, line: int | None) -> str:
    return origin if line is None else f"{origin} line {line}"


def _bytes(raw: bytes | str) -> bytes:
    return raw.encode("utf-8", errors="surrogateescape") if isinstance(raw, str) else raw


def _s(v: Any) -> str | None:
    return None if v is None else str(v)
