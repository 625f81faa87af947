"""The validator's fast path agrees with the full one on every input it accepts."""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

_value = st.one_of(st.none(), st.text(max_size=6), st.integers(-200, 200),
                   st.floats(allow_nan=True, allow_infinity=True), st.booleans())
_time = st.one_of(st.sampled_from(["1911-11-20T12:00:00Z", "1911-11-20T13:00:00+01:00",
                                   "1911-11-21T00:00:00Z", "1911-11-20T12:00:00", "noon", ""]),
                  _value)
_fields = st.fixed_dictionaries(
    {"report_id": st.sampled_from(["r1", " r2 ", ""]),
     "source": st.sampled_from(["fram", " fram", ""]),
     "force": st.sampled_from(["amundsen", "scott", "nobody", " scott "]),
     "observed_at": _time},
    optional={"received_at": _time,
              "lat": st.one_of(st.sampled_from(["-85.1", "95", "nan", " -85 "]), _value),
              "lon": st.one_of(st.sampled_from(["-167.5", "181", "inf"]), _value),
              "place": st.sampled_from(["Polheim", "Framheim", "Atlantis"]),
              "uncertainty_km": st.one_of(st.sampled_from(["3", "0", "-1"]), _value),
              "grade": st.sampled_from(["B2", "b2", "G7", " A1", ""]),
              "event": st.sampled_from(["position", "REACHED", "crossed", "halted", "x"]),
              "target": st.sampled_from(["pole", "mountains", "plateau-edge", "moon", ""]),
              "text": _value, "sources": _value, "unit": _value})


@settings(max_examples=600, deadline=None)
@given(_fields)
def test_fast_path_equals_full_validation(validator: Any, f: dict[str, Any]) -> None:
    try:
        fast = validator.fast(f)
    except (TypeError, ValueError, AttributeError):
        fast = None
    full, errs = validator.full(f)
    if fast is not None:
        assert errs == [] and full == fast
    row, row_errs = validator.row(f)
    assert (row, row_errs) == (full, errs)


# -- the bulk path: whole columns at once must give what row() gives row by row ---------------
from warroom.digest import content_digest, content_digests  # noqa: E402
from warroom.ingest.base import Batch  # noqa: E402
from warroom.ingest.bulk import iso_seconds  # noqa: E402
from warroom.ingest.columns import columns_of  # noqa: E402
from warroom.ingest.validate import Validator  # noqa: E402
from warroom.timeutil import TimeFormatError, parse_time  # noqa: E402

_canonical_time = st.builds(
    lambda y, mo, d, h, mi, s, z: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{z}",
    st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25),
    st.integers(0, 61), st.integers(0, 61), st.sampled_from(["Z", "Z", "z", "+00:00", "", "ZZ"]))
_cell_time = st.one_of(_canonical_time, st.sampled_from(
    ["", "1911-11-20T12:00:00Z", "1911-11-20T13:00:00+01:00", "1911-11-20T12:00:00",
     " 1911-11-20T12:00:00Z", "1911-11-20 12:00:00Z", "noon", "1911-11-20T12:00:00.5Z",
     "１９１１-11-20T12:00:00Z", "1911-11-20T12:00:00Z\n", "1900-02-29T00:00:00Z",
     "2000-02-29T23:59:59Z", "1945-02-29T12:00:00Z", "1944-02-29T12:00:00Z",
     "1945-04-31T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(_cell_time, min_size=1, max_size=30))
def test_bulk_times_equal_parse_time(texts: list[str]) -> None:
    secs, ok, blank = iso_seconds(texts)
    for t, s, k, b in zip(texts, secs.tolist(), ok.tolist(), blank.tolist(), strict=True):
        assert b == (t == "")
        if k:  # the bulk path only claims what parse_time reads to the same second
            assert s == parse_time(t)
        elif len(t) == 20 and t.endswith("Z") and t[10] == "T":
            try:  # a canonical-looking time the bulk path refuses is not a real instant
                parse_time(t)
                raise AssertionError(f"bulk refused {t!r}")
            except TimeFormatError:
                pass


_content_str = st.one_of(st.none(), st.text(max_size=8),
                         st.sampled_from(["plain", "it's", 'say "hi"', "back\\slash", "tab\t",
                                          "Küstrin", "\udcff", "new\nline", "B2"]))
_content_float = st.one_of(st.none(), st.floats(allow_nan=False, width=64),
                           st.sampled_from([52.0, 52.1, -0.0, 1e-05, 123.456]))
_content = st.tuples(_content_str, _content_str, _content_str, st.integers(-10**10, 10**10),
                     _content_float, _content_float, _content_str, _content_float, _content_str,
                     _content_str, _content_str, _content_str, _content_str, _content_str)


@settings(max_examples=300, deadline=None)
@given(st.lists(_content, min_size=1, max_size=8), st.booleans(), st.booleans())
def test_bulk_digests_equal_row_digests(rows: list[tuple], same: bool, filled: bool) -> None:
    if same:  # a column that is the same in every row takes a shortcut
        rows = [rows[0]] * len(rows)
    if filled:  # columns of strings only take another
        rows = [tuple("x" if v is None else v for v in r) for r in rows]
    cols = [list(c) for c in zip(*rows, strict=True)]
    assert content_digests(cols, len(rows)) == [content_digest(r) for r in rows]


_names = ["report_id", "source", "force", "observed_at", "received_at", "lat", "lon", "place",
          "uncertainty_km", "grade", "event", "target", "text", "sources", "unit"]
_cell = {
    "report_id": st.sampled_from(["r1", "r2", " r3 ", "", "r4"]),
    "source": st.sampled_from(["fram", " fram", "", "terra-nova"]),
    "force": st.sampled_from(["amundsen", "scott", "nobody", " scott ", ""]),
    "observed_at": _cell_time,
    "received_at": _cell_time,
    "lat": st.sampled_from(["-85.1", "-85.10", "95", "nan", " -85 ", "", "-85", "-1e1", "x",
                            "-0.00001", "-85,1", "-85.", "-.5", "-0", "+5", "1_0", "-", "-8-5",
                            "-85.1000000000000001", "-85.123456789012", "-85..1"]),
    "lon": st.sampled_from(["-167.5", "181", "inf", "", "-167.500", "170", "0.0", ".5", "0170",
                            "-167.5\x1c", "-167.5 "]),
    "place": st.sampled_from(["", "Polheim", "Framheim", "Atlantis", " Framheim "]),
    "uncertainty_km": st.sampled_from(["", "3", "0", "-1", "2.50", "nan", "x"]),
    "grade": st.sampled_from(["B2", "b2", "G7", " A1", "", "F6", "A1\x1f"]),
    "event": st.sampled_from(["", "position", "REACHED", "crossed", "halted", "x", "Halted"]),
    "target": st.sampled_from(["", "pole", "mountains", "plateau-edge", "moon", " pole "]),
    "text": st.sampled_from(["", "hello", " padded ", "it's", "new\nline", "\\"]),
    "sources": st.sampled_from(["", "a;b", " c "]),
    "unit": st.sampled_from(["", "4th Armd", "x"]),
}


_GOOD = {"report_id": "r1", "source": "fram", "force": "amundsen",
         "observed_at": "1911-11-20T12:00:00Z", "received_at": "1911-11-21T00:00:00Z",
         "lat": "-85.4", "lon": "-167.5", "grade": "B2", "place": "Framheim"}


@st.composite
def _batches(draw: Any) -> Batch:
    names = draw(st.sampled_from([_names, _names[:7] + ["grade"], _names[:4] + ["place"],
                                  _names[:7]]))
    n = draw(st.integers(1, 12))
    uniform = draw(st.booleans())  # mostly good rows, as in real files
    rows = []
    for _ in range(n):
        if uniform:
            row = [_GOOD.get(k, "") for k in names]
            k = draw(st.integers(0, len(names) - 1))
            row[k] = draw(_cell[names[k]])
            row[0] = draw(st.sampled_from(["r1", "r2", "r3", "r4", "r5"]))
        else:
            row = [draw(_cell[k]) for k in names]
        rows.append(row)
    cols = [list(c) for c in zip(*rows, strict=True)]
    return Batch(list(names), cols, list(range(2, n + 2)), ["raw"] * n)


class _RowByRow(Validator):
    def row(self, f: dict[str, Any]) -> Any:  # a subclass's own row(): the batch goes row-wise
        return super().row(f)


@settings(max_examples=400, deadline=None)
@given(_batches())
def test_bulk_validation_equals_row_by_row(validator: Any, b: Batch) -> None:
    bulk = validator.batch(b)
    slow = _RowByRow(validator.scenario).batch(b)
    assert list(bulk.index) == list(slow.index)
    assert [list(c) for c in bulk.columns] == [list(c) for c in slow.columns]
    assert bulk.bad == slow.bad
    for k, i in enumerate(slow.index):  # and both are what row() says of each row
        assert tuple(c[k] for c in slow.columns) == validator.row(b.fields(i))[0]


def _from_bytes(b: Batch) -> Batch | None:
    """The batch as the CSV reader hands over a plain ASCII block: columns of fields kept as
    offsets into the block (None if some cell could not be in such a block)."""
    if any(not c.isascii() or any(x in c for x in '|\n\r"\x00') for col in b.columns
           for c in col):
        return None
    text = "".join("|".join(col[i] for col in b.columns) + "\n" for i in range(len(b)))
    cols = columns_of(text, len(b), len(b.names), "|")
    assert cols is not None
    return Batch(list(b.names), list(cols), b.lines, b.raws)


@settings(max_examples=400, deadline=None)
@given(_batches())
def test_bulk_validation_of_fields_read_from_bytes_equals_row_by_row(validator: Any,
                                                                      b: Batch) -> None:
    fb = _from_bytes(b)
    assume(fb is not None)
    bulk = validator.batch(fb)
    slow = _RowByRow(validator.scenario).batch(b)
    assert list(bulk.index) == list(slow.index)
    assert [list(c) for c in bulk.columns] == [list(c) for c in slow.columns]
    assert bulk.bad == slow.bad
