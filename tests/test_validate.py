"""The validator's fast path agrees with the full one on every input it accepts."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
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
