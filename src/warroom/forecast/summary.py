"""From arrival samples to the forecast: ETA quantiles, P(within horizon), timetable odds, races.

The JSON contract (``warroom forecast --json``; extend, never break)::

    {"as_of": ISO, "samples": N, "seed": S, "horizon_days": H,
     "forces": {FORCE: {"s_km", "s_sd_km", "speed_kmpd", "speed_sd_kmpd", "regime": {...},
                        "objectives": {OBJ: {"km_to_go", "eta": {"p10", "p50", "p90"},
                                             "p_within_horizon", "p_before_timetable",
                                             "reached_at", ...}}}},
     "races": {OBJ: {FORCE: P(first), ..., "nobody": P}}}

Times are ISO 8601 UTC; a quantile beyond the horizon is null; an ETA earlier than ``as_of``
(the sample would already be there, unreported) is shown as ``as_of``. ``p_before_timetable``
is, for a force of our side (the scenario's ``perspective``), P(it arrives by its own planned
date); for a rival, P(it arrives before our earliest planned date for that objective); null
where there is no such plan. Extensions: per objective ``planned`` (the date compared with),
``timetable_of`` ("own" or "ours") and ``eta_days`` (the q05..q95 quantiles in days after
``as_of``, null beyond the horizon); per force ``fan`` (p10/p50/p90 of km along the route in
24 h and 72 h) and ``lines`` (each halt line ahead: ``at_km``, ``km_to_go``, ``p_within_48h``,
``p_obey``); per race ``decided`` (the winner, when an objective was
already reached) and ``racers``; per force ``speeds`` (the medians used, ``learned`` or prior).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from warroom.domain import Scenario
from warroom.estimate.track import ForceEstimate
from warroom.forecast.engine import quantiles
from warroom.forecast.params import ForecastParams
from warroom.forecast.plan import HALT, ForcePlan
from warroom.timeutil import SECONDS_PER_DAY, to_iso


def _days(days: float) -> float | None:
    return round(days, 3) if math.isfinite(days) else None


def _iso_days(as_of: int, days: float) -> str | None:
    if not math.isfinite(days):
        return None
    return to_iso(as_of + max(days, 0.0) * SECONDS_PER_DAY)


ETA_LEVELS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # q05 ... q95


def summarise(scenario: Scenario, estimates: dict[str, ForceEstimate],
              plans: Sequence[ForcePlan], arrivals: Sequence[np.ndarray], as_of: int,
              params: ForecastParams,
              positions: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """The forecast as one JSON-ready dict (``positions``: samples' km along the route at
    +24 h and +72 h, for the fans)."""
    ours = {t.objective: t.planned for t in scenario.timetable
            if scenario.perspective is not None
            and scenario.forces[t.force].side == scenario.perspective}
    ours_min: dict[str, int] = {}
    for t in scenario.timetable:
        if scenario.perspective and scenario.forces[t.force].side == scenario.perspective:
            ours_min[t.objective] = min(ours_min.get(t.objective, t.planned), t.planned)
    own = {(t.force, t.objective): t.planned for t in scenario.timetable}
    del ours
    forces: dict[str, Any] = {}
    arrive: dict[str, dict[str, np.ndarray]] = {}
    for i, (p, arr) in enumerate(zip(plans, arrivals, strict=True)):
        est = estimates[p.force]
        force = scenario.forces[p.force]
        is_ours = scenario.perspective is not None and force.side == scenario.perspective
        e = est.as_dict()
        objs: dict[str, Any] = {}
        for col, oid in enumerate(p.objectives):
            a = arr[:, col].astype(float)      # (the engine's float32, compared in float64)
            reached = p.reached.get(oid)
            if reached is not None:
                a = np.full_like(a, (reached - as_of) / SECONDS_PER_DAY)
            arrive.setdefault(oid, {})[p.force] = a
            planned = own.get((p.force, oid)) if is_ours else ours_min.get(oid)
            levels = dict(zip(ETA_LEVELS, quantiles(a, ETA_LEVELS), strict=True))
            entry: dict[str, Any] = {
                "km_to_go": None if est.s_km is None
                else round(max(0.0, p.objective_km[col] - est.s_km), 1),
                "eta": {k: _iso_days(as_of, levels[q])
                        for k, q in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9))},
                "p_within_horizon": round(float(np.mean(np.isfinite(a))), 4),
                "p_before_timetable": None,
                "reached_at": to_iso(reached) if reached is not None else None,
                "planned": to_iso(planned) if planned is not None else None,
                "timetable_of": None if planned is None else ("own" if is_ours else "ours"),
            }
            entry["eta_days"] = [_days(levels[q]) for q in ETA_LEVELS]
            if reached is not None:
                entry["km_to_go"] = 0.0
                entry["eta"] = {k: to_iso(reached) for k in ("p10", "p50", "p90")}
            if planned is not None:
                limit = (planned - as_of) / SECONDS_PER_DAY
                hit = a <= limit if is_ours else a < limit
                entry["p_before_timetable"] = round(float(np.mean(hit)), 4)
            objs[oid] = entry
        fan = None
        lines: dict[str, Any] = {}
        if positions is not None and est.s_km is not None:
            pos = positions[i]
            fan = {label: dict(zip(("p10", "p50", "p90"),
                                   (round(float(x), 1)
                                    for x in np.quantile(pos[:, j], (0.1, 0.5, 0.9))),
                                   strict=True))
                   for j, label in ((0, "24h"), (2, "72h"))}
            lines = {}
            for b, kind in enumerate(p.bar_kind):
                if kind == HALT:
                    s_line = float(p.bar_s[b])
                    lines[p.bar_name[b]] = {
                        "at_km": round(s_line, 1),
                        "km_to_go": round(max(0.0, s_line - est.s_km), 1),
                        "p_within_48h": round(float(np.mean(pos[:, 1] >= s_line - 0.01)), 4),
                        "p_obey": round(float(p.bar_a[b]), 3)}
        forces[p.force] = {
            "name": force.name, "side": force.side,
            "s_km": e["s_km"], "s_sd_km": e["s_sd_km"], "speed_kmpd": e["speed_kmpd"],
            "speed_sd_kmpd": e["speed_sd_kmpd"], "regime": e["regime"],
            "last_report_at": e["last_report_at"],
            "speeds": {"advancing_kmpd": round(p.advancing_kmpd, 1),
                       "pursuit_kmpd": round(p.pursuit_kmpd, 1), "learned": p.learned},
            "objectives": objs,
            "fan": fan,
            "lines": lines,
        }
    races: dict[str, Any] = {}
    for oid, by_force in arrive.items():
        if len(by_force) < 2:
            continue
        names = list(by_force)
        mat = np.stack([by_force[f] for f in names], axis=1)
        first = np.argmin(mat, axis=1)
        nobody = ~np.isfinite(mat.min(axis=1))
        race: dict[str, Any] = {f: round(float(np.mean((first == i) & ~nobody)), 4)
                                for i, f in enumerate(names)}
        race["nobody"] = round(float(np.mean(nobody)), 4)
        reached = {f: pl.reached[oid] for pl in plans for f in [pl.force]
                   if oid in pl.reached}
        if reached:
            winner = min(reached, key=reached.__getitem__)
            race = {f: float(f == winner) for f in names} | {"nobody": 0.0}
            race["decided"] = {"winner": winner, "at": to_iso(reached[winner])}
        races[oid] = race
    return {"as_of": to_iso(as_of), "samples": params.samples, "seed": params.seed,
            "horizon_days": params.horizon_days, "forces": forces, "races": races}


def headline(scenario: Scenario, fc: dict[str, Any]) -> list[str]:
    """One line per race: who leads (or won) it, with P."""
    lines = []
    for oid, race in fc["races"].items():
        name = scenario.objectives[oid].name
        if "decided" in race:
            w = race["decided"]["winner"]
            lines.append(f"{scenario.forces[w].name} won the race for {name} "
                         f"({race['decided']['at'][:16]}Z)")
            continue
        odds = {k: v for k, v in race.items() if k in scenario.forces}
        lead = max(odds, key=odds.__getitem__)
        if race["nobody"] >= odds[lead]:
            lines.append(f"Nobody is likely to reach {name} within {fc['horizon_days']:g} days "
                         f"(P = {race['nobody']:.2f}); best placed: "
                         f"{scenario.forces[lead].name} (P = {odds[lead]:.2f})")
        else:
            lines.append(f"{scenario.forces[lead].name} leads the race for {name}: "
                         f"P = {odds[lead]:.2f}")
    return lines
