"""Load and validate a scenario folder.

::

    my-scenario/
      scenario.toml     sides, forces, objectives, obstacles, lines, timetable
      world.geojson     the geometry: one FeatureCollection (RFC 7946, lon/lat)
      reports.csv       optional: reports loaded with the scenario

Every problem of a folder is collected and raised at once in :class:`ScenarioError`, each naming
the file, the entry (table index and id, or feature id), the field, what was found and what was
expected. A scenario is either a folder or the name of a built-in one (``berlin1945``).
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from warroom.domain import (
    Feature,
    Force,
    HaltOrder,
    Line,
    Objective,
    Obstacle,
    Scenario,
    Side,
    TimetableEntry,
)
from warroom.geo import Route, distance_km
from warroom.timeutil import TimeFormatError, parse_time

KINDS = ("route", "objective", "river", "line", "place", "base")
_TOP_KEYS = {"name", "perspective", "description", "sides", "forces", "objectives", "obstacles",
             "lines", "timetable", "alerts", "briefing", "forecast", "estimate"}
_FORCE_KEYS = {"id", "name", "side", "route", "supply_base", "halt_lines", "objectives",
               "description"}


class ScenarioError(Exception):
    """All problems found in a scenario folder, one clear line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def builtin_dir() -> Path:
    """The folder holding the built-in scenarios."""
    return Path(str(resources.files("warroom") / "scenarios"))


def builtin_names() -> list[str]:
    """Names of the built-in scenarios."""
    return sorted(p.name for p in builtin_dir().iterdir() if (p / "scenario.toml").is_file())


def resolve(ref: str | Path) -> Path:
    """A scenario folder from a path or a built-in name; ScenarioError if neither."""
    p = Path(ref).expanduser()
    if (p / "scenario.toml").is_file():
        return p.resolve()
    if p.name == "scenario.toml" and p.is_file():
        return p.parent.resolve()
    b = builtin_dir() / str(ref)
    if "/" not in str(ref) and (b / "scenario.toml").is_file():
        return b
    names = ", ".join(builtin_names()) or "none"
    raise ScenarioError([f"scenario {str(ref)!r}: no scenario.toml in that folder and no "
                         f"built-in scenario of that name (built-in: {names})"])


@dataclass
class _Ctx:
    problems: list[str] = field(default_factory=list)

    def err(self, where: str, msg: str) -> None:
        self.problems.append(f"{where}: {msg}")


def _where(table: str, i: int, entry: Any) -> str:
    ident = entry.get("id") or entry.get("feature") if isinstance(entry, dict) else None
    return f"scenario.toml {table}[{i}]" + (f" ({ident!r})" if ident else "")


def _time(ctx: _Ctx, where: str, value: Any) -> int | None:
    try:
        return parse_time(str(value))
    except TimeFormatError as e:
        ctx.err(where, f"{e}; expected an ISO 8601 time with a zone, e.g. 1945-04-15T00:00:00Z")
        return None


def _load_features(ctx: _Ctx, path: Path) -> dict[str, Feature]:
    feats: dict[str, Feature] = {}
    if not path.is_file():
        ctx.err(str(path.name), "missing; expected a GeoJSON FeatureCollection")
        return feats
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        ctx.err(path.name, f"not valid JSON ({e})")
        return feats
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        ctx.err(path.name, "expected a GeoJSON FeatureCollection at the top")
        return feats
    for i, f in enumerate(doc.get("features") or []):
        props = (f or {}).get("properties") or {}
        fid = props.get("id")
        where = f"world.geojson feature {fid!r}" if fid else f"world.geojson features[{i}]"
        if not isinstance(fid, str) or not fid:
            ctx.err(where, "properties.id is missing; expected a unique string id")
            continue
        if fid in feats:
            ctx.err(where, "duplicate id; expected ids to be unique")
            continue
        kind = props.get("kind")
        if kind not in KINDS:
            ctx.err(where, f"properties.kind is {kind!r}; expected one of {', '.join(KINDS)}")
            continue
        geom = (f or {}).get("geometry") or {}
        gtype = geom.get("type")
        coords = geom.get("coordinates")
        try:
            if gtype == "Point":
                pts = ((float(coords[0]), float(coords[1])),)
            elif gtype == "LineString":
                pts = tuple((float(c[0]), float(c[1])) for c in coords)
                if len(pts) < 2:
                    raise ValueError("fewer than two positions")
            else:
                ctx.err(where, f"geometry type {gtype!r}; expected Point or LineString")
                continue
        except (TypeError, ValueError, IndexError) as e:
            ctx.err(where, f"bad coordinates ({e}); expected [lon, lat] positions")
            continue
        bad = [p for p in pts if not (math.isfinite(p[0]) and math.isfinite(p[1])
                                      and -180 <= p[0] <= 180 and -90 <= p[1] <= 90)]
        if bad:
            ctx.err(where, f"position {list(bad[0])} is off the globe; expected [lon, lat] "
                    "with lon in [-180, 180] and lat in [-90, 90]")
            continue
        alt = props.get("alt_names") or []
        feats[fid] = Feature(
            id=fid, kind=kind, geometry=gtype, coords=pts,
            name=props.get("name"), alt_names=tuple(str(a) for a in alt),
            properties={k: v for k, v in props.items()
                        if k not in ("id", "kind", "name", "alt_names")},
        )
    return feats


def _feature(ctx: _Ctx, feats: dict[str, Feature], where: str, field_: str, fid: Any,
             geometry: str | tuple[str, ...]) -> Feature | None:
    wanted = (geometry,) if isinstance(geometry, str) else geometry
    what = " or ".join(wanted)
    if not isinstance(fid, str) or fid not in feats:
        ctx.err(f"{where}, {field_}", f"{fid!r} is not a feature in world.geojson; expected the "
                f"id of a {what} feature")
        return None
    f = feats[fid]
    if f.geometry not in wanted:
        ctx.err(f"{where}, {field_}", f"feature {fid!r} is a {f.geometry}; expected a {what}")
        return None
    return f


def objective_km(route: Route, obj: Objective, feat: Feature) -> float | None:
    """Where along ``route`` (km) the objective is reached: entering ``radius_km`` of a point,
    or the first crossing of a line; None if never."""
    if feat.geometry == "Point":
        lon, lat = feat.coords[0]
        return route.first_within(lat, lon, obj.radius_km)
    hits = route.crossings(feat.coords)
    return hits[0] if hits else None


def load(ref: str | Path) -> Scenario:
    """Load and validate a scenario folder (or built-in name). Raises ScenarioError."""
    folder = resolve(ref)
    ctx = _Ctx()
    toml_path = folder / "scenario.toml"
    try:
        cfg = tomllib.loads(toml_path.read_text(encoding="utf-8-sig"))
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError([f"scenario.toml: not valid TOML ({e})"]) from None
    except UnicodeDecodeError:
        raise ScenarioError(["scenario.toml: not UTF-8 text"]) from None
    feats = _load_features(ctx, folder / "world.geojson")

    for k in sorted(set(cfg) - _TOP_KEYS):
        ctx.err(f"scenario.toml, {k}",
                f"unknown key; expected one of {', '.join(sorted(_TOP_KEYS))}")
    name = cfg.get("name")
    if not isinstance(name, str) or not name.strip():
        ctx.err("scenario.toml, name", "missing; expected the scenario's name as a string")
        name = folder.name

    sides: dict[str, Side] = {}
    for i, s in enumerate(cfg.get("sides") or []):
        where = _where("sides", i, s)
        sid = s.get("id") if isinstance(s, dict) else None
        if not isinstance(sid, str) or not sid:
            ctx.err(where, "id is missing; expected a string")
            continue
        if sid in sides:
            ctx.err(where, f"duplicate side id {sid!r}")
            continue
        sides[sid] = Side(id=sid, name=str(s.get("name") or sid))
    if not sides:
        ctx.err("scenario.toml, sides", "none defined; expected at least one [[sides]] table")
    perspective = cfg.get("perspective")
    if perspective is not None and perspective not in sides:
        ctx.err("scenario.toml, perspective", f"{perspective!r} is not a side; expected one of "
                f"{', '.join(sides) or '(no sides)'}")

    objectives: dict[str, Objective] = {}
    for i, o in enumerate(cfg.get("objectives") or []):
        where = _where("objectives", i, o)
        oid = o.get("id")
        if not isinstance(oid, str) or not oid:
            ctx.err(where, "id is missing; expected a string")
            continue
        if oid in objectives:
            ctx.err(where, f"duplicate objective id {oid!r}")
            continue
        f = _feature(ctx, feats, where, "feature", o.get("feature", oid), ("Point", "LineString"))
        radius = o.get("radius_km", 0.0)
        if f is not None and f.geometry == "Point":
            if not isinstance(radius, int | float) or not radius > 0:
                ctx.err(f"{where}, radius_km", f"{radius!r}; expected a positive number of km "
                        "for a Point objective")
                continue
        if f is None:
            continue
        objectives[oid] = Objective(id=oid, name=str(o.get("name") or f.label), feature=f.id,
                                    radius_km=float(radius or 0.0))

    obstacles: list[Obstacle] = []
    for i, o in enumerate(cfg.get("obstacles") or []):
        where = _where("obstacles", i, o)
        f = _feature(ctx, feats, where, "feature", o.get("feature"), "LineString")
        d = o.get("delay_hours") or {}
        p50, p90 = d.get("p50"), d.get("p90")
        if not (isinstance(p50, int | float) and isinstance(p90, int | float)
                and 0 < p50 <= p90):
            ctx.err(f"{where}, delay_hours", f"{d!r}; expected {{ p50 = hours, p90 = hours }} "
                    "with 0 < p50 <= p90")
            continue
        if f is not None:
            obstacles.append(Obstacle(feature=f.id, name=str(o.get("name") or f.label),
                                      p50_h=float(p50), p90_h=float(p90)))

    lines: dict[str, Line] = {}
    for i, ln in enumerate(cfg.get("lines") or []):
        where = _where("lines", i, ln)
        f = _feature(ctx, feats, where, "feature", ln.get("feature"), "LineString")
        if f is not None:
            lines[f.id] = Line(feature=f.id, name=str(ln.get("name") or f.label))

    forces: dict[str, Force] = {}
    for i, fc in enumerate(cfg.get("forces") or []):
        where = _where("forces", i, fc)
        fid = fc.get("id")
        if not isinstance(fid, str) or not fid:
            ctx.err(where, "id is missing; expected a string")
            continue
        if fid in forces:
            ctx.err(where, f"duplicate force id {fid!r}")
            continue
        for k in sorted(set(fc) - _FORCE_KEYS):
            ctx.err(f"{where}, {k}",
                    f"unknown key; expected one of {', '.join(sorted(_FORCE_KEYS))}")
        side = fc.get("side")
        if side not in sides:
            ctx.err(f"{where}, side", f"{side!r} is not a side; expected one of "
                    f"{', '.join(sides) or '(no sides)'}")
        rf = _feature(ctx, feats, where, "route", fc.get("route"), "LineString")
        route = None
        if rf is not None:
            try:
                route = Route(rf.coords)
            except ValueError as e:
                ctx.err(f"{where}, route", f"feature {rf.id!r}: {e}")
        base = fc.get("supply_base")
        if base is not None:
            _feature(ctx, feats, where, "supply_base", base, "Point")
        halts: list[HaltOrder] = []
        for j, h in enumerate(fc.get("halt_lines") or []):
            hw = f"{where}, halt_lines[{j}]"
            if not isinstance(h, dict):
                ctx.err(hw, "expected a table { line = ..., p_obey = ..., from = ... }")
                continue
            if h.get("line") not in lines:
                ctx.err(hw, f"line {h.get('line')!r} is not a [[lines]] feature; expected one of "
                        f"{', '.join(lines) or '(no lines)'}")
                continue
            p = h.get("p_obey", 1.0)
            if not isinstance(p, int | float) or not 0 <= p <= 1:
                ctx.err(hw, f"p_obey {p!r}; expected a probability in [0, 1]")
                continue
            start = _time(ctx, f"{hw}, from", h["from"]) if "from" in h else None
            end = _time(ctx, f"{hw}, until", h["until"]) if "until" in h else None
            halts.append(HaltOrder(line=h["line"], p_obey=float(p), start=start, end=end))
        wanted = fc.get("objectives")
        if wanted is not None and not (isinstance(wanted, list)
                                       and all(isinstance(w, str) for w in wanted)):
            ctx.err(f"{where}, objectives", f"{wanted!r}; expected a list of objective ids")
            wanted = None
        if route is None or side not in sides:
            continue
        reached: dict[str, float] = {}
        for oid, obj in objectives.items():
            if wanted is not None and oid not in wanted:
                continue  # listed objectives only: thousands of races stay linear to load
            s = objective_km(route, obj, feats[obj.feature])
            if s is not None:
                reached[oid] = s
        if wanted is not None:
            for oid in wanted:
                if oid not in objectives:
                    ctx.err(f"{where}, objectives", f"{oid!r} is not an objective; expected one "
                            f"of {', '.join(objectives) or '(none)'}")
                elif oid not in reached:
                    ctx.err(f"{where}, objectives", _never_reaches(rf.id, route, objectives[oid],
                                                                   feats[objectives[oid].feature]))
            ids = tuple(o for o in wanted if o in reached)
        else:
            ids = tuple(sorted(reached, key=reached.__getitem__))
            if objectives and not ids:
                ctx.err(f"{where}, route", f"route {rf.id!r} reaches none of the objectives "
                        f"({', '.join(objectives)}); expected it to reach at least one")
        forces[fid] = Force(
            id=fid, name=str(fc.get("name") or fid), side=side, route_id=rf.id, route=route,
            supply_base=base, halt_lines=tuple(halts), objectives=ids,
            objective_km={o: reached[o] for o in ids},
        )

    timetable: list[TimetableEntry] = []
    for i, t in enumerate(cfg.get("timetable") or []):
        where = _where("timetable", i, t)
        f, o = t.get("force"), t.get("objective")
        if f not in forces:
            ctx.err(f"{where}, force", f"{f!r} is not a force; expected one of {', '.join(forces)}")
            continue
        if o not in objectives:
            ctx.err(f"{where}, objective", f"{o!r} is not an objective; expected one of "
                    f"{', '.join(objectives)}")
            continue
        if o not in forces[f].objectives:
            ctx.err(f"{where}, objective", f"force {f!r} does not race for {o!r}; its "
                    f"objectives are {', '.join(forces[f].objectives) or '(none)'}")
            continue
        when = _time(ctx, f"{where}, planned", t.get("planned", ""))
        if when is not None:
            timetable.append(TimetableEntry(force=f, objective=o, planned=when))

    if not forces and not any("forces" in p for p in ctx.problems):
        ctx.err("scenario.toml, forces", "none defined; expected at least one [[forces]] table")
    if ctx.problems:
        raise ScenarioError(ctx.problems)
    reports = folder / "reports.csv"
    return Scenario(
        name=name, path=folder, perspective=perspective, sides=sides, forces=forces,
        objectives=objectives, obstacles=obstacles, lines=lines, timetable=timetable,
        features=feats, reports_path=reports if reports.is_file() else None,
    )


def _never_reaches(route_id: str, route: Route, obj: Objective, feat: Feature) -> str:
    if feat.geometry == "Point":
        lon, lat = feat.coords[0]
        _, gap = route.project(lat, lon)
        return (f"route {route_id!r} never reaches objective {obj.id!r}: it passes "
                f"{gap:.1f} km from it, radius_km is {obj.radius_km:g}")
    d = min(float(distance_km(route.lat_dense, route.lon_dense, la, lo).min())
            for lo, la in feat.coords)
    return (f"route {route_id!r} never crosses objective line {obj.id!r} (closest approach "
            f"about {d:.1f} km)")
