"""Calibration on synthetic truth: the forecast against races whose outcome we know.

Two forces race for the South Pole on the pole scenario's routes. Their true tracks come from
the generative model the forecast assumes (:mod:`warroom.synthetic`); reports are noisy and
late. At a cut-off inside each race we estimate and forecast from the reports received by
then, and compare with the true arrivals:

- the p10-p90 interval covers the true arrival 80% +- 5% of the time (by the randomised PIT,
  so that "beyond the horizon", a point mass of the forecast, is scored fairly);
- P(first) is calibrated: in each decile bin of forecast probability, the observed frequency is
  within 0.1 of the mean forecast probability (bins of 30 races or more; at least two);
- the CRPS of the ETA beats the naive forecast (last speed held constant).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from warroom.domain import Report, Scenario
from warroom.estimate.track import estimate
from warroom.forecast.engine import condition_on_silence, simulate
from warroom.forecast.params import ForecastParams
from warroom.forecast.plan import plan
from warroom.synthetic import TruthParams, report_times, simulate_truth
from warroom.timeutil import SECONDS_PER_DAY

from .test_estimate import T0

HORIZON = 40.0


def _reports(sc: Scenario, force: str, truth, times, rng, params: TruthParams,
             cutoff: float) -> list[Report]:
    route = sc.forces[force].route
    out = []
    for j, t in enumerate(times):
        delay = rng.uniform(*params.delay_hours) / 24
        if t + delay > cutoff:
            continue
        s = float(np.clip(truth.position(t) + rng.normal(0, params.noise_km), 0,
                          route.length_km))
        lat, lon = route.point_at(s)
        out.append(Report(source="sim", report_id=f"{force}-{j}", force=force,
                          observed_at=T0 + round(t * SECONDS_PER_DAY),
                          received_at=T0 + round((t + delay) * SECONDS_PER_DAY),
                          lat=lat, lon=lon, uncertainty_km=params.noise_km, grade="B2"))
    return out


def crps(samples: np.ndarray, y: float) -> float:
    x = np.sort(samples)
    n = len(x)
    # E|X - y| - E|X - X'| / 2, the second term from the sorted samples in O(n)
    return float(np.mean(np.abs(x - y)) - np.sum((2 * np.arange(n) - n + 1) * x) / n**2)


def test_forecast_is_calibrated_on_synthetic_races(pole: Scenario) -> None:
    rng = np.random.default_rng(11)
    # the truth has no supply lines: logistics off; it crosses the same mountains
    params = ForecastParams(samples=300, horizon_days=HORIZON, seed=0,
                            overrides={"*.supply_free_km": math.inf})
    mountains = pole.features["mountains"].coords
    obstacles = {f: ((pole.forces[f].route.crossings(mountains)[0], 24.0, 72.0),)
                 for f in ("amundsen", "scott")}
    tps = {f: TruthParams(obstacles=obstacles[f]) for f in obstacles}
    rates = np.asarray(tps["amundsen"].rates)
    covered, cases = 0, 0
    firsts: list[tuple[float, bool]] = []
    crps_model, crps_naive = [], []
    for race in range(400):
        # a seed per race: with one seed every forecast would reuse the same random streams
        # (by design: same seed, same numbers), and their Monte Carlo error would not average
        params = dataclasses.replace(params, seed=race)
        cutoff = rng.uniform(4.0, 10.0)
        truths, reps = {}, {}
        for force in ("amundsen", "scott"):
            tp = tps[force]
            truth = simulate_truth(rng, tp, cutoff + HORIZON + 5)
            truths[force] = truth
            reps[force] = _reports(pole, force, truth, report_times(rng, tp, cutoff), rng, tp,
                                   cutoff)
        at = T0 + round(cutoff * SECONDS_PER_DAY)
        est = estimate(pole, reps, at)
        plans = plan(pole, est, reps, at, params)
        arr = condition_on_silence(plans, simulate(plans, params, rates), params.seed)
        true_arrival = {}
        for p, a in zip(plans, arr, strict=True):
            goal = pole.forces[p.force].objective_km["pole"]
            y = truths[p.force].arrival(goal) - cutoff
            y = y if y <= HORIZON else math.inf
            true_arrival[p.force] = y
            if y < 0 or p.reached:
                continue  # already there by the cut-off: nothing to forecast
            a = a[:, 0]
            # randomised PIT: a true arrival beyond the horizon falls in the forecast's point
            # mass at "beyond", spread uniformly over it; covered = inside [0.1, 0.9]
            pit = np.mean(a < y) + rng.uniform() * np.mean(a == y)
            cases += 1
            covered += 0.1 <= pit <= 0.9
            cap = HORIZON + 1
            crps_model.append(crps(np.minimum(a, cap), min(y, cap)))
            e = est[p.force]
            naive = (goal - e.s_km) / e.v_kmpd + (e.last_report_at - at) / SECONDS_PER_DAY \
                if e.v_kmpd and e.v_kmpd > 0 else math.inf
            crps_naive.append(abs(min(naive, cap) - min(y, cap)))
        if min(true_arrival.values()) >= 0:  # the race was still open at the cut-off
            a_first = arr[0][:, 0] < arr[1][:, 0]  # both beyond the horizon: nobody first
            firsts.append((float(np.mean(a_first)),
                           true_arrival["amundsen"] < true_arrival["scott"],
                           float(np.mean(np.isfinite(arr[0][:, 0]))),
                           true_arrival["amundsen"] < math.inf,
                           float(np.mean(np.isfinite(arr[1][:, 0]))),
                           true_arrival["scott"] < math.inf))
    rate = covered / cases
    print(f"coverage p10-p90 {rate:.3f} over {cases}; CRPS model {np.mean(crps_model):.2f} d, "
          f"naive {np.mean(crps_naive):.2f} d; races scored for P(first): {len(firsts)}")
    assert abs(rate - 0.80) <= 0.05, f"p10-p90 coverage {rate:.3f} over {cases} forecasts"
    assert np.mean(crps_model) < np.mean(crps_naive), (np.mean(crps_model),
                                                        np.mean(crps_naive))
    fa = np.array(firsts, dtype=float)
    print("within: amundsen forecast {:.3f} observed {:.3f}; scott forecast {:.3f} "
          "observed {:.3f}".format(*fa[:, 2:].mean(axis=0)))
    p = np.array([f[0] for f in firsts])
    o = np.array([f[1] for f in firsts])
    bins = np.minimum((p * 10).astype(int), 9)
    tested = 0
    for b in range(10):
        sel = bins == b
        if sel.sum():
            print(f"  P(first) bin {b / 10:.1f}-{(b + 1) / 10:.1f}: forecast {p[sel].mean():.3f} "
                  f"observed {o[sel].mean():.3f} over {sel.sum()}")
    for b in range(10):
        sel = bins == b
        if sel.sum() >= 30:
            tested += 1
            assert abs(p[sel].mean() - o[sel].mean()) <= 0.1, (b, p[sel].mean(),
                                                                o[sel].mean(), sel.sum())
    assert tested >= 2, np.bincount(bins, minlength=10)
    # and overall: the mean forecast probability matches the frequency of Amundsen winning
    assert abs(p.mean() - o.mean()) <= 0.05
