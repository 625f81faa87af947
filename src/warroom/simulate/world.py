"""The geography of a synthetic race: a theatre of about 400 x 450 km (lon 8-13.5 E,
lat 49-53 N, on the WGS-84 ellipsoid like every scenario).

- Rivers run north-south at about 9.8, 10.7 and 11.6 E (wiggly ``river`` LineStrings
  spanning the theatre); every route that passes their longitude crosses them and waits there.
- Halt lines run north-south at about 10.3 E (``line-west``) and 11.2 E (``line-east``); some
  forces are ordered to stop at one of them for a while.
- A *hidden line* at about 12.05 E, shortly before the objectives, exists only in the truth
  (not in the scenario): the mis-specified world halts forces there without the forecast
  being told, when they seemed all but there.
- Races: forces come in groups of ``per_race``; each group races for its own objective (a
  Point at 12.4-13.4 E), each force starting somewhere at 8-9.5 E on its own route (a
  polyline with jittered waypoints, 200-400 km long).

Routes of different races may overlap on the map: each force's reports are projected onto its
own route only, so they do not interfere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RIVERS = (  # id, name, base longitude, delay p50 h, delay p90 h
    ("river-a", "Alder", 9.8, 12.0, 48.0),
    ("river-b", "Birch", 10.7, 24.0, 96.0),
    ("river-c", "Cedar", 11.6, 8.0, 36.0),
)
HALT_LINES = (("line-west", "West line", 10.3), ("line-east", "East line", 11.2))
HIDDEN_LINE = ("line-hidden", "Hidden line", 12.05)
LAT_SPAN = (49.0, 53.0)  # the lines span the theatre (short lines: crossings stay cheap)


@dataclass
class ForceSpec:
    id: str
    name: str
    side: str
    race: int
    route: list[tuple[float, float]]  # (lon, lat)
    objective: str
    halt: tuple[str, float, float, float] | None = None  # line, p_obey, from day, until day


@dataclass
class World:
    """Features (GeoJSON dicts), forces, objectives and the obstacles' delays."""

    features: list[dict]
    forces: list[ForceSpec]
    objectives: dict[str, tuple[str, str, float]]  # id -> (name, feature id, radius km)
    obstacles: list[tuple[str, str, float, float]] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)
    hidden: list[tuple[float, float]] = field(default_factory=list)  # the hidden line's coords


def _feature(fid: str, kind: str, gtype: str, coords: list, name: str) -> dict:
    return {"type": "Feature", "properties": {"id": fid, "kind": kind, "name": name},
            "geometry": {"type": gtype, "coordinates": coords}}


def _meridian(rng: np.random.Generator, lon: float) -> list[tuple[float, float]]:
    """A wiggly north-south line near ``lon`` across the theatre."""
    lats = np.arange(LAT_SPAN[0], LAT_SPAN[1] + 1e-9, 0.5)
    lons = lon + rng.uniform(-0.25, 0.25, lats.size)
    return [(round(float(a), 4), round(float(b), 4)) for a, b in zip(lons, lats, strict=True)]


def build_world(rng: np.random.Generator, n_forces: int, per_race: int,
                halt_share: float = 0.5, days: float = 45.0, rivers: int = 3) -> World:
    """The geography and the forces (ids ``f0001``...; races ``r001``...); ``rivers``: how
    many of the three rivers (west first) to draw."""
    feats: list[dict] = []
    obstacles = []
    for k, (fid, name, lon, p50, p90) in enumerate(RIVERS):
        line = _meridian(rng, lon)  # drawn even when left out: the rest stays the same
        if k < rivers:
            feats.append(_feature(fid, "river", "LineString", line, name))
            obstacles.append((fid, name, p50, p90))
    lines = []
    for fid, name, lon in HALT_LINES:
        feats.append(_feature(fid, "line", "LineString", _meridian(rng, lon), name))
        lines.append((fid, name))
    hidden = _meridian(rng, HIDDEN_LINE[2])
    n_races = -(-n_forces // per_race)
    width = max(3, len(str(n_forces)))
    objectives: dict[str, tuple[str, str, float]] = {}
    forces: list[ForceSpec] = []
    for g in range(n_races):
        oid = f"r{g + 1:0{max(3, len(str(n_races)))}d}"
        olon, olat = float(rng.uniform(12.4, 13.4)), float(rng.uniform(50.0, 52.0))
        feats.append(_feature(oid, "objective", "Point", [round(olon, 4), round(olat, 4)],
                              f"Objective {oid}"))
        feats.append(_feature(f"{oid}-town", "place", "Point", [round(olon, 4), round(olat, 4)],
                              f"Town {oid}"))
        objectives[oid] = (f"Objective {oid}", oid, 10.0)
        for _ in range(min(per_race, n_forces - len(forces))):
            k = len(forces) + 1
            fid = f"f{k:0{width}d}"
            slon, slat = float(rng.uniform(8.0, 9.5)), float(rng.uniform(49.5, 52.5))
            frac = np.array([0.25, 0.5, 0.75])
            wl = slon + frac * (olon - slon)
            wa = np.clip(slat + frac * (olat - slat) + rng.uniform(-0.25, 0.25, 3), 49.2, 52.8)
            route = [(slon, slat), *zip(wl.tolist(), wa.tolist(), strict=True), (olon, olat)]
            route = [(round(a, 4), round(b, 4)) for a, b in route]
            feats.append(_feature(f"{fid}-route", "route", "LineString", route,
                                  f"Route of {fid}"))
            halt = None
            if rng.uniform() < halt_share:
                line = lines[int(rng.integers(len(lines)))][0]
                start = float(rng.uniform(0.0, days / 4))
                until = np.inf if rng.uniform() < 0.15 else start + float(rng.uniform(3, 10))
                halt = (line, round(float(rng.uniform(0.2, 0.8)), 2), round(start, 3),
                        float(round(until, 3)))
            forces.append(ForceSpec(fid, f"Force {fid}", f"side-{len(forces) % per_race + 1}",
                                    g, route, oid, halt))
    return World(feats, forces, objectives, obstacles, lines, hidden)
