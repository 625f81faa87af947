"""NDJSON reports: one JSON object per line with the report fields; a line may also be a GeoJSON
Point Feature (GeoJSON text sequences, RFC 8142: a leading RS character is accepted)."""

from __future__ import annotations

import io
import json
import math
import operator
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from warroom.ingest.base import MAX_LINE, Batch, CountingReader, Record, text_lines
from warroom.ingest.fields import NUMERIC


def flatten_feature(obj: dict[str, Any]) -> dict[str, Any]:
    """Report fields of a GeoJSON Point Feature (properties + coordinates); raises ValueError."""
    geom = obj.get("geometry") or {}
    props = dict(obj.get("properties") or {})
    if geom:
        if geom.get("type") != "Point":
            raise ValueError(f"geometry is a {geom.get('type')}; expected a Point")
        c = geom.get("coordinates") or []
        if len(c) < 2:
            raise ValueError("Point coordinates need [lon, lat]")
        props.setdefault("lon", c[0])
        props.setdefault("lat", c[1])
    if "report_id" not in props and obj.get("id") is not None:
        props["report_id"] = obj["id"]
    return props


def as_fields(obj: Any) -> dict[str, Any]:
    """Report fields of a JSON value (an object, or a Feature); raises ValueError."""
    if not isinstance(obj, dict):
        raise ValueError(f"a JSON {type(obj).__name__}; expected an object with report fields")
    if obj.get("type") == "Feature":
        return flatten_feature(obj)
    return obj


class NdjsonFormat:
    name = "ndjson"

    def sniff(self, head: bytes, filename: str | None) -> int:
        first = head.lstrip(b"\xef\xbb\xbf\x1e \t\r\n").split(b"\n", 1)[0].strip()
        if not first.startswith(b"{"):
            return 0
        try:
            obj = json.loads(first)
        except ValueError:
            return 5  # an object spanning lines: a whole JSON document, not NDJSON
        if isinstance(obj, dict) and obj.get("type") == "FeatureCollection":
            return 0
        return 90

    def records(self, stream: Any, origin: str, start: int = 0) -> Iterator[Record]:
        for n, raw, text, err in text_lines(stream, start):
            if err is not None:
                yield Record(n, raw, None, err)
                continue
            t = text.strip().lstrip("\x1e")
            if not t:
                continue
            try:
                yield Record(n, raw, as_fields(json.loads(t)))
            except ValueError as e:
                yield Record(n, raw, None, f"not a JSON report object ({e})")

    def batches(self, stream: CountingReader, origin: str,
                size: int) -> Iterator[Record | Batch]:
        """As :meth:`records`, but runs of plain report objects come as one :class:`Batch` of
        up to ``size`` rows, by column (other records, and errors, in file order between).

        Plain: every value is non-empty text, or a finite number (not a boolean) in a numeric
        field (lat, lon, uncertainty_km), written as its ``repr`` (which reads back to the same
        float). The batch keeps each record's own fields, so a row the bulk checks send back to
        :meth:`Validator.row` is validated (and its problems worded) exactly as a record.

        The stream is read in blocks of whole lines, each block's lines parsed by one
        ``json.loads`` of them joined as an array: the same values as line by line when every
        line is one JSON object (the array then has as many items as there are lines, all
        objects). A block where that is not so (a bad line, or one that is not UTF-8 text) is
        read line by line instead."""
        done = 0  # lines before the block
        while True:
            block = stream.read(BLOCK)
            if not block:
                return
            if not block.endswith(b"\n"):
                block += stream.readline()  # whole lines only
            lines = block.split(b"\n")
            if lines[-1] == b"":
                lines.pop()
            parsed = _parse_block(block, lines, first=done == 0)
            if parsed is None:
                yield from _rows_to_batches(
                    self.records(CountingReader(io.BytesIO(block)), origin, done), size)
            else:
                yield from _blocks_to_batches(*parsed, done, lines, size,
                                              ends_open=not block.endswith(b"\n"))
            done += len(lines)


BLOCK = 1 << 20  # bytes a block (then to the end of its last line)


def _parse_block(block: bytes, lines: list[bytes], first: bool
                 ) -> tuple[Sequence[int], list[dict[str, Any]]] | None:
    """The positions in the block of its non-blank lines and their fields, when every one is a
    JSON report object; None when the block needs reading line by line."""
    if b"\x00" in block or max(map(len, lines), default=0) >= MAX_LINE:
        return None
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if first and text.startswith("\ufeff"):
        text = text[1:]
    texts = text.split("\n")[:len(lines)]
    stripped = list(map(_strip if "\x1e" in text else str.strip, texts))
    at: Sequence[int] = range(len(stripped))
    if "" in stripped:  # blank lines are skipped
        at = [i for i, t in enumerate(stripped) if t]
        stripped = [stripped[i] for i in at]
    if not stripped:
        return at, []
    try:
        values = json.loads("[" + ",".join(stripped) + "]")
    except (ValueError, RecursionError):
        return None
    if len(values) != len(stripped) or set(map(type, values)) != {dict}:
        return None
    if set(map(_type_of, values)) != {None}:  # some are GeoJSON (or typed): one by one
        try:
            values = list(map(as_fields, values))
        except ValueError:
            return None
    return at, values


_type_of = operator.methodcaller("get", "type")


def _strip(t: str) -> str:
    return t.strip().lstrip("\x1e")


class _Raws(Sequence[bytes]):
    """The raw bytes of the lines at positions ``at`` of a block (made when asked for: only a
    row that goes to quarantine needs its own)."""

    def __init__(self, lines: list[bytes], at: Sequence[int], ends_open: bool) -> None:
        self.lines, self.at, self.ends_open = lines, at, ends_open

    def __len__(self) -> int:
        return len(self.at)

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return _Raws(self.lines, self.at[k], self.ends_open)
        i = self.at[k]
        last = i == len(self.lines) - 1 and self.ends_open
        return self.lines[i] if last else self.lines[i] + b"\n"


def _blocks_to_batches(at: Sequence[int], rows: list[dict[str, Any]], done: int,
                       lines: list[bytes], size: int, ends_open: bool
                       ) -> Iterator[Record | Batch]:
    """A parsed block as batches: at once by column when every row has the same fields and
    each column is plain, else row by row. ``ends_open``: the block's last line has no
    newline (the end of the input)."""
    raws = _Raws(lines, at, ends_open)
    numbers = (range(done + 1, done + 1 + len(at)) if isinstance(at, range)
               else [done + i + 1 for i in at])
    for a in range(0, len(rows), size):
        part, nums, raw = rows[a:a + size], numbers[a:a + size], raws[a:a + size]
        batch = _uniform_batch(part, nums, raw)
        if batch is not None:
            yield batch
        else:
            yield from _rows_to_batches((Record(nums[k], raw[k], f)
                                         for k, f in enumerate(part)), size)


def _uniform_batch(rows: list[dict[str, Any]], numbers: Sequence[int], raws: Sequence[bytes]
                   ) -> Batch | None:
    """One batch of rows that all have the same fields, each column plain; else None."""
    names = list(rows[0])
    if not names or sum(map(len, rows)) != len(names) * len(rows):
        return None
    texts: list[list[str]] = []
    try:
        for k in names:  # (a row without k raises KeyError: then they differ)
            col = list(map(operator.itemgetter(k), rows))
            kinds = set(map(type, col))
            if kinds == {str}:
                if "" in col:
                    return None
                texts.append(col)
            elif k in NUMERIC and kinds <= {int, float}:
                if not math.isfinite(math.fsum(col)):  # a NaN or an infinity among them
                    return None
                texts.append(list(map(repr, col)))  # repr of an int is its str
            else:
                return None
    except (KeyError, OverflowError):  # fields differ; a sum of huge numbers overflowed
        return None
    return Batch(names, texts, numbers, raws, rows)


def _rows_to_batches(records: Iterable[Record], size: int) -> Iterator[Record | Batch]:
    """Records as they come, runs of plain ones gathered into batches of up to ``size``."""
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    raws: list[bytes | str] = []

    def batch() -> Batch:
        names: dict[str, None] = {}
        for f in rows:
            names.update(dict.fromkeys(f))
        cols: list[list[str]] = []
        for k in names:
            if k in NUMERIC:
                cols.append([_number_text(f.get(k, "")) for f in rows])
            else:
                cols.append([f.get(k, "") for f in rows])
        out = Batch(list(names), cols, lines.copy(), raws.copy(), rows.copy())
        rows.clear()
        lines.clear()
        raws.clear()
        return out

    for rec in records:
        f = rec.fields
        if f is None or not _plain(f):
            if rows:
                yield batch()
            yield rec
            continue
        rows.append(f)
        lines.append(rec.line)  # type: ignore[arg-type]
        raws.append(rec.raw)
        if len(rows) >= size:
            yield batch()
    if rows:
        yield batch()


def _plain(f: dict[str, Any]) -> bool:
    for k, v in f.items():
        if type(v) is str:
            if not v:
                return False
        elif (k not in NUMERIC or type(v) not in (int, float)
              or (type(v) is float and not math.isfinite(v))):
            return False
    return True


def _number_text(v: Any) -> str:
    return v if type(v) is str else repr(v)  # repr of an int is its str


FORMAT = NdjsonFormat()
