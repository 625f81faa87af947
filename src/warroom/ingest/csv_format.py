"""CSV reports: a header line, then one report per row; comma, semicolon or tab separated.

The delimiter is the one whose split of the header names the most report fields. With ``;`` or
tab as delimiter, decimal commas in numbers (``52,52``) are read as decimal points.

Read through one ``TextIOWrapper`` (UTF-8, a BOM dropped) feeding the C ``csv`` reader; each
row's raw bytes are the exact lines it came from (``surrogateescape`` round-trips bytes that
are not UTF-8, which are then refused with the raw bytes kept).
"""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Callable, Iterator, Sequence

from warroom.ingest.base import Batch, CountingReader, Record
from warroom.ingest.columns import columns_of
from warroom.ingest.fields import ALIASES, KNOWN, NUMERIC, REQUIRED

_DELIMS = (",", ";", "\t", "|")


def _header(text: str) -> tuple[str, list[str]]:
    best = (",", -1)
    for d in _DELIMS:
        cols = [c.strip().strip('"').strip().lower() for c in text.rstrip("\r\n").split(d)]
        score = sum(ALIASES.get(c, c) in KNOWN for c in cols)
        if score > best[1]:
            best = (d, score)
    d = best[0]
    cols = next(csv.reader([text.rstrip("\r\n")], delimiter=d))
    return d, [ALIASES.get(c.strip().lower(), c.strip().lower()) for c in cols]


def _line_error(line: str) -> str | None:
    if "\x00" in line:
        return "binary data (NUL bytes), not text"
    if not line.isascii():
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            return "not UTF-8 text"
    return None


class CsvFormat:
    name = "csv"

    def sniff(self, head: bytes, filename: str | None) -> int:
        first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].lower()
        if filename and filename.lower().endswith((".csv", ".tsv", ".txt")):
            return 60
        return 50 if any(k.encode() in first for k in REQUIRED) else 10

    def records(self, stream: CountingReader, origin: str) -> Iterator[Record]:
        for item in self._parse(stream, 0):
            if isinstance(item, Record):
                yield item
            else:  # pragma: no cover - size 0 never makes batches
                raise AssertionError("batch from records()")

    def batches(self, stream: CountingReader, origin: str,
                size: int) -> Iterator[Record | Batch]:
        """As :meth:`records`, but runs of plain rows come as one :class:`Batch` of up to
        ``size`` rows (odd rows, and errors, still come as records, in file order)."""
        return self._parse(stream, size)

    def _parse(self, stream: CountingReader, size: int) -> Iterator[Record | Batch]:
        text = io.TextIOWrapper(io.BufferedReader(stream, 1 << 16), encoding="utf-8-sig",
                                errors="surrogateescape", newline="")
        n = 0
        header: list[str] | None = None
        delim = ","
        problem: str | None = None
        for line in text:
            n += 1
            bad = _line_error(line)
            if bad is not None:
                yield Record(n, _raw(line), None, bad)
                continue
            if line.strip():
                delim, header = _header(line)
                problem = _check_header(header)
                break
        if header is None:
            yield Record(1, b"", None, "the file is empty; expected a header line naming "
                         "report_id, source, force, observed_at and lat/lon or place")
            return
        decimal_comma = delim != ","
        width = len(header)
        numeric = [i for i, k in enumerate(header) if k in NUMERIC]
        pending: list[Record] = []
        captured: list[str] = []
        first_line = [n + 1]

        def record(values: list[str], line_no: int, raw_text: str,
                   commas: bool = True) -> Record | None:
            if len(values) != width:
                if not any(v.strip() for v in values):
                    return None
                return Record(line_no, _raw(raw_text), None, f"{len(values)} fields, expected "
                              f"{width} (the header's columns; delimiter {delim!r})")
            if problem is not None:
                return Record(line_no, _raw(raw_text), None, problem)
            if decimal_comma and commas:
                for i in numeric:
                    values[i] = values[i].replace(",", ".")
            fields = {k: v for k, v in zip(header, values, strict=True) if v}
            return Record(line_no, raw_text, fields) if fields else None

        def feed(lines: Iterator[str]) -> Iterator[str]:
            nonlocal n
            for line in lines:
                n += 1
                bad = _line_error(line)
                if bad is not None:
                    pending.append(Record(n, _raw(line), None, bad))
                    continue
                if not captured:
                    first_line[0] = n
                captured.append(line)
                yield line

        def careful(lines: Iterator[str], more: Callable[[], bool]) -> Iterator[Record]:
            """Row by row through the C reader, each row's raw lines captured (quoted fields
            may span lines); stops when ``more()`` says the lines to cover are done."""
            reader = csv.reader(feed(lines), delimiter=delim)
            while more():
                err_text = None
                try:
                    values = next(reader)
                except StopIteration:
                    break
                except csv.Error as e:
                    values = None
                    err_text = f"not a valid CSV row ({e})"
                if pending:
                    yield from pending
                    pending.clear()
                line_no = first_line[0]
                raw_text = captured[0] if len(captured) == 1 else "".join(captured)
                captured.clear()
                if values is None:
                    yield Record(line_no, _raw(raw_text), None, err_text)
                    continue
                rec = record(values, line_no, raw_text)
                if rec is not None:
                    yield rec
            yield from pending
            pending.clear()

        if size <= 0 or problem is not None:
            yield from careful(iter(text), lambda: True)
            return
        # In bulk: about ``size`` lines at a time, read as one block of whole lines. A block of
        # plain lines (no quotes, so one line is one row; no CR or NUL, valid UTF-8) is split
        # in one go and handed on as columns; any other block goes through the C reader line
        # by line, or row by row (a quoted field may run past its end).
        blank = delim * (width - 1)  # a row of empty fields, skipped like an empty line
        empty = [""] * width
        per_line = 100.0  # characters per line, learnt as the file goes
        while True:
            block = text.read(max(1, int(size * per_line)))
            if not block:
                return
            if not block.endswith("\n"):
                block += text.readline()  # whole lines only
            rows = None
            columns: list[Sequence[str]] | None = None
            chunk: Sequence[str] | None = None
            if '"' not in block and "\x00" not in block and _utf8(block):
                if "\r" not in block and block.isascii():
                    columns = _ascii_columns(block, width, delim)
                    if columns is not None:
                        chunk = _Lines(block, len(columns[0]))
                elif "\r" not in block:
                    plain = block.split("\n")
                    if block.endswith("\n"):
                        plain.pop()
                    if blank not in plain and max(map(len, plain)) <= csv.field_size_limit():
                        columns = _split(block, len(plain), width, delim)
                    if columns is not None:
                        chunk = _Lines(block, len(plain), plain)
                if columns is None:
                    chunk = list(io.StringIO(block, newline=""))
                    try:
                        rows = list(csv.reader(chunk, delimiter=delim))
                    except csv.Error:
                        rows = None
            if chunk is None:
                chunk = list(io.StringIO(block, newline=""))
            per_line = len(block) / len(chunk)
            if rows is None and columns is None:
                queue = deque(chunk)
                yield from careful(_drain_then(queue, text), lambda q=queue: bool(q))
                continue
            first = n + 1
            n += len(chunk)
            lines: Sequence[int] = range(first, first + len(chunk))
            raws: Sequence[str] = chunk
            if rows is not None:
                if empty in rows or set(map(len, rows)) != {width}:
                    keep = []
                    for i, values in enumerate(rows):
                        rec = record(values, first + i, chunk[i], commas=False)
                        if rec is None:
                            continue
                        if rec.fields is None:
                            yield rec
                        else:
                            keep.append(i)
                    rows = [rows[i] for i in keep]
                    lines = [first + i for i in keep]
                    raws = [chunk[i] for i in keep]
                if not rows:
                    continue
                columns = list(zip(*rows, strict=True))
            assert columns is not None
            if decimal_comma:
                for i in numeric:
                    columns[i] = [v.replace(",", ".") for v in columns[i]]
            yield Batch(header, columns, lines, raws)


class _Lines(Sequence[str]):
    """The ``count`` lines of a block split at its newlines, each given back with its newline
    (the last one only if the block ended with one): the raw input of each row, made only when
    asked (the block is split on first use, unless its ``lines`` are given)."""

    def __init__(self, block: str, count: int, lines: list[str] | None = None) -> None:
        self.block, self.count, self.lines = block, count, lines
        self.last = count - 1 if not block.endswith("\n") else count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        if self.lines is None:
            self.lines = self.block.split("\n", self.count - 1)
            if self.last == self.count:
                self.lines[-1] = self.lines[-1][:-1]  # the last line's newline
        if i < 0:
            i += self.count
        return self.lines[i] if i == self.last else self.lines[i] + "\n"


def _ascii_columns(block: str, width: int, delim: str) -> list[Sequence[str]] | None:
    """The columns of an ASCII block of plain lines (see :func:`_split`) as
    :class:`FieldColumn` s, or None if some line has another number of fields than ``width``,
    has only empty fields, or a field longer than the C reader takes."""
    text = block if block.endswith("\n") else block + "\n"
    cols = columns_of(text, text.count("\n"), width, delim)
    if cols is None:
        return None
    lens = [c.lengths() for c in cols]
    if (sum(lens) == 0).any() or max(int(n.max()) for n in lens) > csv.field_size_limit():
        return None
    return list(cols)  # (a list of the wider type: lists are invariant)


def _split(text: str, m: int, width: int, delim: str) -> list[Sequence[str]] | None:
    """The columns of ``m`` lines of ``width`` fields each, or None if some line has another
    number of fields. The text holds no quote, CR or NUL: the C reader would split it exactly
    where ``str.split`` does. A NUL marks each line end, so that the first field of every line
    but the first starts with one exactly when all lines have ``width`` fields."""
    if not text.endswith("\n"):
        text += "\n"
    flat = text.replace("\n", delim + "\x00").split(delim)
    if len(flat) != m * width + 1 or "".join(flat[width::width]).count("\x00") != m:
        return None
    columns: list[Sequence[str]] = [flat[j:m * width:width] for j in range(width)]
    columns[0] = "".join(columns[0]).split("\x00")
    return columns


def _drain_then(queue: deque[str], rest: Iterator[str]) -> Iterator[str]:
    """The queued lines, then (only while a row still needs them) the rest of the file."""
    while queue:
        yield queue.popleft()
    # Not ``yield from``: closing this generator would close the file with it.
    for line in rest:  # noqa: UP028
        yield line


def _utf8(text: str) -> bool:
    """Whether text decoded with ``surrogateescape`` came from valid UTF-8 (no lone bytes)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raw(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def _check_header(cols: list[str]) -> str | None:
    seen: set[str] = set()
    dups = sorted({c for c in cols if c in seen or seen.add(c)})  # type: ignore[func-returns-value]
    if dups:
        return f"header: column(s) {', '.join(dups)} appear twice"
    missing = [c for c in REQUIRED if c not in cols]
    if not ("place" in cols or ("lat" in cols and "lon" in cols)):
        missing.append("lat and lon, or place")
    if missing:
        return (f"header: missing required column(s) {', '.join(missing)}; found "
                f"{', '.join(c for c in cols if c) or 'no columns'}")
    return None


FORMAT = CsvFormat()
