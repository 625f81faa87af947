"""The backtest: forecast at every cut-off from the reports received by then, then score.

:func:`forecast_at` is the work of one cut-off: a pure, picklable top-level function of the
scenario, the reports, the cut-off and the parameters, returning a compact
:class:`CutoffResult`. :func:`run_backtest` sends every cut-off through ``map_fn`` (the builtin
``map`` by default; any callable with the same signature for one iterable that returns the
results in order, e.g. one that maps on a cluster) and scores the results with
:func:`score_backtest`.

The bitemporal rule: :func:`forecast_at` itself keeps only the reports with
``received_at <= cutoff``, so handing it the whole record is safe. Each cut-off's forecast is
the one ``warroom forecast --at CUTOFF --samples N --seed S --horizon H`` gives.

What is scored (for the rules on the truth see :mod:`warroom.backtest.actuals`):

ETA, per force, objective and cut-off ``c`` (a *case*), with ``H`` the horizon in days and
``y`` the actual arrival in days after ``c`` ("beyond" when later than ``H``):

- not scored, counted: the force had no report by ``c`` (``no_estimate``); it had arrived by
  ``c`` (``already_arrived``, reported or not: nothing left to forecast); the record shows no
  arrival and ends before ``c + H`` (``censored``: the outcome is unknown);
- scored: an arrival within the record, or none while the record runs past ``c + H`` (then
  ``y`` is "beyond the horizon", which the record does settle).

- coverage p10-p90: the share of cases whose PIT falls in [0.1, 0.9]; at or below p50: the
  share in [0, 0.5] (a point mass of the forecast at ``y``, "beyond the horizon", is spread
  uniformly, see :func:`warroom.backtest.scoring.interval_coverage`);
- CRPS in days of the arrival censored at the horizon: samples and ``y`` beyond ``H`` count as
  ``H + 1`` days (the forecast says nothing finer about them);
- the naive forecast (a point forecast, so its CRPS is the absolute error): the estimate's
  filtered state at the force's last report used as of ``c`` (``s`` km at ``t_last`` with
  speed ``v`` km/day), held constant: ``ETA = t_last + (s_objective - s) / v`` when ``v > 0``,
  else never; in days after ``c``, floored at 0 (arrival is news), capped at ``H + 1`` as the
  forecast. Skill ``1 - CRPS / CRPS_naive`` (1 perfect, 0 no better, below 0 worse).

Races (objectives with two or more racers), per cut-off: P(first) of each racer against the
outcome (1 for the force that arrived first within the horizon, shared equally on a tie; 0
for the rest; all 0 when nobody arrived within the horizon). Not scored: races already
decided by ``c`` and races with no arrival in a record that ends before ``c + H``. Brier
score and reliability bins over the (race, cut-off, racer) events; the naive reference gives
P = 1 to the racer with the earliest naive ETA within the horizon. Lead time: how long before
the winner's arrival it first had P(first) >= 0.5 at a cut-off and kept it at every later
cut-off before the arrival.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from warroom.backtest import scoring
from warroom.backtest.actuals import Arrival, actual_arrivals, record_end
from warroom.domain import Report, Scenario
from warroom.engine.base import Engine
from warroom.estimate.track import EstimateParams, estimate
from warroom.forecast.engine import condition_on_silence, simulate
from warroom.forecast.params import ForecastParams
from warroom.forecast.plan import plan
from warroom.forecast.summary import summarise
from warroom.timeutil import SECONDS_PER_DAY, to_iso

MapFn = Callable[[Callable[[int], "CutoffResult"], Iterable[int]], Iterable["CutoffResult"]]

# lead-time bins (days between the cut-off and the actual arrival) for coverage over lead time
LEAD_BINS_DAYS = (0.0, 1.0, 2.0, 4.0, 7.0, 14.0)


@dataclass(frozen=True)
class BacktestParams:
    """The forecast and estimate parameters used at every cut-off."""

    forecast: ForecastParams = field(default_factory=lambda: ForecastParams(samples=1000))
    estimate: EstimateParams = field(default_factory=EstimateParams)


@dataclass
class EtaForecast:
    """One force's forecast arrival at one objective, as of a cut-off."""

    force: str
    objective: str
    samples: np.ndarray  # float32, sorted: days after the cut-off; inf = beyond the horizon
    estimated: bool      # the force had a report by the cut-off
    reached: bool        # the forecast already counts the objective as reached
    naive_days: float    # the naive point forecast (days after the cut-off; inf = never)


@dataclass
class CutoffResult:
    """What one cut-off's forecast said, compactly (no histories, no maps)."""

    cutoff: int
    etas: list[EtaForecast]
    races: dict[str, dict[str, float]]  # objective -> {force: P(first), ..., "nobody": P}
    decided: dict[str, str]             # objective -> winner, races decided by the cut-off


def forecast_at(scenario: Scenario, reports: Mapping[str, Sequence[Report]], cutoff: int,
                params: BacktestParams) -> CutoffResult:
    """The forecast as of ``cutoff`` (UTC epoch seconds) from the reports received by then."""
    known = {f: [r for r in rs if r.received_at <= cutoff] for f, rs in reports.items()}
    fp, ep = params.forecast, params.estimate
    rates = np.asarray(ep.imm.rates, dtype=float)
    est = estimate(scenario, known, cutoff, ep)
    plans = plan(scenario, est, known, cutoff, fp, rates)
    arrivals = condition_on_silence(plans, simulate(plans, fp, rates), fp.seed)
    fc = summarise(scenario, est, plans, arrivals, cutoff, fp)
    etas = []
    for p, arr in zip(plans, arrivals, strict=True):
        e = est[p.force]
        for col, oid in enumerate(p.objectives):
            a = arr[:, col]
            reached = p.reached.get(oid)
            if reached is not None:
                a = np.full_like(a, (reached - cutoff) / SECONDS_PER_DAY)
            naive = math.inf
            if e.s_km is not None and e.v_kmpd is not None and e.last_report_at is not None:
                gap = p.objective_km[col] - e.s_km
                if gap <= 0:
                    naive = 0.0
                elif e.v_kmpd > 0:
                    naive = max(0.0, (e.last_report_at - cutoff) / SECONDS_PER_DAY
                                + gap / e.v_kmpd)
            etas.append(EtaForecast(p.force, oid, np.sort(a.astype(np.float32)),
                                    e.s_km is not None, reached is not None, naive))
    races = {oid: {k: float(v) for k, v in r.items() if k not in ("decided", "racers")}
             for oid, r in fc["races"].items()}
    decided = {oid: r["decided"]["winner"] for oid, r in fc["races"].items() if "decided" in r}
    return CutoffResult(cutoff, etas, races, decided)


def cutoff_task(cutoff: int, scenario: Scenario, reports: Mapping[str, Sequence[Report]],
                params: BacktestParams) -> CutoffResult:
    """:func:`forecast_at` with the cut-off first: one task of an engine's ``map`` (the
    scenario, reports and parameters are shared by every task, sent to each worker once)."""
    return forecast_at(scenario, reports, cutoff, params)


def run_backtest(scenario: Scenario, reports: Mapping[str, Sequence[Report]],
                 cutoffs: Sequence[int], params: BacktestParams | None = None,
                 map_fn: MapFn = map, engine: Engine | None = None) -> dict[str, Any]:
    """Forecast at every cut-off (through ``map_fn``, or on ``engine``, e.g. a Dask cluster:
    one task per cut-off) and score against the full record; the JSON-ready result (see
    :func:`score_backtest`). Same numbers wherever the cut-offs run: each is a pure function
    of the scenario, the reports and the parameters (the seed included)."""
    params = params or BacktestParams()
    if not cutoffs:
        raise ValueError("no cut-offs to backtest")
    arrivals = actual_arrivals(scenario, reports, params.estimate)
    end = record_end(reports)
    if engine is not None:
        ran: Iterable[CutoffResult] = engine.map(cutoff_task, list(cutoffs),
                                                 scenario=scenario, reports=dict(reports),
                                                 params=params)
    else:
        ran = map_fn(functools.partial(forecast_at, scenario, reports, params=params),
                     list(cutoffs))
    results = sorted(ran, key=lambda r: r.cutoff)
    out = score_backtest(scenario, results, arrivals, end, params.forecast.horizon_days)
    out["scenario"] = scenario.name
    out["samples"] = params.forecast.samples
    out["seed"] = params.forecast.seed
    ordered = sorted(cutoffs)
    steps = {b - a for a, b in zip(ordered, ordered[1:], strict=False)}
    out["every_h"] = steps.pop() / 3600 if len(steps) == 1 else None  # None: irregular
    return out


# -- scoring -----------------------------------------------------------------------------------
def _lead_bin(y: float, horizon: float) -> str:
    if not math.isfinite(y):
        return f"beyond {horizon:g} d"
    edges = [b for b in LEAD_BINS_DAYS if b < horizon] + [horizon]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if y < hi:
            return f"{lo:g}-{hi:g} d"
    return f"{edges[-2]:g}-{edges[-1]:g} d"


def _lead_bin_names(horizon: float) -> list[str]:
    edges = [b for b in LEAD_BINS_DAYS if b < horizon] + [horizon]
    return [f"{lo:g}-{hi:g} d" for lo, hi in zip(edges[:-1], edges[1:], strict=True)] + [
        f"beyond {horizon:g} d"]


def _r(x: float, n: int = 4) -> float | None:
    return round(float(x), n) if math.isfinite(x) else None


def _eta_block(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate scored ETA cases."""
    n = len(rows)
    if n == 0:
        return {"n": 0, "coverage_p10_p90": None, "share_at_or_below_p50": None,
                "crps_days": None, "naive_crps_days": None, "skill": None}
    crps = float(np.mean([r["crps"] for r in rows]))
    naive = float(np.mean([r["naive_crps"] for r in rows]))
    return {"n": n,
            "coverage_p10_p90": _r(float(np.mean([r["cov80"] for r in rows]))),
            "share_at_or_below_p50": _r(float(np.mean([r["below50"] for r in rows]))),
            "crps_days": _r(crps, 3), "naive_crps_days": _r(naive, 3),
            "skill": _r(1 - crps / naive, 3) if naive > 0 else None}


def score_backtest(scenario: Scenario, results: Sequence[CutoffResult],
                   arrivals: Mapping[tuple[str, str], Arrival], end: int,
                   horizon_days: float) -> dict[str, Any]:
    """Score the cut-offs' forecasts against the actual arrivals (a JSON-ready dict)."""
    h = horizon_days
    cap = h + 1.0
    day = float(SECONDS_PER_DAY)
    cases: list[dict[str, Any]] = []
    counts = {"no_estimate": 0, "already_arrived": 0, "censored": 0}
    per_pair_skip: dict[tuple[str, str], dict[str, int]] = {}
    for res in results:
        c = res.cutoff
        for e in res.etas:
            act = arrivals[e.force, e.objective]
            skip = per_pair_skip.setdefault((e.force, e.objective),
                                            {k: 0 for k in counts})
            status = None
            if not e.estimated:
                status = "no_estimate"
            elif act.at is not None and act.at <= c:
                status = "already_arrived"
            elif act.at is None and end < c + h * day:
                status = "censored"
            if status is not None:
                counts[status] += 1
                skip[status] += 1
                continue
            y = math.inf if act.at is None else (act.at - c) / day
            if y > h:
                y = math.inf
            x = e.samples.astype(float)
            lo, hi = scoring.pit_interval(x, y)
            cases.append({
                "force": e.force, "objective": e.objective, "cutoff": c, "y": y,
                "p50": float(np.quantile(x, 0.5, method="inverted_cdf")),
                "cov80": scoring.interval_coverage(lo, hi, 0.1, 0.9),
                "below50": scoring.interval_coverage(lo, hi, 0.0, 0.5),
                "crps": scoring.crps_samples(np.minimum(x, cap), min(y, cap)),
                "naive_crps": abs(min(e.naive_days, cap) - min(y, cap)),
            })
    by_pair = []
    for fid, force in scenario.forces.items():
        for oid in force.objectives:
            rows = [r for r in cases if r["force"] == fid and r["objective"] == oid]
            act = arrivals[fid, oid]
            by_pair.append({"force": fid, "force_name": force.name, "objective": oid,
                            "objective_name": scenario.objectives[oid].name,
                            "actual": to_iso(act.at), "actual_from": act.how,
                            **_eta_block(rows), "not_scored": per_pair_skip.get((fid, oid))})
    by_lead = []
    for name in _lead_bin_names(h):
        rows = [r for r in cases if _lead_bin(r["p50"], h) == name]
        by_lead.append({"lead": name, **_eta_block(rows)})
    eta = {"overall": _eta_block(cases), "by_force_objective": by_pair,
           "by_lead_time": by_lead, "not_scored": counts}
    races = _score_races(scenario, results, arrivals, end, h)
    return {
        "from": to_iso(results[0].cutoff), "to": to_iso(results[-1].cutoff),
        "cutoffs": len(results), "horizon_days": h, "record_end": to_iso(end),
        "eta": eta, "races": races,
        "actuals": [{"force": a.force, "objective": a.objective, "at": to_iso(a.at),
                     "how": a.how, "report": a.report} for a in arrivals.values()],
    }


def _naive_first(res: CutoffResult, racers: Sequence[str], oid: str,
                 horizon: float) -> dict[str, float]:
    naive = {e.force: e.naive_days for e in res.etas
             if e.objective == oid and e.force in racers}
    best = min(naive.values(), default=math.inf)
    if not best <= horizon:
        return {f: 0.0 for f in racers}
    top = [f for f in racers if naive.get(f) == best]
    return {f: (1.0 / len(top) if f in top else 0.0) for f in racers}


def _score_races(scenario: Scenario, results: Sequence[CutoffResult],
                 arrivals: Mapping[tuple[str, str], Arrival], end: int,
                 h: float) -> dict[str, Any]:
    day = float(SECONDS_PER_DAY)
    p_all: list[float] = []
    o_all: list[float] = []
    naive_all: list[float] = []
    uniform_all: list[float] = []
    counts = {"decided": 0, "censored": 0}
    by_race = []
    objectives = [oid for oid in scenario.objectives
                  if sum(oid in f.objectives for f in scenario.forces.values()) >= 2]
    for oid in objectives:
        racers = [fid for fid, f in scenario.forces.items() if oid in f.objectives]
        times = {f: arrivals[f, oid].at for f in racers if arrivals[f, oid].at is not None}
        first_at = min(times.values()) if times else None
        winners = [f for f, t in times.items() if t == first_at]
        ps, os_, ns, us = [], [], [], []
        series: dict[str, list[float | None]] = {f: [] for f in racers}
        cut_times: list[int] = []
        for res in results:
            c = res.cutoff
            race = res.races.get(oid, {})
            cut_times.append(c)
            for f in racers:
                series[f].append(_r(race.get(f, math.nan)))
            if first_at is not None and first_at <= c:
                counts["decided"] += 1
                continue
            if first_at is None and end < c + h * day:
                counts["censored"] += 1
                continue
            within = first_at is not None and (first_at - c) / day <= h
            naive = _naive_first(res, racers, oid, h)
            for f in racers:
                ps.append(race.get(f, 0.0))
                os_.append(1.0 / len(winners) if within and f in winners else 0.0)
                ns.append(naive[f])
                us.append(1.0 / len(racers))
        p_all += ps
        o_all += os_
        naive_all += ns
        uniform_all += us
        lead_s = held = p_last = p_max = None
        if len(winners) == 1:
            w = winners[0]
            pw = [np.nan if v is None else v for v in series[w]]
            lead_s, held = scoring.lead_time(cut_times, pw, float(first_at))
            before = [p for t, p in zip(cut_times, pw, strict=True)
                      if t < first_at and np.isfinite(p)]
            if before:
                p_last, p_max = before[-1], max(before)
        names = {f: scenario.forces[f].name for f in racers}
        by_race.append({
            "objective": oid, "name": scenario.objectives[oid].name, "racers": racers,
            "names": names,
            "winner": winners[0] if len(winners) == 1 else (winners or None),
            "winner_name": " and ".join(names[w] for w in winners) or None,
            "arrival": to_iso(first_at), "events": len(ps),
            "brier": _r(scoring.brier(ps, os_)), "naive_brier": _r(scoring.brier(ns, os_)),
            "uniform_brier": _r(scoring.brier(us, os_)),
            "winner_p_last": p_last, "winner_p_max": p_max,
            "lead_time_h": None if lead_s is None else round(lead_s / 3600, 1),
            "called_from": to_iso(held),
            "called_at_first_cutoff": held is not None and held == float(cut_times[0]),
            "series": {"cutoffs": [to_iso(t) for t in cut_times], "p_first": series},
        })
    bins = scoring.reliability_bins(p_all, o_all)
    return {
        "events": len(p_all), "brier": _r(scoring.brier(p_all, o_all)),
        "naive_brier": _r(scoring.brier(naive_all, o_all)),
        "uniform_brier": _r(scoring.brier(uniform_all, o_all)),
        "reliability": [{"lo": b.lo, "hi": b.hi, "n": b.n, "mean_forecast": _r(b.mean_forecast),
                         "observed": _r(b.observed)} for b in bins],
        "by_race": by_race, "not_scored": counts,
    }
