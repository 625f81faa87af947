"""The cut-off times of a backtest: a regular grid of UTC times.

Cut-offs fall on whole multiples of the step counted from 1970-01-01T00:00Z (every 6 h: 00,
06, 12 and 18 UTC, as the briefing slots), from the first at or after ``start`` to the last
at or before ``end``. Times are UTC epoch seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from warroom.domain import Report
from warroom.timeutil import SECONDS_PER_DAY


def cutoff_grid(start: int, end: int, every_s: int) -> list[int]:
    """Cut-offs every ``every_s`` seconds (aligned to multiples of it) in ``[start, end]``."""
    if every_s <= 0:
        raise ValueError("the cut-off step must be positive")
    first = -(-start // every_s) * every_s  # ceiling
    return list(range(first, end + 1, every_s))


def default_span(reports: Mapping[str, Sequence[Report]]) -> tuple[int, int]:
    """``(start, end)`` when the user gives none: the day (00:00 UTC) of the first report
    observed, and the last report received (as ``warroom replay``)."""
    every = [r for rs in reports.values() for r in rs]
    if not every:
        raise ValueError("no reports")
    start = min(r.observed_at for r in every) // SECONDS_PER_DAY * SECONDS_PER_DAY
    return start, max(r.received_at for r in every)
