"""Each force as of a time: last report, where it is, km along its route, km to go.

A pure function of the scenario and the reports known as of T (``received_at <= T``). Until the
estimator runs, "where it is" is the latest positioned report (by ``observed_at``), projected
onto the force's route.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from warroom.domain import Report, Scenario
from warroom.gazetteer import Gazetteer
from warroom.timeutil import format_age, to_iso


def force_status(
    scenario: Scenario, reports: Mapping[str, Sequence[Report]], as_of: int,
) -> list[dict[str, Any]]:
    """One JSON-ready dict per force, in scenario order."""
    gaz = Gazetteer(scenario.places)
    out: list[dict[str, Any]] = []
    for force in scenario.forces.values():
        known = [r for r in reports.get(force.id, ()) if r.received_at <= as_of]
        row: dict[str, Any] = {
            "force": force.id, "name": force.name, "side": force.side,
            "reports": len(known), "last_report": None, "position": None, "objectives": {},
        }
        if known:
            last = max(known, key=lambda r: (r.observed_at, r.received_at))
            row["last_report"] = {
                "source": last.source, "report_id": last.report_id, "grade": last.grade,
                "event": last.event, "observed_at": to_iso(last.observed_at),
                "received_at": to_iso(last.received_at),
                "age_h": round((as_of - last.observed_at) / 3600, 1),
                "age": format_age(as_of - last.observed_at),
            }
        positioned = [r for r in known if r.lat is not None and r.lon is not None]
        s_now = None
        if positioned:
            p = max(positioned, key=lambda r: (r.observed_at, r.received_at))
            s_now, xt = force.route.project(p.lat, p.lon)
            near = gaz.nearest(p.lat, p.lon)
            row["position"] = {
                "lat": round(p.lat, 5), "lon": round(p.lon, 5),
                "place": near[0].label if near else None,
                "place_km": round(near[1], 1) if near else None,
                "s_km": round(s_now, 1), "cross_track_km": round(xt, 1),
                "report": f"{p.source}/{p.report_id}", "observed_at": to_iso(p.observed_at),
            }
        reached = {r.target: r for r in known if r.event == "reached" and r.target}
        for oid in force.objectives:
            obj_s = force.objective_km[oid]
            entry: dict[str, Any] = {"name": scenario.objectives[oid].name,
                                     "at_km": round(obj_s, 1), "km_to_go": None,
                                     "reached_at": None}
            if oid in reached:
                entry["reached_at"] = to_iso(reached[oid].observed_at)
                entry["km_to_go"] = 0.0
            elif s_now is not None:
                entry["km_to_go"] = round(max(0.0, obj_s - s_now), 1)
            row["objectives"][oid] = entry
        out.append(row)
    return out
