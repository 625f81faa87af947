"""What lies ahead of each force: its start state and the barriers along its route.

A pure function of the scenario, the estimates and the reports known as of T. Barriers are
sorted by ``s`` (km along the route): objectives (record the arrival), obstacles (wait a
log-normal delay, unless a report says the force already crossed), halt lines (stop with
probability ``p_obey`` if reached between the order's ``from`` and ``until``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from warroom.domain import Report, Scenario
from warroom.estimate.track import ForceEstimate
from warroom.forecast.params import ForecastParams
from warroom.timeutil import SECONDS_PER_DAY

OBJECTIVE, OBSTACLE, HALT = 0, 1, 2
_Z90 = 1.2815515655446004  # standard normal 90th percentile


@dataclass
class ForcePlan:
    """One force's start state and barriers (times in days relative to as_of)."""

    force: str
    t0: float                      # last report used (days, <= 0); nan if no estimate
    x: np.ndarray                  # [s, v] at t0
    cov: np.ndarray                # 2x2
    regime: np.ndarray             # (3,) probabilities at t0
    objectives: list[str]
    objective_km: list[float]
    reached: dict[str, int]        # objective -> epoch seconds, already reached as of T
    bar_s: np.ndarray              # (B,) km
    bar_kind: np.ndarray           # (B,) OBJECTIVE / OBSTACLE / HALT
    bar_a: np.ndarray              # objective column | log-median delay (days) | p_obey
    bar_b: np.ndarray              # - | log-sigma of delay | from (days)
    bar_c: np.ndarray              # - | - | until (days, inf = open)
    bar_name: list[str] = field(default_factory=list)
    advancing_kmpd: float = 25.0
    pursuit_kmpd: float = 60.0
    base_km: float = math.nan      # s of the supply base's nearest route point
    supply_free_km: float = math.inf
    learned: bool = False


def _lognormal_days(p50_h: float, p90_h: float) -> tuple[float, float]:
    """(mu, sigma) of log(delay in days) with the given median and 90th percentile (hours)."""
    mu = math.log(p50_h / 24.0)
    sigma = max(math.log(p90_h / p50_h) / _Z90, 1e-9)
    return mu, sigma


def plan(scenario: Scenario, estimates: Mapping[str, ForceEstimate],
         reports: Mapping[str, Sequence[Report]], as_of: int,
         params: ForecastParams) -> list[ForcePlan]:
    """A plan per force, in scenario order."""
    out: list[ForcePlan] = []
    ov = params.overrides
    for force in scenario.forces.values():
        est = estimates[force.id]
        known = [r for r in reports.get(force.id, ()) if r.received_at <= as_of]
        crossed = {r.target for r in known if r.event == "crossed" and r.target}
        reached: dict[str, int] = {}
        for r in known:
            if r.event == "reached" and r.target in force.objectives:
                reached.setdefault(r.target, r.observed_at)
        s_est = est.s_km if est.s_km is not None else -math.inf
        for oid in force.objectives:
            if oid not in reached and s_est >= force.objective_km[oid] \
                    and est.last_report_at is not None:
                reached[oid] = _first_past(est, force.objective_km[oid])
        bars: list[tuple[float, int, float, float, float, str]] = []
        for k, oid in enumerate(force.objectives):
            bars.append((force.objective_km[oid], OBJECTIVE, float(k), 0.0, 0.0, oid))
        for ob in scenario.obstacles:
            if ob.feature in crossed:
                continue
            p50 = ov.get(f"{ob.feature}.delay_p50", ob.p50_h)
            p90 = max(ov.get(f"{ob.feature}.delay_p90", ob.p90_h), p50)
            mu, sig = _lognormal_days(p50, p90)
            for s in force.route.crossings(scenario.features[ob.feature].coords):
                bars.append((s, OBSTACLE, mu, sig, 0.0, ob.feature))
        for h in force.halt_lines:
            p = ov.get(f"{force.id}.p_obey.{h.line}",
                       params.force_value(force.id, "p_obey", h.p_obey))
            start = -math.inf if h.start is None else (h.start - as_of) / SECONDS_PER_DAY
            end = math.inf if h.end is None else (h.end - as_of) / SECONDS_PER_DAY
            hits = force.route.crossings(scenario.features[h.line].coords)
            if hits:
                bars.append((hits[0], HALT, p, start, end, h.line))
        bars.sort(key=lambda b: (b[0], b[1]))
        adv, pur, learned = _speeds(est, params)
        adv = params.force_value(force.id, "advancing_kmpd", adv)
        pur = params.force_value(force.id, "pursuit_kmpd", pur)
        base_km, free = math.nan, math.inf
        if force.supply_base is not None:
            lon, lat = scenario.features[force.supply_base].coords[0]
            base_km, _ = force.route.project(lat, lon)
            free = params.force_value(force.id, "supply_free_km", params.supply_free_km)
        has = est.s_km is not None
        out.append(ForcePlan(
            force=force.id,
            t0=(est.last_report_at - as_of) / SECONDS_PER_DAY if has else math.nan,
            x=np.array([est.s_km, est.v_kmpd]) if has else np.zeros(2),
            cov=np.array(est.cov) if has else np.eye(2),
            regime=np.array([est.regime[k] for k in ("halted", "advancing", "pursuit")])
            if has else np.array([1.0, 0.0, 0.0]),
            objectives=list(force.objectives),
            objective_km=[force.objective_km[o] for o in force.objectives],
            reached=reached,
            bar_s=np.array([b[0] for b in bars]), bar_kind=np.array([b[1] for b in bars]),
            bar_a=np.array([b[2] for b in bars]), bar_b=np.array([b[3] for b in bars]),
            bar_c=np.array([b[4] for b in bars]), bar_name=[b[5] for b in bars],
            advancing_kmpd=adv, pursuit_kmpd=pur, base_km=base_km, supply_free_km=free,
            learned=learned,
        ))
    return out


def _speeds(est: ForceEstimate, params: ForecastParams) -> tuple[float, float, bool]:
    moving = [h["v_kmpd"] for h in est.history if h["v_kmpd"] > 2.0]
    if len(moving) >= params.learn_min_reports:
        adv = float(np.median(moving))
        return adv, 2.0 * adv, True
    if est.v_kmpd is not None and est.v_kmpd > 2.0 and est.regime is not None \
            and est.regime["halted"] < 0.5:
        return est.v_kmpd, 2.0 * est.v_kmpd, True  # a short record: its present pace
    return params.advancing_kmpd, params.pursuit_kmpd, False


def _first_past(est: ForceEstimate, km: float) -> int:
    """When the smoothed track first passed ``km`` (epoch seconds), else the last report."""
    from warroom.timeutil import parse_time

    for h in est.history:
        if h["s_km"] >= km:
            return parse_time(h["t"])
    assert est.last_report_at is not None
    return est.last_report_at
