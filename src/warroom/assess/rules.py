"""Alert rules: each a function of the situation (and the previous briefing) that returns
the conditions it watches, true or false, keyed ``(rule, force, target)``.

A rule is one function registered in ``RULES``; a new rule is a new function and one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from warroom.assess.config import AlertConfig
from warroom.situation import Situation
from warroom.timeutil import SECONDS_PER_DAY, parse_time, to_datetime


@dataclass
class Condition:
    """One watched condition: whether it holds now, with the words and the evidence."""

    rule: str
    force: str
    target: str
    active: bool
    value: float | None = None
    message: str = ""
    reports: list[str] = field(default_factory=list)
    severity: str = "warning"

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.force}:{self.target}"


Rule = Callable[[Situation, dict[str, Any] | None, AlertConfig], list[Condition]]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[name] = fn
        return fn
    return register


def _day(iso: str | None) -> str:
    return "?" if iso is None else to_datetime(parse_time(iso)).strftime("%-d %B %H:%MZ")


def _evidence(sit: Situation, force: str, n: int = 2) -> list[str]:
    used = [m["report"] for m in sit.estimates[force].measurements if m["used"]]
    return used[-n:]


def _ours(sit: Situation, force: str) -> bool:
    p = sit.scenario.perspective
    return p is not None and sit.scenario.forces[force].side == p


@rule("accelerating")
def accelerating(sit: Situation, prev: dict[str, Any] | None,
                 cfg: AlertConfig) -> list[Condition]:
    out = []
    for fid, est in sit.estimates.items():
        name = sit.scenario.forces[fid].name
        recent = [m for m in est.measurements if m["used"] and
                  parse_time(m["observed_at"]) >= sit.as_of - 2 * SECONDS_PER_DAY]
        z = est.accel_z
        p_pur = est.regime["pursuit"] if est.regime else 0.0
        moving = est.v_kmpd is not None and est.v_kmpd > 2.0
        hot = (z is not None and z >= cfg.accelerating_z) or (
            p_pur >= cfg.accelerating_p_pursuit and moving)
        active = hot and len(recent) >= cfg.accelerating_min_reports
        msg = ""
        if active:
            if z is not None and z >= cfg.accelerating_z:
                msg = (f"{name} is accelerating: {est.v_recent_kmpd:.0f} km/day over the last "
                       f"48 h against {est.v_before_kmpd:.0f} km/day before (z = {z:.1f})")
            else:
                msg = (f"{name} is in pursuit (P = {p_pur:.2f}) at {est.v_kmpd:.0f} "
                       f"± {est.v_sd_kmpd:.0f} km/day")
        out.append(Condition("accelerating", fid, "-", active, z if z is not None else p_pur,
                             msg, _evidence(sit, fid)))
    return out


@rule("timetable_threat")
def timetable_threat(sit: Situation, prev: dict[str, Any] | None,
                     cfg: AlertConfig) -> list[Condition]:
    out = []
    for fid, f in sit.forecast["forces"].items():
        if _ours(sit, fid):
            continue
        for oid, o in f["objectives"].items():
            p = o["p_before_timetable"]
            if p is None or o["reached_at"]:
                continue
            active = p >= cfg.timetable_threat_p
            speed = f["speed_kmpd"]
            msg = (f"{f['name']} may reach {sit.scenario.objectives[oid].name} before our "
                   f"timetable of {_day(o['planned'])} (P = {p:.2f}): "
                   f"{speed:.0f} km/day, {o['km_to_go']:.0f} km to go") if active else ""
            out.append(Condition("timetable_threat", fid, oid, active, p, msg,
                                 _evidence(sit, fid), "critical"))
    return out


@rule("eta_earlier")
def eta_earlier(sit: Situation, prev: dict[str, Any] | None,
                cfg: AlertConfig) -> list[Condition]:
    out: list[Condition] = []
    if prev is None:
        return out
    then = {f["id"]: f for f in prev["forces"]}  # the previous briefing's forces
    for fid, f in sit.forecast["forces"].items():
        before = then.get(fid)
        if before is None:
            continue
        for oid, o in f["objectives"].items():
            b = before["objectives"].get(oid)
            if b is None or o["reached_at"]:
                continue
            now_p50, then_p50 = o["eta"]["p50"], b["eta"]["p50"]
            if now_p50 is None:
                continue
            gain_h = ((parse_time(then_p50) if then_p50 else
                       sit.as_of + sit.forecast["horizon_days"] * SECONDS_PER_DAY)
                      - parse_time(now_p50)) / 3600
            active = gain_h >= cfg.eta_earlier_h
            msg = (f"{f['name']}'s median ETA at {sit.scenario.objectives[oid].name} moved "
                   f"{gain_h:.0f} h earlier since the last briefing: now {_day(now_p50)}"
                   + ("" if then_p50 else " (was beyond the horizon)")) if active else ""
            out.append(Condition("eta_earlier", fid, oid, active, gain_h, msg,
                                 _evidence(sit, fid)))
    return out


@rule("approaching_line")
def approaching_line(sit: Situation, prev: dict[str, Any] | None,
                     cfg: AlertConfig) -> list[Condition]:
    out = []
    for fid, f in sit.forecast["forces"].items():
        for lid, ln in (f.get("lines") or {}).items():
            p = ln["p_within_48h"]
            active = p >= cfg.approaching_line_p and ln["km_to_go"] > 0
            msg = (f"{f['name']} may reach the {sit.scenario.lines[lid].name} within 48 h "
                   f"(P = {p:.2f}), {ln['km_to_go']:.0f} km away; P(it halts there) = "
                   f"{ln['p_obey']:.2f}") if active else ""
            out.append(Condition("approaching_line", fid, lid, active, p, msg,
                                 _evidence(sit, fid)))
    return out


@rule("crossed_line")
def crossed_line(sit: Situation, prev: dict[str, Any] | None,
                 cfg: AlertConfig) -> list[Condition]:
    out = []
    for fid, force in sit.scenario.forces.items():
        est = sit.estimates[fid]
        for order in force.halt_lines:
            hits = force.route.crossings(sit.scenario.features[order.line].coords)
            if not hits:
                continue
            s_line = hits[0]
            beyond = []
            for m, r in zip(est.measurements, _by_id(sit, fid, est), strict=True):
                if r is None or r.observed_at < (order.start or -2**62):
                    continue
                if order.end is not None and r.observed_at >= order.end:
                    continue
                crossed = r.event == "crossed" and r.target == order.line
                past = m["used"] and m["z_km"] is not None and \
                    m["z_km"] > s_line + 2 * m["sigma_km"]
                if crossed or past:
                    beyond.append(m["report"])
            active = bool(beyond)
            msg = (f"{force.name} is reported beyond the {sit.scenario.lines[order.line].name}, "
                   f"where it was ordered to halt ({', '.join(beyond[-2:])})") if active else ""
            out.append(Condition("crossed_line", fid, order.line, active, float(len(beyond)),
                                 msg, beyond[-3:], "critical"))
    return out


def _by_id(sit: Situation, fid: str, est: Any) -> list[Any]:
    index = {f"{r.source}/{r.report_id}": r for r in sit.reports.get(fid, [])}
    return [index.get(m["report"]) for m in est.measurements]


@rule("silent")
def silent(sit: Situation, prev: dict[str, Any] | None, cfg: AlertConfig) -> list[Condition]:
    out = []
    for fid, force in sit.scenario.forces.items():
        reps = sit.reports.get(fid, [])
        if not reps:
            out.append(Condition("silent", fid, "-", True, None,
                                 f"No report about {force.name} yet", [], "info"))
            continue
        last = max(reps, key=lambda r: r.received_at)
        quiet_h = (sit.as_of - last.received_at) / 3600
        active = quiet_h > cfg.silent_after_h
        msg = (f"No report about {force.name} for {quiet_h:.0f} h (last: {last.source}/"
               f"{last.report_id}, received {_day(_iso(last.received_at))})") if active else ""
        out.append(Condition("silent", fid, "-", active, quiet_h, msg,
                             [f"{last.source}/{last.report_id}"], "info"))
    return out


def _iso(t: int) -> str:
    from warroom.timeutil import to_iso

    return to_iso(t) or ""


@rule("arrived")
def arrived(sit: Situation, prev: dict[str, Any] | None, cfg: AlertConfig) -> list[Condition]:
    out = []
    races = sit.forecast["races"]
    for fid, f in sit.forecast["forces"].items():
        for oid, o in f["objectives"].items():
            if not o["reached_at"]:
                continue
            race = races.get(oid, {})
            obj = sit.scenario.objectives[oid].name
            msg = f"{f['name']} reached {obj} ({_day(o['reached_at'])})"
            if "decided" in race and race["decided"]["winner"] == fid:
                msg += f": the race for {obj} is decided"
            out.append(Condition("arrived", fid, oid, True, 1.0, msg, _evidence(sit, fid),
                                 "critical" if not _ours(sit, fid) else "info"))
    return out


def evaluate(sit: Situation, prev: dict[str, Any] | None, cfg: AlertConfig) -> list[Condition]:
    """Every registered rule's conditions."""
    out: list[Condition] = []
    for fn in RULES.values():
        out.extend(fn(sit, prev, cfg))
    return out
