"""Column-at-a-time helpers for the bulk ingest path: times and numbers of a whole batch of
rows with NumPy and C-level loops instead of Python code per row.

Each helper gives, besides its values, which rows it is sure of; the rest go through the
row-by-row validator, which names every problem. For the rows it accepts, a helper gives exactly
what the row-by-row code gives (the tests compare them on random input). A column may be a list
of strings or a :class:`~warroom.ingest.columns.FieldColumn`, whose bytes are read directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from warroom.ingest.columns import FieldColumn

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
    u: np.ndarray | None = None
    if isinstance(texts, FieldColumn):
        lens = texts.lengths()
        if n and (lens == 20).all():
            u = texts.padded(20)
        else:
            texts = texts.strings()
    if u is None:
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
    if isinstance(texts, FieldColumn):
        return _decimal_floats(texts)
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


_MAX_DECIMAL = 24  # longest field read as a plain decimal
_POW10 = np.array([float(10**k) for k in range(_MAX_DECIMAL + 1)])  # exact up to 1e22


def _decimal_floats(col: FieldColumn) -> tuple[list[float], np.ndarray, np.ndarray]:
    """:func:`floats` of CSV fields read from their bytes. A field ``-?D*.?D*`` with 1 to 15
    digits is the integer ``m`` of its digits over ``10**k`` (``k`` digits after the point):
    both are exact doubles (``m < 2**53``, ``k <= 22``), so the one division is correctly
    rounded, which is what ``float`` gives for the decimal (Clinger's fast path). Other fields
    are read by ``float`` one by one."""
    n = len(col)
    if n == 0:
        return [], np.zeros(0), np.zeros(0, bool)
    width = int(col.lengths().max())
    if width > _MAX_DECIMAL:
        return floats(col.strings())
    g = col.padded(max(width, 1))  # (n, width) bytes, zero past each field's end
    d = g.astype(np.int64) - 48
    digit = (d >= 0) & (d <= 9)
    dot = g == 46
    minus = g[:, 0] == 45
    allowed = digit | dot | (g == 0)
    allowed[:, 0] |= minus  # a sign, first only
    ndigits = digit.sum(axis=1)
    plain = (allowed.all(axis=1) & (dot.sum(axis=1) <= 1) & (ndigits >= 1)
             & (ndigits <= 15))
    k = (digit & (np.cumsum(dot, axis=1) > 0)).sum(axis=1)
    m = np.zeros(n, np.int64)
    for c in range(g.shape[1]):
        m = np.where(digit[:, c], m * 10 + d[:, c], m)
    arr = m / _POW10[k]
    arr = np.where(minus, -arr, arr)
    parsed = plain.copy()
    for i in np.flatnonzero(~plain).tolist():
        try:
            arr[i] = float(col[i])
            parsed[i] = True
        except ValueError:
            arr[i] = np.nan
    return arr.tolist(), arr, parsed
