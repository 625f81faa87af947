"""What actually happened: each force's arrival at each of its objectives, from the full record.

The full record is every report in the store, whenever received. A force reached an objective
at the earliest of

1. the ``observed_at`` of a ``reached`` or ``crossed`` report naming that objective (the
   record says so in words), else
2. the time its smoothed track (the Rauch-Tung-Striebel smoother over *all* its reports, see
   :mod:`warroom.estimate.track`) first passes the objective's km along the route,
   interpolated linearly between the smoothed points (one per report used).

Neither: the record shows no arrival (``at`` is None). The record ends at the latest
``observed_at`` of any report (``record_end``); a scenario's record is taken as complete, so
no arrival means none before ``record_end``: what happened after it is unknown (censored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from warroom.domain import Report, Scenario
from warroom.estimate.track import EstimateParams, estimate
from warroom.timeutil import parse_time


@dataclass(frozen=True)
class Arrival:
    """One force's actual arrival at one objective (``at``: UTC epoch seconds, or None)."""

    force: str
    objective: str
    at: int | None
    how: str  # "reached report" | "crossed report" | "smoothed track" | "none in the record"
    report: str | None = None  # source/report_id behind a report-based arrival


def record_end(reports: Mapping[str, Sequence[Report]]) -> int:
    """The end of the record: the latest ``observed_at`` of any report."""
    times = [r.observed_at for rs in reports.values() for r in rs]
    if not times:
        raise ValueError("no reports")
    return max(times)


def track_crossing(t: np.ndarray, s: np.ndarray, km: float) -> float | None:
    """First time the piecewise-linear track ``(t, s)`` reaches ``km`` (None if never)."""
    hit = np.flatnonzero(s >= km)
    if hit.size == 0:
        return None
    j = int(hit[0])
    if j == 0:
        return float(t[0])
    s0, s1, t0, t1 = s[j - 1], s[j], t[j - 1], t[j]
    return float(t0 + (t1 - t0) * (km - s0) / (s1 - s0))


def actual_arrivals(scenario: Scenario, reports: Mapping[str, Sequence[Report]],
                    params: EstimateParams | None = None) -> dict[tuple[str, str], Arrival]:
    """``(force, objective) -> Arrival`` for every force and each of its objectives."""
    everything = [r for rs in reports.values() for r in rs]
    end = max((r.received_at for r in everything), default=0)
    est = estimate(scenario, reports, end, params)
    out: dict[tuple[str, str], Arrival] = {}
    for fid, force in scenario.forces.items():
        events: dict[str, Report] = {}
        for r in sorted(reports.get(fid, ()), key=lambda r: (r.observed_at, r.source,
                                                             r.report_id)):
            if r.event in ("reached", "crossed") and r.target in force.objectives:
                events.setdefault(r.target, r)
        hist = est[fid].history
        t = np.array([parse_time(h["t"]) for h in hist], dtype=float)
        s = np.array([h["s_km"] for h in hist], dtype=float)
        for oid in force.objectives:
            if oid in events:
                r = events[oid]
                out[fid, oid] = Arrival(fid, oid, r.observed_at, f"{r.event} report",
                                        f"{r.source}/{r.report_id}")
                continue
            at = track_crossing(t, s, force.objective_km[oid]) if len(t) else None
            out[fid, oid] = (Arrival(fid, oid, round(at), "smoothed track") if at is not None
                             else Arrival(fid, oid, None, "none in the record"))
    return out
