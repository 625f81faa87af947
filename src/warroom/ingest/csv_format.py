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
from collections.abc import Iterator

from warroom.ingest.base import CountingReader, Record
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
        pending: list[Record] = []
        captured: list[str] = []
        first_line = [n + 1]

        def feed() -> Iterator[str]:
            nonlocal n
            for line in text:
                n += 1
                bad = _line_error(line)
                if bad is not None:
                    pending.append(Record(n, _raw(line), None, bad))
                    continue
                if not captured:
                    first_line[0] = n
                captured.append(line)
                yield line

        reader = csv.reader(feed(), delimiter=delim)
        numeric = [i for i, k in enumerate(header) if k in NUMERIC]
        while True:
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
            if len(values) != width:
                if not any(v.strip() for v in values):
                    continue
                yield Record(line_no, _raw(raw_text), None, f"{len(values)} fields, expected "
                             f"{width} (the header's columns; delimiter {delim!r})")
                continue
            if problem is not None:
                yield Record(line_no, _raw(raw_text), None, problem)
                continue
            if decimal_comma:
                for i in numeric:
                    values[i] = values[i].replace(",", ".")
            fields = {k: v for k, v in zip(header, values, strict=True) if v}
            if fields:
                yield Record(line_no, raw_text, fields)
        yield from pending


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
