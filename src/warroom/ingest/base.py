"""What every input format provides: records with their line and raw bytes.

A format is one module that registers an :class:`InputFormat` (see ``warroom.ingest``). It turns
a byte stream into :class:`Record` s: the fields of one report (names as in reports.csv), or a
parse error, always with the raw input so nothing is lost.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

MAX_LINE = 16 * 1024 * 1024  # a single line longer than this is not a report


@dataclass(slots=True)
class Record:
    """One report's fields as parsed, or the error that stopped parsing it. ``raw`` is the
    exact input: bytes, or text that encodes back to them (UTF-8 with ``surrogateescape``)."""

    line: int | None
    raw: bytes | str
    fields: dict[str, Any] | None
    error: str | None = None


@dataclass(slots=True)
class Batch:
    """Many rows of one input at once, by column: ``columns[j]`` holds the text of field
    ``names[j]`` for every row (``""`` = empty), ``lines[i]`` and ``raws[i]`` the line number and
    exact input of row ``i``. Formats that can parse in bulk (CSV) yield these so validation
    and the store work on whole columns instead of one dict per row."""

    names: list[str]
    columns: list[Sequence[str]]
    lines: Sequence[int]
    raws: Sequence[str | bytes]
    originals: Sequence[dict[str, Any]] | None = None  # the records' own fields, if not text

    def __len__(self) -> int:
        return len(self.lines)

    def fields(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a record's fields (empty values left out, as ``Record.fields``; the
        record's own fields when the format kept them, e.g. JSON numbers)."""
        if self.originals is not None:
            return dict(self.originals[i])
        return {k: c[i] for k, c in zip(self.names, self.columns, strict=True) if c[i]}


class CountingReader(io.RawIOBase):
    """A binary stream that counts the bytes read (for progress bars)."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.pos += n
        return n

    def readline(self, limit: int = MAX_LINE) -> bytes:
        b = self._raw.readline(limit)
        self.pos += len(b)
        return b

    def read(self, n: int | None = -1) -> bytes:
        b = self._raw.read(-1 if n is None else n)
        self.pos += len(b)
        return b

    def __iter__(self) -> Iterator[bytes]:
        while True:
            b = self.readline()
            if not b:
                return
            yield b


class InputFormat(Protocol):
    """An input format: ``sniff`` rates a file's first bytes (0 = not this format, 100 = sure),
    ``records`` parses the whole stream lazily."""

    name: str

    def sniff(self, head: bytes, filename: str | None) -> int: ...

    def records(self, stream: CountingReader, origin: str) -> Iterator[Record]: ...


def text_lines(stream: Any, start: int = 0
               ) -> Iterator[tuple[int, bytes, str | None, str | None]]:
    """``(line_no, raw, text, error)`` for each line: UTF-8 decoded (a BOM at the start is
    dropped), or an error for a line that is not UTF-8 text. ``start``: lines before this
    stream's first (it continues a file at line ``start + 1``)."""
    for n, raw in enumerate(stream, start=start + 1):
        b = raw[3:] if n == 1 and raw.startswith(b"\xef\xbb\xbf") else raw
        if b"\x00" in b:
            yield n, raw, None, "binary data (NUL bytes), not text"
            continue
        try:
            yield n, raw, b.decode("utf-8"), None
        except UnicodeDecodeError as e:
            yield n, raw, None, f"not UTF-8 text ({e.reason} at byte {e.start})"
