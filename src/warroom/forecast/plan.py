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
from warroom.timeutil import SECONDS_PER_DAY, parse_time

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
    pace_sd: float = 0.0           # log-scale uncertainty of the force's own pace


def _lognormal_days(p50_h: float, p90_h: float) -> tuple[float, float]:
    """(mu, sigma) of log(delay in days) with the given median and 90th percentile (hours)."""
    mu = math.log(p50_h / 24.0)
    sigma = max(math.log(p90_h / p50_h) / _Z90, 1e-9)
    return mu, sigma


def plan(scenario: Scenario, estimates: Mapping[str, ForceEstimate],
         reports: Mapping[str, Sequence[Report]], as_of: int,
         params: ForecastParams, rates: np.ndarray | None = None) -> list[ForcePlan]:
    """A plan per force, in scenario order (``rates``: the regime chain, per day)."""
    if rates is None:
        from warroom.estimate.track import WARROOM_IMM

        rates = np.asarray(WARROOM_IMM.rates)
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
        adv, pur, learned, pace_sd = _speeds(est, params, rates)
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
            regime=_start_regime(est, adv, pur, params) if has else np.array([1.0, 0.0, 0.0]),
            objectives=list(force.objectives),
            objective_km=[force.objective_km[o] for o in force.objectives],
            reached=reached,
            bar_s=np.array([b[0] for b in bars]), bar_kind=np.array([b[1] for b in bars]),
            bar_a=np.array([b[2] for b in bars]), bar_b=np.array([b[3] for b in bars]),
            bar_c=np.array([b[4] for b in bars]), bar_name=[b[5] for b in bars],
            advancing_kmpd=adv, pursuit_kmpd=pur, base_km=base_km, supply_free_km=free,
            learned=learned, pace_sd=pace_sd,
        ))
    return out


def _start_regime(est: ForceEstimate, adv: float, pur: float,
                  params: ForecastParams) -> np.ndarray:
    """Regime probabilities to start from, in the forecast's terms.

    The estimate's IMM tells halted from moving; its "pursuit" means a speed that is changing,
    while the forecast's pursuit is a faster speed class. So the moving probability is split
    between advancing and pursuit by how likely the present speed is under each class's
    log-normal speed distribution (equal prior odds)."""
    assert est.regime is not None and est.v_kmpd is not None
    halted = est.regime["halted"]
    v = est.v_kmpd
    if v <= 0:
        return np.array([1.0, 0.0, 0.0]) if halted >= 0.5 else np.array([halted, 1 - halted, 0])

    def logpdf(med: float, sig: float) -> float:
        return -math.log(sig * v) - 0.5 * ((math.log(v) - math.log(med)) / sig) ** 2

    la = logpdf(adv, params.advancing_sigma)
    lp = logpdf(pur, params.pursuit_sigma)
    w_adv = 1.0 / (1.0 + math.exp(max(min(lp - la, 700.0), -700.0)))
    return np.array([halted, (1 - halted) * w_adv, (1 - halted) * (1 - w_adv)])


def _speeds(est: ForceEstimate, params: ForecastParams,
            rates: np.ndarray) -> tuple[float, float, bool, float]:
    """The force's advancing and pursuit medians: its own pace, shrunk towards the prior, and
    the log-scale sd of that pace (each sample draws its pace from it).

    The median of the moving speeds of its smoothed history (or, with no history, its present
    speed) estimates its advancing median (a record is mostly advancing: pursuits are rarer and
    shorter; reading it as the chain's long-run mixture instead biased paces low on synthetic
    races); on the log scale that estimate has
    variance about ``(pi/2) s^2 / n`` (the median of ``n`` independent speeds whose log spread
    is ``s``, the mixture's, taken as 0.6; ``n`` counts regime spells in the record's time
    span, since reports within one spell share its speed), and forces differ in pace with log
    spread ``pace_sigma`` around the prior. The two are combined by precision (a normal-normal
    shrinkage): a force with a long record moves at its own pace, one seen twice mostly at the
    prior's."""
    hist = [h for h in est.history if h["v_kmpd"] > 2.0]
    moving = [h["v_kmpd"] for h in hist]
    span = 0.0
    if hist:
        span = (parse_time(hist[-1]["t"]) - parse_time(hist[0]["t"])) / SECONDS_PER_DAY
    elif est.v_kmpd is not None and est.v_kmpd > 2.0 and est.regime is not None \
            and est.regime["halted"] < 0.5:
        moving = [est.v_kmpd]
    if not moving:
        return params.advancing_kmpd, params.pursuit_kmpd, False, params.pace_sigma
    own = math.log(float(np.median(moving)))
    # Speeds within one regime spell share one draw: count spells, not reports (a spell
    # lasts 1 / (exit rate of advancing) days on average).
    n_eff = min(len(moving), 1.0 + span * float(-np.asarray(rates)[1, 1]))
    var_own = (math.pi / 2) * 0.6**2 / n_eff
    var_prior = params.pace_sigma**2
    w = var_prior / (var_prior + var_own)
    adv = math.exp(w * own + (1 - w) * math.log(params.advancing_kmpd))
    sd = math.sqrt(1.0 / (1.0 / var_prior + 1.0 / var_own))
    return adv, adv * params.pursuit_kmpd / params.advancing_kmpd, True, sd


def _first_past(est: ForceEstimate, km: float) -> int:
    """When the smoothed track first passed ``km`` (epoch seconds), else the last report."""
    from warroom.timeutil import parse_time

    for h in est.history:
        if h["s_km"] >= km:
            return parse_time(h["t"])
    assert est.last_report_at is not None
    return est.last_report_at
