"""Synthetic races with known truth: the generative model the forecast assumes, made real.

A track starts at ``s0`` km in a regime and follows the regime chain (rates per day, as in
:data:`warroom.estimate.track.WARROOM_IMM`); each regime entry draws a speed (halted 0,
advancing log-normal around ``advancing_kmpd``, pursuit around ``pursuit_kmpd``). Crossing an
obstacle costs a log-normal delay; a halt line stops the force with probability ``p_obey``
when reached while the order is in force, until the order ends (for good if it never does),
as the forecast assumes. A *surprise* halt is one the forecast is not told of: the force
stops there with probability ``p_stop`` for a uniform number of days (the mis-specified world
of the backtest's calibration check). Reports are drawn at random intervals with Gaussian
position noise and a reporting delay (see :mod:`warroom.simulate` for whole scenarios).
Used by the tests and benchmarks to check calibration against the truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from warroom.estimate.track import WARROOM_IMM

_Z90 = 1.2815515655446004


@dataclass(frozen=True)
class TruthParams:
    advancing_kmpd: float = 25.0
    advancing_sigma: float = 0.5
    pace_sigma: float = 1.0   # each track's own pace: its medians x exp(pace_sigma z)
    pursuit_kmpd: float = 50.0
    pursuit_sigma: float = 0.4
    rates: tuple[tuple[float, float, float], ...] = WARROOM_IMM.rates
    start_regime: int = 1
    report_every_days: tuple[float, float] = (0.3, 1.5)
    noise_km: float = 5.0
    delay_hours: tuple[float, float] = (1.0, 12.0)
    obstacles: tuple[tuple[float, float, float], ...] = field(default=())  # (s, p50 h, p90 h)
    # halt orders the forecast knows: (s, p_obey, from day, until day; inf = open)
    halts: tuple[tuple[float, float, float, float], ...] = field(default=())
    # halts it does not know: (s, p_stop, shortest days, longest days; inf: for good)
    surprise_halts: tuple[tuple[float, float, float, float], ...] = field(default=())


@dataclass
class Truth:
    """Piecewise-linear truth: ``t`` (days) and ``s`` (km) at every change of motion."""

    t: np.ndarray
    s: np.ndarray

    def position(self, t: float | np.ndarray) -> np.ndarray:
        return np.interp(t, self.t, self.s)

    def arrival(self, s: float) -> float:
        """First time the track reaches ``s`` (days), inf if never."""
        hit = np.flatnonzero(self.s >= s)
        if hit.size == 0:
            return math.inf
        j = int(hit[0])
        if j == 0:
            return float(self.t[0])
        s0, s1, t0, t1 = self.s[j - 1], self.s[j], self.t[j - 1], self.t[j]
        return float(t0 + (t1 - t0) * (s - s0) / (s1 - s0))


def simulate_truth(rng: np.random.Generator, params: TruthParams, days: float,
                   s0: float = 0.0) -> Truth:
    """One true track over ``days`` days."""
    rates = np.asarray(params.rates, dtype=float)
    exit_rate = -np.diag(rates)
    pace = math.exp(params.pace_sigma * rng.standard_normal())
    reg = params.start_regime
    t, s = 0.0, s0
    ts, ss = [t], [s]
    # barriers in order along the route: (s, kind, a, b, c); kind 0 obstacle (p50 h, p90 h),
    # 1 halt order (p_obey, from, until), 2 surprise halt (p_stop, shortest, longest days)
    barriers = sorted([(o[0], 0, o[1], o[2], 0.0) for o in params.obstacles]
                      + [(h[0], 1, h[1], h[2], h[3]) for h in params.halts]
                      + [(h[0], 2, h[1], h[2], h[3]) for h in params.surprise_halts])
    k = 0
    v = pace * _speed(rng, reg, params)
    t_sw = t + rng.exponential(1 / exit_rate[reg]) if exit_rate[reg] > 0 else math.inf
    while t < days:
        nxt = barriers[k][0] if k < len(barriers) else math.inf
        t_bar = t + (nxt - s) / v if v > 0 else math.inf
        if t_bar <= t_sw and t_bar < days:
            t, s = t_bar, nxt
            ts.append(t)
            ss.append(s)
            _, kind, a, b, c = barriers[k]
            k += 1
            if kind == 0:
                t += math.exp(math.log(a / 24) + math.log(b / a) / _Z90 * rng.standard_normal())
            elif kind == 1:
                if not (b <= t < c and rng.uniform() < a):
                    continue
                if not math.isfinite(c):  # an open order obeyed: it stays there
                    ts.append(days)
                    ss.append(s)
                    break
                t = c
            else:
                if not rng.uniform() < a:
                    continue
                if not math.isfinite(c):  # a surprise halt for good
                    ts.append(days)
                    ss.append(s)
                    break
                t += rng.uniform(b, c)
            ts.append(t)
            ss.append(s)
            t_sw = max(t_sw, t)
        elif t_sw < days:
            s += v * (t_sw - t)
            t = t_sw
            ts.append(t)
            ss.append(s)
            p = np.where(np.arange(3) == reg, 0.0, rates[reg]) / exit_rate[reg]
            reg = int(rng.choice(3, p=p))
            v = pace * _speed(rng, reg, params)
            t_sw = t + rng.exponential(1 / exit_rate[reg]) if exit_rate[reg] > 0 else math.inf
        else:
            s += v * (days - t)
            t = days
            ts.append(t)
            ss.append(s)
    return Truth(np.array(ts), np.array(ss))


def _speed(rng: np.random.Generator, reg: int, p: TruthParams) -> float:
    if reg == 0:
        return 0.0
    med, sig = ((p.advancing_kmpd, p.advancing_sigma) if reg == 1
                else (p.pursuit_kmpd, p.pursuit_sigma))
    return float(med * math.exp(sig * rng.standard_normal()))


def report_times(rng: np.random.Generator, params: TruthParams, days: float) -> np.ndarray:
    """Observation times (days) of the reports on a track."""
    lo, hi = params.report_every_days
    out, t = [], 0.0
    while t <= days:
        out.append(t)
        t += rng.uniform(lo, hi)
    return np.array(out)
