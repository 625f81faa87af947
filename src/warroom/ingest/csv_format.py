"""CSV reports: a header line, then one report per row; comma, semicolon or tab separated.

The delimiter is the one whose split of the header names the most report fields. With ``;`` or
tab as delimiter, decimal commas in numbers (``52,52``) are read as decimal points.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from warroom.ingest.base import CountingReader, Record, text_lines
from warroom.ingest.fields import ALIASES, KNOWN, NUMERIC, REQUIRED

_DELIMS = (",", ";", "\t", "|")


def _header(text: str) -> tuple[str, list[str]]:
    best = (",", -1, [text])
    for d in _DELIMS:
        cols = [c.strip().strip('"').strip().lower() for c in text.rstrip("\r\n").split(d)]
        cols = [ALIASES.get(c, c) for c in cols]
        score = sum(c in KNOWN for c in cols)
        if score > best[1]:
            best = (d, score, cols)
    d = best[0]
    cols = next(csv.reader([text.rstrip("\r\n")], delimiter=d))
    return d, [ALIASES.get(c.strip().lower(), c.strip().lower()) for c in cols]


class CsvFormat:
    name = "csv"

    def sniff(self, head: bytes, filename: str | None) -> int:
        first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].lower()
        if filename and filename.lower().endswith((".csv", ".tsv", ".txt")):
            return 60
        return 50 if any(k.encode() in first for k in REQUIRED) else 10

    def records(self, stream: CountingReader, origin: str) -> Iterator[Record]:
        lines = text_lines(stream)
        header: list[str] | None = None
        delim = ","
        problem: str | None = None
        for n, raw, text, err in lines:
            if err is not None:
                yield Record(n, raw, None, err)
                continue
            if text.strip():
                delim, header = _header(text)
                problem = _check_header(header)
                break
        if header is None:
            yield Record(1, b"", None, "the file is empty; expected a header line naming "
                         "report_id, source, force, observed_at and lat/lon or place")
            return
        decimal_comma = delim != ","
        pending: list[Record] = []
        captured: list[tuple[int, bytes]] = []

        def feed() -> Iterator[str]:
            for n, raw, text, err in lines:
                if err is not None:
                    pending.append(Record(n, raw, None, err))
                    continue
                captured.append((n, raw))
                yield text

        reader = csv.reader(feed(), delimiter=delim)
        while True:
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                values = None
                err_text = f"not a valid CSV row ({e})"
            yield from pending
            pending.clear()
            line = captured[0][0] if captured else None
            raw = b"".join(r for _, r in captured)
            captured.clear()
            if values is None:
                yield Record(line, raw, None, err_text)
                continue
            if not any(v.strip() for v in values):
                continue
            if problem is not None:
                yield Record(line, raw, None, problem)
                continue
            if len(values) != len(header):
                yield Record(line, raw, None, f"{len(values)} fields, expected {len(header)} "
                             f"(the header's columns; delimiter {delim!r})")
                continue
            fields = {}
            for k, v in zip(header, values, strict=True):
                v = v.strip()
                if v:
                    if decimal_comma and k in NUMERIC:
                        v = v.replace(",", ".")
                    fields[k] = v
            yield Record(line, raw, fields)
        yield from pending


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
