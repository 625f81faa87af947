"""Each force as of a time: last report, where it is, how fast, km along its route, km to go.

A pure function of the scenario, the reports known as of T (``received_at <= T``) and their
estimate (:mod:`warroom.estimate.track`). "Where it is" is the last known state: the estimate
at the last report used, with the report's age beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from warroom.domain import Report, Scenario
from warroom.estimate.track import ForceEstimate
from warroom.geo import distance_km
from warroom.timeutil import format_age, to_iso


def force_status(
    scenario: Scenario, reports: Mapping[str, Sequence[Report]],
    estimates: Mapping[str, ForceEstimate], as_of: int,
) -> list[dict[str, Any]]:
    """One JSON-ready dict per force, in scenario order."""
    out: list[dict[str, Any]] = []
    for force in scenario.forces.values():
        known = [r for r in reports.get(force.id, ()) if r.received_at <= as_of]
        est = estimates[force.id]
        row: dict[str, Any] = {
            "force": force.id, "name": force.name, "side": force.side,
            "reports": len(known), "last_report": None, "position": None, "objectives": {},
        }
        if known:
            last = max(known, key=lambda r: (r.observed_at, r.received_at))
            row["last_report"] = {
                "source": last.source, "report_id": last.report_id, "grade": last.grade,
                "event": last.event, "place": last.place, "observed_at": to_iso(last.observed_at),
                "received_at": to_iso(last.received_at),
                "age_h": round((as_of - last.observed_at) / 3600, 1),
                "age": format_age(as_of - last.observed_at),
            }
        e = est.as_dict()
        row["estimate"] = {k: e[k] for k in ("s_km", "s_sd_km", "speed_kmpd", "speed_sd_kmpd",
                                             "regime", "trend", "last_report_at", "now",
                                             "acceleration", "used")}
        row["flags"] = e["flags"]
        if est.s_km is not None:
            row["position"] = {
                "lat": e["position"]["lat"], "lon": e["position"]["lon"],
                "place": est.place, "place_km": e["position"]["place_km"],
                "s_km": round(est.s_km, 1),
                "as_of": to_iso(est.last_report_at),
            }
        reached = {r.target: r for r in known if r.event == "reached" and r.target}
        for oid in force.objectives:
            obj = scenario.objectives[oid]
            obj_s = force.objective_km[oid]
            entry: dict[str, Any] = {"name": obj.name, "at_km": round(obj_s, 1),
                                     "km_to_go": None, "km_direct": None, "reached_at": None}
            feat = scenario.features[obj.feature]
            if oid in reached:
                entry["reached_at"] = to_iso(reached[oid].observed_at)
                entry["km_to_go"] = 0.0
            elif est.s_km is not None:
                entry["km_to_go"] = round(max(0.0, obj_s - est.s_km), 1)
                if est.s_km >= obj_s:
                    entry["reached_at"] = to_iso(est.last_report_at)  # the track is past it
            if est.lat is not None and feat.geometry == "Point":
                lon, lat = feat.coords[0]
                entry["km_direct"] = round(float(distance_km(est.lat, est.lon, lat, lon)), 1)
            row["objectives"][oid] = entry
        out.append(row)
    return out
