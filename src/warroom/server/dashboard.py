"""The dashboard's data: the scenario's geometry and the situation as the map draws it.

The dashboard (``GET /``, static files under ``/static``) is plain HTML + ES modules with the
bundled Leaflet: no build step, no Node at install time, no internet at run time. Everything it
draws comes from two endpoints, both computed here as pure functions of the scenario and a
briefing (:mod:`warroom.brief`), so the page shows exactly what a briefing would:

``GET /dashboard/scenario``
    Static geometry ([lat, lon] pairs, degrees): each force's route, the objectives, the
    obstacles (rivers) and halt lines, plus sides, perspective, timetable, the map's bounds and
    the time range of the reports in the store (earliest ``observed_at``, latest
    ``received_at``; the time slider's ends).

``GET /dashboard/state?at=&set=``
    The briefing as of ``at`` (only reports received by then: the bitemporal rule), with
    alerts left out (the page keeps its own live list), and per force
    ``track_latlon`` (the smoothed track, [lat, lon, time]) and ``fan_latlon`` ({"24h": ...,
    "72h": ...}: the stretch of route between the p10 and p90 km of where the force may be,
    [lat, lon] pairs). ``set``: the forecast's what-if overrides (``us3.p_obey=0.1``; see
    :mod:`warroom.forecast.params`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from warroom.domain import Scenario
from warroom.geo import Route
from warroom.timeutil import to_iso

STATIC_DIR = Path(__file__).with_name("static")
FAN_POINTS = 24  # vertices of a fan's stretch of route (plus the route's own in between)


def _latlon(coords: Iterable[Iterable[float]]) -> list[list[float]]:
    """GeoJSON [lon, lat, ...] pairs -> [lat, lon] rounded to ~1 m."""
    return [[round(c[1], 5), round(c[0], 5)] for c in (list(p) for p in coords)]


def route_stretch(route: Route, s0: float, s1: float, n: int = FAN_POINTS) -> list[list[float]]:
    """[lat, lon] vertices of ``route`` from km ``s0`` to ``s1`` (clamped to the route): ``n``
    evenly spaced points plus every route vertex in between, so bends are kept."""
    a, b = sorted((float(s0), float(s1)))
    a, b = max(a, 0.0), min(b, route.length_km)
    if b < a:
        a = b
    inner = route.cum_km[(route.cum_km > a) & (route.cum_km < b)]
    s = np.unique(np.concatenate([np.linspace(a, b, n), inner]))
    lat, lon = route.point_at(s)
    return [[round(float(y), 5), round(float(x), 5)] for y, x in zip(lat, lon, strict=True)]


def scenario_geo(sc: Scenario, time_range: tuple[int | None, int | None],
                 brief_every_h: float) -> dict[str, Any]:
    """The scenario's geometry and facts for the dashboard (see the module docstring)."""
    lats: list[float] = []
    lons: list[float] = []
    forces = []
    for f in sc.forces.values():
        lats.extend(f.route.lat.tolist())
        lons.extend(f.route.lon.tolist())
        forces.append({
            "id": f.id, "name": f.name, "side": f.side,
            "ours": sc.perspective is not None and f.side == sc.perspective,
            "objectives": list(f.objectives),
            "halt_lines": [{"line": h.line, "p_obey": h.p_obey} for h in f.halt_lines],
            "route": [[round(float(y), 5), round(float(x), 5)]
                      for y, x in zip(f.route.lat, f.route.lon, strict=True)],
        })
    objectives = []
    for o in sc.objectives.values():
        feat = sc.features[o.feature]
        objectives.append({"id": o.id, "name": o.name, "geometry": feat.geometry,
                           "coords": _latlon(feat.coords), "radius_km": o.radius_km})
    obstacles = [{"id": ob.feature, "name": ob.name,
                  "coords": _latlon(sc.features[ob.feature].coords)}
                 for ob in sc.obstacles if sc.features[ob.feature].geometry == "LineString"]
    lines = [{"id": lid, "name": ln.name, "coords": _latlon(sc.features[ln.feature].coords)}
             for lid, ln in sc.lines.items()
             if sc.features[ln.feature].geometry == "LineString"]
    first, last = time_range
    return {
        "scenario": sc.name, "perspective": sc.perspective,
        "sides": {s.id: s.name for s in sc.sides.values()},
        "forces": forces, "objectives": objectives, "obstacles": obstacles, "lines": lines,
        "timetable": [{"force": t.force, "objective": t.objective, "planned": to_iso(t.planned)}
                      for t in sc.timetable],
        "bounds": ([[min(lats), min(lons)], [max(lats), max(lons)]] if lats else None),
        "time_range": {"first": to_iso(first), "last": to_iso(last)},
        "brief_every_h": brief_every_h,
    }


def map_state(sc: Scenario, briefing: dict[str, Any]) -> dict[str, Any]:
    """``briefing`` with each force's track and fans as [lat, lon] on its route, and without
    alerts (see the module docstring)."""
    out = {k: v for k, v in briefing.items() if k != "alerts"}
    forces = []
    for f in briefing["forces"]:
        route = sc.forces[f["id"]].route
        track = f.get("track") or []
        if track:
            lat, lon = route.point_at([s for _, s in track])
            track_ll = [[round(float(y), 5), round(float(x), 5), t]
                        for y, x, (t, _) in zip(np.atleast_1d(lat), np.atleast_1d(lon), track,
                                                strict=True)]
        else:
            track_ll = []
        fans = {label: route_stretch(route, q["p10"], q["p90"])
                for label, q in (f.get("fan") or {}).items()
                if q and q.get("p10") is not None and q.get("p90") is not None}
        forces.append({**f, "track_latlon": track_ll, "fan_latlon": fans})
    out["forces"] = forces
    return out
