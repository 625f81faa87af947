"""Briefings: the situation as data, what changed since the last one, and the schedule.

``build_briefing`` is a pure function of the situation, the alerts and the previous
briefing; it returns one JSON-serialisable dict (version 1; the renderers in
:mod:`warroom.publish` turn it into Markdown, HTML, PDF). Its shape:

``version, scenario, perspective, as_of, slot, late, previous, headline[], forces[]`` (each:
``id, name, side, ours, last_report, position, speed_kmpd, speed_sd_kmpd, trend, regime,
objectives{}, track[[t, s_km]], fan{24h, 72h}, flags[]``), ``races, timetable,
alerts{fired, resolved, active}, changes[], horizon_days, samples, seed``.

``due_slots`` is the schedule: briefings on a fixed grid (every 6 h from 00:00 UTC by
default); after downtime every missed slot is still due, marked late, never skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from warroom.assess.lifecycle import Alert, Transition
from warroom.forecast.summary import headline
from warroom.situation import Situation
from warroom.timeutil import format_age, to_iso

VERSION = 1


def due_slots(last: int | None, now: int, every_h: float = 6.0, offset_h: float = 0.0,
              grace_s: int = 900, first: int | None = None) -> list[tuple[int, bool]]:
    """Slots (epoch s) due after the last briefing ``last`` up to ``now``, each with whether
    it is late (written more than ``grace_s`` after its slot). Without a last briefing, only
    the latest slot is due (or every slot from ``first`` on, if given)."""
    step = round(every_h * 3600)
    off = round(offset_h * 3600)
    latest = (now - off) // step * step + off
    if last is None:
        start = latest if first is None else -((off - first) // step) * step + off
    else:
        start = (last - off) // step * step + off + step
    return [(s, now - s > grace_s) for s in range(start, latest + 1, step)]


def build_briefing(sit: Situation, alerts: dict[str, Alert], transitions: Iterable[Transition],
                   previous: dict[str, Any] | None = None, slot: int | None = None,
                   late: bool = False) -> dict[str, Any]:
    """The briefing of a situation. ``transitions``: alert changes since ``previous``."""
    sc = sit.scenario
    fc = sit.forecast
    forces = []
    for fid, force in sc.forces.items():
        est = sit.estimates[fid]
        f = fc["forces"][fid]
        known = sit.reports.get(fid, [])
        last = max(known, key=lambda r: (r.observed_at, r.received_at)) if known else None
        objs = {}
        for oid, o in f["objectives"].items():
            race = fc["races"].get(oid, {})
            objs[oid] = {"name": sc.objectives[oid].name, **o,
                         "p_first": race.get(fid)}
        forces.append({
            "id": fid, "name": force.name, "side": force.side,
            "ours": sc.perspective is not None and force.side == sc.perspective,
            "last_report": None if last is None else {
                "source": last.source, "report_id": last.report_id, "grade": last.grade,
                "observed_at": to_iso(last.observed_at), "received_at": to_iso(last.received_at),
                "age_h": round((sit.as_of - last.observed_at) / 3600, 1),
                "age": format_age(sit.as_of - last.observed_at), "place": last.place,
                "event": last.event},
            "position": None if est.s_km is None else {
                "lat": round(est.lat, 5), "lon": round(est.lon, 5), "place": est.place,
                "place_km": round(est.place_km, 1) if est.place_km is not None else None,
                "s_km": round(est.s_km, 1), "s_sd_km": round(est.s_sd_km or 0.0, 1)},
            "speed_kmpd": None if est.v_kmpd is None else round(est.v_kmpd, 1),
            "speed_sd_kmpd": None if est.v_sd_kmpd is None else round(est.v_sd_kmpd, 1),
            "trend": est.trend,
            "regime": None if est.regime is None else {k: round(v, 3)
                                                       for k, v in est.regime.items()},
            "objectives": objs,
            "track": [[h["t"], h["s_km"]] for h in est.history],
            "fan": f.get("fan"),
            "flags": [fl.as_dict() for fl in est.flags],
        })
    fired, resolved = [], []
    for t in transitions:
        if t.alert.suppressed:
            continue
        (fired if t.to == "firing" else resolved).append(t.alert.as_dict())
    active = [a.as_dict() for a in alerts.values() if a.state == "firing"]
    b = {
        "version": VERSION, "scenario": sc.name, "perspective": sc.perspective,
        "as_of": to_iso(sit.as_of), "slot": to_iso(slot if slot is not None else sit.as_of),
        "late": late, "previous": previous["as_of"] if previous else None,
        "headline": headline(sc, fc), "forces": forces, "races": fc["races"],
        "timetable": [{"force": t.force, "objective": t.objective, "planned": to_iso(t.planned)}
                      for t in sc.timetable],
        "alerts": {"fired": fired, "resolved": resolved,
                   "active": sorted(active, key=lambda a: a["id"])},
        "changes": [],
        "horizon_days": fc["horizon_days"], "samples": fc["samples"], "seed": fc["seed"],
    }
    b["changes"] = changes(sit, b, previous)
    return b


def changes(sit: Situation, now: dict[str, Any], before: dict[str, Any] | None) -> list[str]:
    """What changed since the previous briefing, in words."""
    if before is None:
        return []
    out: list[str] = []
    prev = {f["id"]: f for f in before["forces"]}
    sc = sit.scenario
    for f in now["forces"]:
        p = prev.get(f["id"])
        name = f["name"]
        if p is None:
            continue
        for oid, o in f["objectives"].items():
            po = p["objectives"].get(oid, {})
            if o["reached_at"] and not po.get("reached_at"):
                out.append(f"{name}: reached {o['name']}")
        s_now = f["position"]["s_km"] if f["position"] else None
        s_then = p["position"]["s_km"] if p["position"] else None
        if s_now is not None and s_then is not None and s_now > s_then:
            force = sc.forces[f["id"]]
            for ob in sc.obstacles:
                for s in force.route.crossings(sc.features[ob.feature].coords):
                    if s_then < s <= s_now:
                        out.append(f"{name}: crossed the {ob.name}")
            out.append(f"{name}: advanced {s_now - s_then:.0f} km")
        elif s_now is not None and s_then is None:
            out.append(f"{name}: first reports: {f['position']['place'] or 'on its axis'}")
        v, pv = f["speed_kmpd"], p["speed_kmpd"]
        if v is not None and pv is not None and abs(v - pv) >= max(10.0, 0.3 * abs(pv)):
            word = "up" if v > pv else "down"
            out.append(f"{name}: speed {word} from {pv:.0f} to {v:.0f} km/day")
        if f["trend"] != p["trend"] and f["trend"] != "unknown":
            out.append(f"{name}: now {f['trend']} (was {p['trend']})")
        new_flags = [fl for fl in f["flags"] if fl not in p["flags"]]
        if new_flags:
            kinds = sorted({fl["reason"].replace("_", " ") for fl in new_flags})
            out.append(f"{name}: {len(new_flags)} report(s) disregarded ({', '.join(kinds)})")
    for oid, race in now["races"].items():
        old = before.get("races", {}).get(oid)
        lead = _leader(race)
        if old is not None and lead and lead != _leader(old):
            obj = sc.objectives[oid].name
            out.append(f"{sc.forces[lead].name} now leads the race for {obj} "
                       f"(P = {race[lead]:.2f})")
    return out


def _leader(race: dict[str, Any]) -> str | None:
    odds = {k: v for k, v in race.items() if k not in ("nobody", "decided")}
    if not odds:
        return None
    lead = max(odds, key=odds.__getitem__)
    return lead if odds[lead] > race.get("nobody", 0.0) else None
