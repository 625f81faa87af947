"""Monte Carlo simulation of every force's advance, event by event.

Why event-driven: between events a sample moves at a constant speed along its route (or, past
its supply range, along a closed-form logistics curve), so the time of the next event is
computed exactly instead of stepping hours through empty road. Events: a regime switch (the
estimate's Markov chain; the new regime draws a new speed), reaching a barrier (an objective:
record the arrival; an obstacle: wait a log-normal delay; a halt line: stop if the order is
obeyed and in force), or the horizon. Each loop iteration handles one event for every sample
still running, as NumPy arrays over all samples of a chunk of forces; the loop runs as many
times as the busiest sample has events (a few dozen), whatever the horizon, so memory does not
grow with it.

Randomness: counter-based (:mod:`warroom.forecast.rng`): each draw is a hash of the seed, the
force id, the sample, the event number and its purpose, so the output does not depend on the
order forces are listed, on which other forces are simulated with them, nor on chunking; and
nothing is drawn ahead, so memory is a few arrays per sample.

Logistics: with supply base at ``b`` km and range ``D`` km, the speed at ``s`` is
``v * min(1, D / (s - b))``; beyond ``b + D`` this gives ``(s - b)^2 = (s1 - b)^2 + 2 v D t``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np

from warroom.forecast import rng
from warroom.forecast.params import ForecastParams
from warroom.forecast.plan import HALT, OBJECTIVE, OBSTACLE, ForcePlan

_CHUNK_SAMPLES = 1_000_000  # samples simulated together (bounds memory)
# random streams (purposes) of the counter-based generator
_S_REG, _S_Z0, _S_SWITCH, _S_JUMP, _S_SPEED, _S_DELAY, _S_OBEY, _S_PACE = (
    0, 2, 8, 10, 12, 16, 20, 22)


def _travel_time(s1: np.ndarray, s2: np.ndarray, v: np.ndarray, b: np.ndarray,
                 d: np.ndarray) -> np.ndarray:
    """Days to go from s1 to s2 (km) at nominal speed v (km/day) with logistics (b, d)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        sd = np.where(np.isnan(b), np.inf, b + d)
        part1 = np.maximum(np.minimum(s2, sd) - s1, 0.0) / v
        lo = np.maximum(s1, sd)
        part2 = np.where(s2 > lo, ((s2 - b) ** 2 - (lo - b) ** 2) / (2.0 * v * d), 0.0)
        t = part1 + part2
    return np.where((v > 0) & np.isfinite(s2), t, np.inf)


def _advance(s1: np.ndarray, v: np.ndarray, tau: np.ndarray, b: np.ndarray,
             d: np.ndarray) -> np.ndarray:
    """Position after tau days from s1 at nominal speed v with logistics (b, d)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        sd = np.where(np.isnan(b), np.inf, b + d)
        lin = s1 + v * tau
        t1 = np.where(s1 < sd, (sd - s1) / np.where(v > 0, v, 1.0), 0.0)
        start = np.maximum(s1, sd)
        curve = b + np.sqrt((start - b) ** 2 + 2.0 * v * d * np.maximum(tau - t1, 0.0))
        out = np.where(lin <= sd, lin, curve)
    return np.where(v > 0, out, s1)


def simulate(plans: Sequence[ForcePlan], params: ForecastParams,
             rates: np.ndarray) -> list[np.ndarray]:
    """Arrival times (days after as_of; inf = not within the horizon) per force, shape
    ``(samples, objectives of that force)``."""
    return simulate_full(plans, params, rates)[0]


def simulate_full(plans: Sequence[ForcePlan], params: ForecastParams, rates: np.ndarray,
                  snap_days: Sequence[float] = ()) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Arrival times as :func:`simulate`, and each sample's position (km along its route) at
    the times ``snap_days`` (days after as_of), shape ``(samples, len(snap_days))`` per
    force (nan for a force without an estimate)."""
    n = params.samples
    per_chunk = max(1, _CHUNK_SAMPLES // max(n, 1))
    arrivals: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    for a in range(0, len(plans), per_chunk):
        arr, pos = _simulate_chunk(plans[a:a + per_chunk], params, rates,
                                   np.asarray(snap_days, dtype=float))
        arrivals.extend(arr)
        positions.extend(pos)
    return arrivals, positions


def _simulate_chunk(plans: Sequence[ForcePlan], params: ForecastParams, rates: np.ndarray,
                    snaps: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    n, k_max, horizon = params.samples, params.max_switches, params.horizon_days
    nf = len(plans)
    m = nf * n
    nb = max(1, max(len(p.bar_s) for p in plans))
    no = max(1, max(len(p.objectives) for p in plans))
    fi = np.repeat(np.arange(nf), n)
    bar_s = np.full((nf, nb + 1), np.inf)
    bar_kind = np.zeros((nf, nb + 1), dtype=np.int8)
    bar_a = np.zeros((nf, nb + 1))
    bar_b = np.zeros((nf, nb + 1))
    bar_c = np.zeros((nf, nb + 1))
    for i, p in enumerate(plans):
        q = len(p.bar_s)
        bar_s[i, :q], bar_kind[i, :q] = p.bar_s, p.bar_kind
        bar_a[i, :q], bar_b[i, :q], bar_c[i, :q] = p.bar_a, p.bar_b, p.bar_c
    adv = np.array([p.advancing_kmpd for p in plans])
    pur = np.array([p.pursuit_kmpd for p in plans])
    base = np.array([p.base_km for p in plans])
    free = np.array([p.supply_free_km for p in plans])
    keys = np.concatenate([rng.sample_keys(params.seed, p.force, n) for p in plans])

    # Start: regime, s and v from the estimate's posterior at its last report.
    exit_rate = -np.diag(rates)
    jump = np.where(np.eye(3, dtype=bool), 0.0, rates) / np.where(exit_rate > 0, exit_rate,
                                                                  1.0)[:, None]
    jump_cdf = np.cumsum(jump, axis=1)
    reg_cdf = np.stack([np.cumsum(p.regime / p.regime.sum()) for p in plans])[fi]
    reg = np.minimum((rng.uniform(keys, 0, _S_REG)[:, None] > reg_cdf).sum(axis=1), 2)
    z0 = np.stack([rng.normal(keys, 0, _S_Z0), rng.normal(keys, 0, _S_Z0 + 2)], axis=1)
    chol = np.stack([_chol(p.cov) for p in plans])[fi]
    x0 = np.stack([p.x for p in plans])[fi] + np.einsum("mij,mj->mi", chol, z0)
    t0 = np.array([p.t0 for p in plans])[fi]
    t = np.where(np.isnan(t0), horizon, t0)
    s = np.maximum(x0[:, 0], 0.0)
    v = np.where(reg == 0, 0.0, np.maximum(x0[:, 1], 0.0))
    with np.errstate(divide="ignore"):  # a regime that is never left: no switch, ever
        tsw = t + rng.exponential(keys, 0, _S_SWITCH) / exit_rate[reg]
    k = np.ones(m, dtype=np.int64)
    ptr = (bar_s[fi] <= s[:, None]).sum(axis=1)
    arrival = np.full((m, no), np.inf)
    behind = (bar_s[fi] <= s[:, None]) & (bar_kind[fi] == OBJECTIVE)
    rr, cc = np.nonzero(behind)
    arrival[rr, bar_a[fi[rr], cc].astype(int)] = t[rr]
    done = np.isnan(t0) | (t >= horizon)

    # each sample's own pace: the force's pace is known only so well (plan.pace_sd)
    pace = np.exp(np.array([p.pace_sd for p in plans])[fi] * rng.normal(keys, 0, _S_PACE))

    def speed(regime: np.ndarray, z: np.ndarray, f: np.ndarray,
              rows: np.ndarray) -> np.ndarray:
        return pace[rows] * np.where(regime == 0, 0.0, np.where(
            regime == 1, adv[f] * np.exp(params.advancing_sigma * z),
            pur[f] * np.exp(params.pursuit_sigma * z)))

    pos = np.full((m, len(snaps)), np.nan)

    def snapshot(rows: np.ndarray, t_from: np.ndarray, t_to: np.ndarray,
                 moving: bool) -> None:
        """Positions at the snapshot times in [t_from, t_to) of these rows."""
        for j, ts in enumerate(snaps):
            hit = (ts >= t_from) & (ts < t_to)
            if hit.any():
                r = rows[hit]
                pos[r, j] = (_advance(s[r], v[r], ts - t[r], base[fi[r]], free[fi[r]])
                             if moving else s[r])

    for _ in range(nb + k_max + 2):  # one event per sample per pass
        idx = np.flatnonzero(~done)
        if idx.size == 0:
            break
        f, ti, si, vi, pi = fi[idx], t[idx], s[idx], v[idx], ptr[idx]
        nb_s = bar_s[f, pi]
        t_bar = ti + _travel_time(si, nb_s, vi, base[f], free[f])
        t_sw = np.where(k[idx] < k_max, tsw[idx], np.inf)
        at_bar = (t_bar <= t_sw) & (t_bar <= horizon)
        at_sw = ~at_bar & (t_sw <= horizon)
        finished = ~at_bar & ~at_sw
        if snaps.size:
            t_next = np.where(at_bar, t_bar, np.where(at_sw, np.maximum(t_sw, ti), np.inf))
            snapshot(idx, ti, t_next, moving=True)
        done[idx[finished]] = True

        # a regime switch: move to the switch (not back in time if it fell inside a wait)
        sw = idx[at_sw]
        if sw.size:
            f_sw = fi[sw]
            new_t = np.maximum(t[sw], tsw[sw])
            s[sw] = _advance(s[sw], v[sw], new_t - t[sw], base[f_sw], free[f_sw])
            t[sw] = new_t
            kk = k[sw]
            ks = keys[sw]
            u = rng.uniform(ks, kk, _S_JUMP)
            reg[sw] = np.minimum((u[:, None] > jump_cdf[reg[sw]]).sum(axis=1), 2)
            v[sw] = speed(reg[sw], rng.normal(ks, kk, _S_SPEED), f_sw, sw)
            with np.errstate(divide="ignore"):
                tsw[sw] = new_t + rng.exponential(ks, kk, _S_SWITCH) / exit_rate[reg[sw]]
            k[sw] = kk + 1

        # a barrier: arrive there, then act on its kind
        br = idx[at_bar]
        if br.size:
            f_b, p_b = fi[br], ptr[br]
            s[br] = bar_s[f_b, p_b]
            t[br] = t_bar[at_bar]
            kind = bar_kind[f_b, p_b]
            obj = kind == OBJECTIVE
            if obj.any():
                rows, cols = br[obj], bar_a[f_b[obj], p_b[obj]].astype(int)
                arrival[rows, cols] = np.minimum(arrival[rows, cols], t[rows])
            obs = kind == OBSTACLE
            if obs.any():
                rows = br[obs]
                mu, sig = bar_a[f_b[obs], p_b[obs]], bar_b[f_b[obs], p_b[obs]]
                before = t[rows].copy()
                t[rows] += np.exp(mu + sig * rng.normal(keys[rows], p_b[obs], _S_DELAY))
                if snaps.size:
                    snapshot(rows, before, t[rows], moving=False)
            halt = kind == HALT
            if halt.any():
                rows, pb = br[halt], p_b[halt]
                fh = f_b[halt]
                stop = ((rng.uniform(keys[rows], pb, _S_OBEY) < bar_a[fh, pb])
                        & (t[rows] >= bar_b[fh, pb])
                        & (t[rows] < bar_c[fh, pb]))
                until = bar_c[fh, pb]
                before = t[rows].copy()
                t[rows] = np.where(stop, until, t[rows])  # wait at the line until the order ends
                if snaps.size:
                    snapshot(rows, before, t[rows], moving=False)
                done[rows[stop & ~np.isfinite(until)]] = True
            ptr[br] = p_b + 1
        done |= t >= horizon
    arrival[arrival > horizon] = np.inf
    if snaps.size:  # still unset: the sample stood still from its last event on
        rows, cols = np.nonzero(np.isnan(pos))
        pos[rows, cols] = np.where(np.isnan(t0[rows]), np.nan, s[rows])
    return ([arrival[i * n:(i + 1) * n, :len(p.objectives)] for i, p in enumerate(plans)],
            [pos[i * n:(i + 1) * n] for i in range(len(plans))])


def condition_on_silence(plans: Sequence[ForcePlan], arrivals: list[np.ndarray],
                         seed: int) -> list[np.ndarray]:
    """Arrivals with the samples contradicted by silence replaced (see :func:`silence_index`)."""
    return [a[i] for a, i in zip(arrivals, silence_index(plans, arrivals, seed), strict=True)]


def silence_index(plans: Sequence[ForcePlan], arrivals: list[np.ndarray],
                  seed: int) -> list[np.ndarray]:
    """Per force, the sample rows to keep after dropping those that reach an objective before
    as_of when no report says it was reached.

    The simulation starts at each force's last report, which may be days old; some samples
    then "arrive" in the unreported days. Reaching an objective is news that would have been
    reported, so such samples contradict what we know: they are replaced by samples drawn
    (with the force's own seeded generator) from the force's consistent ones. If none is
    consistent, the samples are kept as they are.
    """
    out = []
    for p, arr in zip(plans, arrivals, strict=True):
        index = np.arange(len(arr))
        pending = [c for c, o in enumerate(p.objectives) if o not in p.reached]
        if pending:
            bad = (arr[:, pending] < 0).any(axis=1)
            good = np.flatnonzero(~bad)
            if bad.any() and good.size:
                gen = np.random.default_rng([seed, zlib.crc32(p.force.encode()), 1])
                index[bad] = gen.choice(good, size=int(bad.sum()))
        out.append(index)
    return out


def _chol(cov: np.ndarray) -> np.ndarray:
    """A square root of a covariance that tolerates rounding (eigen-clipped)."""
    c = 0.5 * (cov + cov.T)
    w, vecs = np.linalg.eigh(c)
    return vecs * np.sqrt(np.clip(w, 0.0, None))[None, :]


def quantile(x: np.ndarray, q: float) -> float:
    """The q-quantile of samples that may hold inf (no interpolation into inf)."""
    v = float(np.quantile(x, q, method="inverted_cdf"))
    return v if math.isfinite(v) else math.inf
