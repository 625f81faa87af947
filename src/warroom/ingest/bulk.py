"""Column-at-a-time helpers for the bulk ingest path: times, numbers and content digests of a
whole batch of rows with NumPy and C-level loops instead of Python code per row.

Each helper gives, besides its values, which rows it is sure of; the rest go through the
row-by-row validator, which names every problem. For the rows it accepts, a helper gives exactly
what the row-by-row code gives (the tests compare them on random input).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

# -- times ---------------------------------------------------------------------------------------
# The canonical shape, YYYY-MM-DDTHH:MM:SSZ (20 characters): positions of its digits.
_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_PUNCT = ((4, ord("-")), (7, ord("-")), (10, ord("T")), (13, ord(":")), (16, ord(":")),
          (19, ord("Z")))
_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def iso_seconds(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(seconds, ok, blank)`` for a column of times: UTC epoch seconds (int64) where ``ok``
    (the text is ``YYYY-MM-DDTHH:MM:SSZ`` naming a real instant, which ``timeutil.parse_time``
    reads to the same number), ``blank`` where the text is empty. Other shapes are not ``ok``:
    the caller parses those one by one.

    Days since 1970-01-01 by the proleptic Gregorian calendar (H. Hinnant's days_from_civil):
    years start in March so that the leap day is the last day of the year.
    """
    n = len(texts)
    lens = np.fromiter(map(len, texts), np.int64, n)
    joined = "".join(texts)
    if joined.isascii() and (lens == 20).all():
        u = np.frombuffer(joined.encode("ascii"), np.uint8).reshape(n, 20)
    else:
        u = np.array(texts, dtype="U20").view(np.uint32).reshape(n, 20)
    d = u[:, _DIGITS].astype(np.int64) - 48
    ok = (lens == 20) & ((d >= 0) & (d <= 9)).all(axis=1)
    for i, c in _PUNCT:
        ok &= u[:, i] == c
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month = d[:, 4] * 10 + d[:, 5]
    day = d[:, 6] * 10 + d[:, 7]
    hour = d[:, 8] * 10 + d[:, 9]
    minute = d[:, 10] * 10 + d[:, 11]
    second = d[:, 12] * 10 + d[:, 13]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    dim = _DAYS_IN_MONTH[np.clip(month, 1, 12) - 1] + ((month == 2) & leap)
    ok &= ((year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= dim)
           & (hour <= 23) & (minute <= 59) & (second <= 59))
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146_097 + doe - 719_468
    secs = days * 86_400 + hour * 3600 + minute * 60 + second
    return np.where(ok, secs, 0), ok, lens == 0


# -- numbers -------------------------------------------------------------------------------------
def floats(texts: Sequence[str]) -> tuple[list[float], np.ndarray, np.ndarray]:
    """``(values, array, parsed)``: ``float(text)`` of each text (as the row-by-row path reads
    it), as a list and an array, NaN where that fails (``parsed`` False there, and for blanks)."""
    try:
        vals = list(map(float, texts))
        return vals, np.array(vals), np.ones(len(vals), bool)
    except ValueError:
        pass
    vals, parsed = [], []
    for t in texts:
        try:
            vals.append(float(t))
            parsed.append(True)
        except ValueError:
            vals.append(float("nan"))
            parsed.append(False)
    return vals, np.array(vals), np.array(parsed, bool)


# -- content digests -----------------------------------------------------------------------------
def content_digest(content: tuple[Any, ...]) -> str:
    """The digest of a report's content (every stored field but ``received_at``): BLAKE2b-128
    of the tuple's ``repr``, hex. Stored digests use this definition: never change it."""
    return hashlib.blake2b(repr(content).encode("utf-8", "surrogatepass"),
                           digest_size=16).hexdigest()


_NOT_DECIMAL = b"0123456789.-\n"  # bytes a column of plain decimals is made of
# Digits 1-9 as "1", a sign as a line start: leading zeros and dots are then a few substrings.
_SHAPE = bytes.maketrans(b"23456789-", b"11111111\n")


def repr_texts(texts: Sequence[str], n: int) -> list[str] | None:
    """``repr(float(t))`` for each text, computed on the whole column at once, or None when
    the column is not made of plain decimals that are safe to rewrite (then repr each float).

    Every text has been read by ``float`` already. A text of digits, one ``.`` and a leading
    ``-`` is a decimal ``-I.F``; without trailing zeros in ``F`` (but ``.0``), without a
    leading zero in ``I`` (but ``0``), with at most 15 significant digits (so no other decimal
    of as many digits names the same double: repr's shortest round trip is this one) and a
    magnitude repr writes without an exponent (1e-4 <= |x| < 1e16), it is what repr writes.
    """
    s = "\n" + "\n".join(texts) + "\n"
    if s.count(".") != n or s.encode("utf-8", "surrogatepass").translate(None, _NOT_DECIMAL):
        return None
    for _ in range(20):  # strip trailing zeros of the fractions (no integer part ends a text)
        if "0\n" not in s:
            break
        s = s.replace("0\n", "\n")
    else:
        return None
    s = s.replace(".\n", ".0\n")
    shape = s.encode().translate(_SHAPE)
    if b"\n00" in shape or b"\n01" in shape or b"\n." in shape or b"0.0000" in shape:
        return None  # a leading zero, a leading dot, or maybe below 1e-4: leave it to repr
    out = s[1:-1].split("\n")
    if len(out) != n or max(map(len, out)) > 16:  # <= 15 digits beside "." (and "-")
        return None
    return out


def _pieces(values: Sequence[Any], n: int, texts: Sequence[str] | None, plain: bool = False
            ) -> tuple[str, Sequence[str] | None, bool]:
    """How one column appears in the rows' reprs: ``(constant, None, _)`` when it is the same
    for every row, else ``("", pieces, quoted)`` with the text of each row (to be wrapped in
    quotes when ``quoted``)."""
    first = values[0]
    if first is None and values.count(None) == n:
        return "None", None, False
    if plain:  # known to be strings that need no escaping
        if values[-1] == first and values.count(first) == n:
            return f"'{first}'", None, False
        return "", values, True
    if isinstance(first, str):
        try:
            joined = "".join(values)  # (and a TypeError if any is not a string)
        except TypeError:
            joined = "'"
        # repr of a string without quotes, backslashes or unprintable characters is the
        # string in single quotes
        if "'" not in joined and "\\" not in joined and joined.isprintable():
            if (len(joined) == n * len(first) and values[-1] == first
                    and values.count(first) == n):
                return f"'{first}'", None, False
            return "", values, True
    elif texts is not None:
        pieces = repr_texts(texts, n)  # (repr of a float is costly: digits from the texts)
        if pieces is not None:
            return "", pieces, False
    return "", list(map(repr, values)), False


def content_digests(columns: Sequence[Sequence[Any]], n: int,
                    texts: dict[int, Sequence[str]] | None = None,
                    plain: frozenset[int] = frozenset()) -> list[str]:
    """:func:`content_digest` of ``n`` rows given as content columns (one sequence per field of
    the content tuple), built for the whole batch at once: every row's repr is assembled by
    C-level slice assignment and one join, then hashed. ``texts[j]``: the texts the floats of
    column ``j`` were read from, ``columns[j][i] == float(texts[j][i])`` for every row (their
    repr is taken from the texts when that is provably the same)."""
    if n == 0:
        return []
    statics: list[str] = []
    pieces: list[Sequence[str]] = []
    cur = "("
    for j, col in enumerate(columns):
        if j:
            cur += ", "
        const, vals, quoted = _pieces(col, n, (texts or {}).get(j), j in plain)
        if vals is None:
            cur += const
            continue
        statics.append(cur + ("'" if quoted else ""))
        pieces.append(vals)
        cur = "'" if quoted else ""
    statics.append(cur + ")\n")  # a repr never holds a raw newline: rows split on it
    template: list[str | None] = [statics[0]]
    for s in statics[1:]:
        template += [None, s]
    stride = len(template)
    flat = template * n
    for k, vals in enumerate(pieces):
        flat[2 * k + 1::stride] = vals
    reprs = "".join(flat).encode("utf-8", "surrogatepass").split(b"\n")  # type: ignore[arg-type]
    reprs.pop()
    # (a comprehension, not map over a partial: that merges its keywords into a dict per row)
    blake2b = hashlib.blake2b
    return [blake2b(r, digest_size=16).hexdigest() for r in reprs]
