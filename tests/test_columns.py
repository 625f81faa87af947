"""CSV fields kept as offsets into their block (``ingest.columns``): every bulk check gives,
for every row, what the same check gives on the field strings (and ``float``/``str.strip``)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from warroom.ingest.bulk import floats, iso_seconds
from warroom.ingest.columns import FieldColumn, columns_of, same_texts, shared, stripped

_FIELD_CHARS = st.sampled_from(list("0123456789.-+e _abxZT:\t") + ["\x1c", "\x0b", "1", "5"])
_field = st.one_of(st.text(_FIELD_CHARS, max_size=10), st.sampled_from(
    ["52.", ".5", "-.5", "-0", "-0.0", "0000052.125", "123456789012345", "1234567890123456",
     "-", ".", "5.5.5", "+5", "1_0", "1e5", "nan", "inf", " 7 ", "-85.10", "", "9" * 24,
     "0." + "0" * 22 + "1", "12345678901234.5", "0.000000000000001"]))


def _column(cells: list[str], where: int = 1, width: int = 3) -> FieldColumn:
    """Column ``where`` of a block of ``width`` fields per line, the cells in that column."""
    text = "".join("|".join(["x"] * where + [c] + ["y"] * (width - where - 1)) + "\n"
                   for c in cells)
    cols = columns_of(text, len(cells), width, "|")
    assert cols is not None
    return cols[where]


def _same_floats(a: list[float], b: list[float]) -> bool:
    return all((math.isnan(x) and math.isnan(y)) or (x == y and math.copysign(1, x)
                                                     == math.copysign(1, y))
               for x, y in zip(a, b, strict=True))


@settings(max_examples=500, deadline=None)
@given(st.lists(_field, min_size=1, max_size=20), st.integers(0, 2))
def test_floats_read_from_bytes_equal_float(cells: list[str], where: int) -> None:
    vals, arr, parsed = floats(_column(cells, where))
    want, want_arr, want_parsed = floats(cells)
    assert _same_floats(vals, want) and _same_floats(arr.tolist(), want_arr.tolist())
    assert parsed.tolist() == want_parsed.tolist()
    for c, v, p in zip(cells, vals, parsed.tolist(), strict=True):  # and float() itself
        try:
            f = float(c)
        except ValueError:
            assert not p and math.isnan(v)
        else:
            assert p and _same_floats([v], [f])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=20),
       st.integers(0, 6))
def test_short_decimals_are_exact(values: list[float], places: int) -> None:
    """Decimals as a file writes them (fixed places): the same doubles as float() reads."""
    cells = [f"{v:.{places}f}" for v in values]
    vals, _, parsed = floats(_column(cells))
    assert parsed.all() and _same_floats(vals, [float(c) for c in cells])


_time = st.one_of(st.sampled_from(["1945-04-16T03:00:00Z", "1945-02-29T00:00:00Z", "",
                                   "1945-04-16T03:00:00+00:00", "2000-02-29T23:59:59Z",
                                   "1945-4-16T03:00:00Z"]),
                  st.builds(lambda y, mo, d, h: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:00:00Z",
                            st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32),
                            st.integers(0, 25)))


@settings(max_examples=300, deadline=None)
@given(st.lists(_time, min_size=1, max_size=20))
def test_times_read_from_bytes_equal_the_strings(cells: list[str]) -> None:
    got = iso_seconds(_column(cells))
    want = iso_seconds(cells)
    for g, w in zip(got, want, strict=True):
        assert g.tolist() == w.tolist()


_word = st.one_of(st.sampled_from(["us9", "1bf", " us9", "us9 ", "\x1cus9", "us9\x0b", "",
                                   "a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]),
                  st.text(st.sampled_from(list("ab \t\x1f")), max_size=40))


@settings(max_examples=400, deadline=None)
@given(st.lists(_word, min_size=1, max_size=70))
def test_stripped_and_shared_equal_the_strings(cells: list[str]) -> None:
    col = _column(cells)
    assert list(col) == cells and [col[i] for i in range(len(cells))] == cells
    assert stripped(_column(cells)) == [c.strip() for c in cells]
    out = shared(_column(cells))
    assert list(out) == cells
    if len(set(cells)) <= 8 and max(map(len, cells)) <= 32:  # one object per distinct value
        assert len({id(s) for s in out}) == len(set(cells))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_word, _word), min_size=1, max_size=10))
def test_same_texts(pairs: list[tuple[str, str]]) -> None:
    a = [p for p, _ in pairs]
    b = [q for _, q in pairs]
    assert same_texts(_column(a), _column(b)) == (a == b)
    assert same_texts(_column(a), _column(a))


def test_lines_with_another_number_of_fields_are_not_split() -> None:
    assert columns_of("a|b|c\nd|e\n", 2, 3, "|") is None
    assert columns_of("a|b\nc|d|e|f\n", 2, 3, "|") is None
    assert columns_of("a|b|c|d\ne|f\n", 2, 3, "|") is None
    cols = columns_of("a|b|c\n|e|\n", 2, 3, "|")
    assert cols is not None and [list(c) for c in cols] == [["a", ""], ["b", "e"], ["c", ""]]


def test_an_empty_column_reads_as_nothing() -> None:
    col = FieldColumn("", np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64))
    vals, arr, parsed = floats(col)
    assert vals == [] and len(arr) == 0 and len(parsed) == 0
    assert stripped(col) == [] and list(shared(col)) == []


