"""Columns of CSV fields kept as offsets into their block, not as one string per field.

The CSV reader splits a plain ASCII block (no quotes; see ``csv_format``) by finding its
delimiters and newlines with NumPy: field ``i`` of a column is ``text[starts[i]:ends[i]]``. A
:class:`FieldColumn` is a sequence of those strings, made only when asked; the bulk checks
(``bulk.iso_seconds``, ``bulk.floats``, :func:`stripped`, :func:`shared`) read times and numbers
straight from the bytes and give low-cardinality columns (source, force, grade) one shared
string per distinct value. For every row they give what the same code gives on the strings.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# ASCII characters str.strip() removes (those for which str.isspace() is true)
_SPACE = np.zeros(256, bool)
_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_FEW = 8  # at most this many distinct values share strings
_SHARE_MAX_LEN = 32  # longer fields are not compared for sharing
_PAD = 64  # zero bytes after a block: fields up to this long are read through one window


class FieldColumn(Sequence[str]):
    """Field ``j`` of every line of an ASCII block: ``text`` the block (str), ``u`` its bytes
    (uint8), ``starts``/``ends`` the offsets of each row's field (int64)."""

    __slots__ = ("text", "u", "starts", "ends", "_strings")

    def __init__(self, text: str, u: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        self.text, self.u, self.starts, self.ends = text, u, starts, ends
        self._strings: list[str] | None = None

    def __len__(self) -> int:
        return len(self.starts)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return self.strings()[i]
        return self.text[self.starts[i]:self.ends[i]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.strings())

    def strings(self) -> list[str]:
        """Every field as a string (made once)."""
        if self._strings is None:
            n = len(self)
            width = int(self.lengths().max()) if n else 0
            if 0 < width <= _PAD:
                # as UCS-4 text, whose items NumPy gives back without the padding zeros
                ucs4 = self.padded(width).astype(np.uint32).view(f"<U{width}")
                self._strings = ucs4.ravel().tolist()
            else:
                text = self.text
                self._strings = [text[a:b] for a, b in zip(self.starts.tolist(),
                                                             self.ends.tolist(), strict=True)]
        return self._strings

    def lengths(self) -> np.ndarray:
        return self.ends - self.starts

    def padded(self, width: int) -> np.ndarray:
        """``(n, width)`` uint8: each field's bytes, zero after its end (a field holds no NUL:
        blocks with one are not split this way)."""
        if width <= _PAD:  # rows of a window over the bytes (the block ends in _PAD zeros)
            g = sliding_window_view(self.u, width)[self.starts]
        else:
            g = self.u[np.minimum(self.starts[:, None] + np.arange(width), len(self.u) - 1)]
        lens = self.lengths()
        if not (lens == width).all():
            g[np.arange(width) >= lens[:, None]] = 0
        return g

    def shared(self) -> list[str]:
        """:meth:`strings`, with one string object per distinct value when the column has at
        most a few (its dictionary lookups then hash each value once)."""
        n = len(self)
        if n == 0 or self._strings is not None:
            return self.strings()
        if len({self[i] for i in range(min(n, 64))}) > _FEW:
            return self.strings()
        width = int(self.lengths().max())
        if width > _SHARE_MAX_LEN:
            return self.strings()
        g = self.padded(-(-max(width, 1) // 8) * 8).view("<u8")  # rows as 64-bit words
        codes = np.full(n, -1, np.int64)
        values: list[str] = []
        left = np.ones(n, bool)
        while left.any():
            if len(values) == _FEW:
                return self.strings()
            i = int(np.argmax(left))
            same = (g == g[i]).all(axis=1)
            codes[same] = len(values)
            values.append(self[i])
            left &= ~same
        table = np.empty(len(values), object)
        table[:] = values
        return table[codes].tolist()

    def stripped(self) -> list[str]:
        """``[s.strip() for s in self]`` (shared strings where few distinct)."""
        lens = self.lengths()
        full = lens > 0
        u = self.u
        if _SPACE[u[self.starts[full]]].any() or _SPACE[u[self.ends[full] - 1]].any():
            return [s.strip() for s in self.strings()]
        return self.shared()


def stripped(col: Sequence[str]) -> list[str]:
    """Each text of a column stripped of surrounding whitespace."""
    if isinstance(col, FieldColumn):
        return col.stripped()
    return list(map(str.strip, col))


def shared(col: Sequence[str]) -> Sequence[str]:
    """The texts of a column, cheap to index and iterate (one string per distinct value of a
    :class:`FieldColumn` that has few)."""
    return col.shared() if isinstance(col, FieldColumn) else col


def same_texts(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether two columns hold the same texts row for row."""
    if isinstance(a, FieldColumn) and isinstance(b, FieldColumn):
        la, lb = a.lengths(), b.lengths()
        if len(la) != len(lb) or not np.array_equal(la, lb):
            return False
        if len(la) == 0:
            return True
        w = int(la.max())
        return bool(np.array_equal(a.padded(w), b.padded(w)))
    if isinstance(a, list) and isinstance(b, list):
        return a == b
    return list(a) == list(b)


def columns_of(text: str, m: int, width: int, delim: str) -> list[FieldColumn] | None:
    """The ``width`` columns of the ``m`` lines of an ASCII ``text`` ending in a newline, or
    None when some line has another number of fields."""
    u = np.frombuffer(text.encode("ascii") + bytes(_PAD), np.uint8)
    cuts = np.flatnonzero((u == ord(delim)) | (u == 10))
    if len(cuts) != m * width:
        return None
    cuts = cuts.reshape(m, width)
    if not (u[cuts[:, -1]] == 10).all():  # each line's last cut is its newline
        return None
    starts = np.empty_like(cuts)
    starts[:, 1:] = cuts[:, :-1] + 1
    starts[0, 0] = 0
    starts[1:, 0] = cuts[:-1, -1] + 1
    return [FieldColumn(text, u, starts[:, j].copy(), cuts[:, j].copy()) for j in range(width)]


def as_list(col: Sequence[Any]) -> list[Any]:
    """A column as a list (the strings of a :class:`FieldColumn`)."""
    return col.strings() if isinstance(col, FieldColumn) else list(col)
