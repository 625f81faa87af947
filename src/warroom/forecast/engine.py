"""Monte Carlo simulation of every force's advance, event by event.

Why event-driven: between events a sample moves at a constant speed along its route (or, past
its supply range, along a closed-form logistics curve), so the time of the next event is
computed exactly instead of stepping hours through empty road. Events: a regime switch (the
estimate's Markov chain; the new regime draws a new speed), or reaching an obstacle (wait a
log-normal delay) or a halt line (stop if the order is obeyed and in force). Objectives are
not events: a sample's arrival at an objective is read off the segment that passes it. A
sample is done when its next event lies beyond the horizon. A switch that falls inside a wait
happens when the wait ends; a regime whose exit rate is 0 is never left.

Samples flow through a fixed-width pipeline (``_WIDTH`` samples in flight per thread, float32
state): each slot holds a sample's state and its next event; a pass applies every slot's
event and finds its next one, as NumPy arrays. A sample that is done frees its slot for the
next one (samples are started in batches), so memory is the pipeline's width plus the
results, whatever the horizon or the number of samples, and the arrays stay in the
processor's cache. The two kinds of event (switch, barrier) are computed for every slot and
chosen bitwise, which is cheaper than splitting the slots. Long runs split the samples
between threads (NumPy releases the GIL in its loops). Results are float32 days after as_of.

Randomness: counter-based (:mod:`warroom.forecast.rng`): the draws of a sample's j-th event
come from one 64-bit hash of (seed, force, sample, j): a Box-Muller pair of normals (the
cosine one draws the new speed or the delay; the sine one decides the regime jump or the
obedience to a halt order, against the probit of its probability) and a uniform for the
holding time. So the output does not depend on the order forces are listed, on which other
forces are simulated with them, on the pipeline's width nor on the threads; a force's first
n samples are the same whatever the sample count; nothing is drawn ahead.

Logistics: with supply base at ``b`` km and range ``D`` km, the speed at ``s`` is
``v * min(1, D / (s - b))``. In the "effective distance" ``e(s) = s`` up to ``b + D`` and
``b + D + ((s - b)^2 - D^2) / (2 D)`` beyond, a sample moves at the constant ``v``: the
travel time from ``s1`` to ``s2`` is ``(e(s2) - e(s1)) / v`` (the closed form of
``ds / dt = v D / (s - b)``). The engine works in effective km and maps positions back.
"""

from __future__ import annotations

import math
import mmap
import os
import sys
import threading
import traceback
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from warroom.forecast import rng
from warroom.forecast.params import ForecastParams
from warroom.forecast.plan import HALT, OBJECTIVE, OBSTACLE, ForcePlan

_WIDTH = 32_768          # samples in flight per worker (state and scratch stay in cache)
_BATCH = 65_536          # samples started at once (at least)
_THREAD_MIN = 200_000    # samples below which one thread is quicker
_F4, _U4, _IX = np.float32, np.uint32, np.intp
_TWO_PI = np.float32(2.0 * np.pi)
_START_WORDS = 2         # stream words read at the start; event j reads word 2 + j
_WORDS2 = (np.arange(2, dtype=np.uint64) * rng.GOLDEN)[:, None]


def effective_km(s: np.ndarray, b: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Effective distance (km at full supply) of route position ``s`` with supply base at
    ``b`` km and range ``d`` km (``b`` nan: no logistics)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        sd = np.where(np.isnan(b), np.inf, b + d)
        return np.where(s <= sd, s, sd + ((s - b) ** 2 - d * d) / (2.0 * d))


def route_km(e: np.ndarray, b: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The inverse of :func:`effective_km`: route position of effective distance ``e``."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        sd = np.where(np.isnan(b), np.inf, b + d)
        return np.where(e <= sd, e, b + np.sqrt(d * d + 2.0 * d * (e - sd)))


@dataclass
class PlanColumns:
    """The plans of many forces as arrays: what the simulation reads of each
    :class:`~warroom.forecast.plan.ForcePlan`, so that a large batch needs no Python object per
    force (see :func:`plan_columns` for the meaning of each field). The barriers are flat,
    grouped by force in force order (``bar_force`` non-decreasing), each force's in route
    order."""

    keys: np.ndarray             # (F,) uint64: the base of each force's sample keys
    t0: np.ndarray               # (F,) days
    x: np.ndarray                # (F, 2) km, km/day
    cov: np.ndarray              # (F, 2, 2)
    regime: np.ndarray           # (F, 3)
    pace_sd: np.ndarray          # (F,)
    advancing_kmpd: np.ndarray   # (F,)
    pursuit_kmpd: np.ndarray     # (F,)
    base_km: np.ndarray          # (F,) km
    supply_free_km: np.ndarray   # (F,) km
    objectives: int              # columns of the arrivals: the most objectives of a force
    bar_force: np.ndarray        # (B,) the force (row) of each barrier
    bar_s: np.ndarray            # (B,) km
    bar_kind: np.ndarray         # (B,) OBJECTIVE / OBSTACLE / HALT
    bar_a: np.ndarray            # (B,) as ForcePlan's
    bar_b: np.ndarray            # (B,)
    bar_c: np.ndarray            # (B,)

    def __len__(self) -> int:
        return len(self.t0)


def plan_columns(plans: Sequence[ForcePlan], seed: int) -> PlanColumns:
    """The plans as :class:`PlanColumns` (``keys``: :func:`warroom.forecast.rng.force_bases`
    of the forces with ``seed``)."""
    nf = len(plans)
    bar_s, kind, bar_a, bar_b, bar_c = (
        np.concatenate([np.asarray(getattr(p, f), dtype=float) for p in plans]
                       + [np.empty(0)])
        for f in ("bar_s", "bar_kind", "bar_a", "bar_b", "bar_c"))
    return PlanColumns(
        keys=rng.force_bases(seed, [p.force for p in plans]),
        t0=np.array([p.t0 for p in plans], dtype=float),
        x=np.stack([p.x for p in plans]).astype(float),
        cov=np.stack([p.cov for p in plans]).astype(float),
        regime=np.stack([p.regime for p in plans]).astype(float),
        pace_sd=np.array([p.pace_sd for p in plans], dtype=float),
        advancing_kmpd=np.array([p.advancing_kmpd for p in plans], dtype=float),
        pursuit_kmpd=np.array([p.pursuit_kmpd for p in plans], dtype=float),
        base_km=np.array([p.base_km for p in plans], dtype=float),
        supply_free_km=np.array([p.supply_free_km for p in plans], dtype=float),
        objectives=max(1, max(len(p.objectives) for p in plans)),
        bar_force=np.repeat(np.arange(nf), [len(p.bar_s) for p in plans]),
        bar_s=bar_s, bar_kind=kind, bar_a=bar_a, bar_b=bar_b, bar_c=bar_c)


class _Tables:
    """The per-force constants of one simulation, as flat arrays for gathers."""

    def __init__(self, plans: Sequence[ForcePlan] | PlanColumns, params: ForecastParams,
                 rates: np.ndarray) -> None:
        cols = plans if isinstance(plans, PlanColumns) else plan_columns(plans, params.seed)
        nf = len(cols)
        self.n = params.samples
        self.horizon = float(params.horizon_days)
        self.k_max = params.max_switches
        self.no = cols.objectives
        self.b = cols.base_km
        self.d = cols.supply_free_km
        # barriers that are events (obstacles, halt lines) and objectives, each in route order
        fid = cols.bar_force
        bar_s, kind, bar_a, bar_b, bar_c = (cols.bar_s, cols.bar_kind, cols.bar_a, cols.bar_b,
                                            cols.bar_c)
        is_obj = kind == OBJECTIVE
        ev, ob = np.flatnonzero(~is_obj), np.flatnonzero(is_obj)
        self.ne = ne = int(np.bincount(fid[ev], minlength=nf).max(initial=0)) + 1  # + sentinel
        self.nob = nob = int(np.bincount(fid[ob], minlength=nf).max(initial=0)) + 1
        ev_s = np.full((nf, ne), np.inf)
        mu = np.full((nf, ne), -np.inf)      # log-median delay (days); -inf: no delay
        sig = np.zeros((nf, ne))
        p_obey = np.zeros((nf, ne))
        start = np.full((nf, ne), -np.inf)
        until = np.full((nf, ne), np.inf)
        ob_s = np.full((nf, nob), np.inf)
        ob_col = np.zeros((nf, nob), dtype=_IX)
        fe, fo = fid[ev], fid[ob]
        at_e = (fe, np.arange(ev.size) - np.searchsorted(fe, fe))   # (force, rank in force)
        at_o = (fo, np.arange(ob.size) - np.searchsorted(fo, fo))
        obs, halt = kind[ev] == OBSTACLE, kind[ev] == HALT
        ev_s[at_e] = bar_s[ev]
        mu[at_e] = np.where(obs, bar_a[ev], -np.inf)
        sig[at_e] = np.where(obs, bar_b[ev], 0.0)
        p_obey[at_e] = np.where(halt, bar_a[ev], 0.0)
        start[at_e] = np.where(halt, bar_b[ev], -np.inf)
        until[at_e] = np.where(halt, bar_c[ev], np.inf)
        ob_s[at_o] = bar_s[ob]
        ob_col[at_o] = bar_a[ob].astype(_IX)
        self.ev_s_flat, self.ob_s_flat = ev_s.ravel(), ob_s.ravel()
        # the sentinel after the last obstacle is the largest float32, not inf, so that where
        # a sample is bound for it is finite and never reaches the objectives' sentinel (inf)
        ev_u = effective_km(ev_s, self.b[:, None], self.d[:, None])
        self.ev_u = np.minimum(ev_u, np.finfo(_F4).max).astype(_F4).ravel()
        self.ob_u = effective_km(ob_s, self.b[:, None], self.d[:, None]).astype(_F4).ravel()
        self.ob_col_flat = ob_col.ravel()
        self.mu, self.sig = mu.astype(_F4).ravel(), sig.astype(_F4).ravel()
        self.obey_z, self.start = _probit(p_obey).astype(_F4).ravel(), start.astype(_F4).ravel()
        self.until = until.astype(_F4).ravel()
        self.has_halts = bool((kind == HALT).any())
        # the start: the estimate's posterior and regime probabilities, a column per force
        x = cols.x
        chol = _chol(cols.cov)
        regime = cols.regime
        reg_cdf = np.cumsum(regime / regime.sum(axis=1, keepdims=True), axis=1)
        self.per_force = np.stack([
            x[:, 0], x[:, 1], chol[:, 0, 0], chol[:, 0, 1], chol[:, 1, 0], chol[:, 1, 1],
            cols.t0, cols.pace_sd, reg_cdf[:, 0], reg_cdf[:, 1]]).astype(_F4)
        self.supplied = np.where(np.isnan(self.b), np.inf, self.b + self.d).astype(_F4)
        self.base_keys = cols.keys
        # the regime chain: holding times and where a switch leads
        rates = np.asarray(rates, dtype=float)
        exit_rate = -np.diag(rates)
        with np.errstate(divide="ignore"):
            self.inv_exit = np.where(exit_rate > 0, 1.0 / np.where(exit_rate > 0, exit_rate,
                                                                   1.0), np.inf)
        self.neg_hold = (-self.inv_exit).astype(_F4)     # minus the mean holding time
        jump = np.where(np.eye(3, dtype=bool), 0.0, rates) / np.where(exit_rate > 0, exit_rate,
                                                                      1.0)[:, None]
        # A sample's force and regime are one index, fr = 6 * force + 2 * regime. From regime
        # r the chain jumps to the lower of the other two regimes if a normal falls below
        # jump_z[fr], the probit of that jump's probability, else to the higher; with c = 1
        # for "higher", the tables at fr + c give the new index, the log of the new regime's
        # median speed for the force (halted: -inf, i.e. 0 km/day), its speed sigma and minus
        # its mean holding time.
        to = np.array([[1, 2], [0, 2], [0, 1]])
        with np.errstate(divide="ignore"):
            log_med = np.log(np.stack([np.zeros(nf), cols.advancing_kmpd, cols.pursuit_kmpd],
                                      axis=1))
        sigma = np.array([0.0, params.advancing_sigma, params.pursuit_sigma])
        f6 = 6 * np.arange(nf)[:, None, None]
        self.jump_z = np.repeat(np.tile(_probit(jump[np.arange(3), to[:, 0]]), (nf, 1)),
                                2, axis=1).astype(_F4).ravel()
        self.next_fr = (f6 + 2 * to[None]).ravel().astype(_IX)
        self.next_log_med = log_med[:, to].astype(_F4).ravel()
        self.next_sigma = np.broadcast_to(sigma[to], (nf, 3, 2)).astype(_F4).ravel()
        self.next_neg_hold = np.broadcast_to(-self.inv_exit[to], (nf, 3, 2)).astype(_F4).ravel()


def _probit(p: np.ndarray) -> np.ndarray:
    """The standard normal quantile of each probability (0: -inf, 1: inf)."""
    p = np.asarray(p, dtype=float)
    out = np.empty_like(p)
    dist = NormalDist()
    for q in np.unique(p):
        out[p == q] = (-math.inf if q <= 0 else math.inf if q >= 1 else dist.inv_cdf(float(q)))
    return out


def _select(mask: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = a where mask else b``, bitwise (``mask``: unsigned integers of the arrays'
    width, all ones or zeros; ``out`` may be ``a`` but not ``b``); exact for inf and nan, and
    without np.where's branches."""
    ut = mask.dtype
    ov, bv = out.view(ut), b.view(ut)
    np.bitwise_xor(a.view(ut), bv, out=ov)
    np.bitwise_and(ov, mask, out=ov)
    np.bitwise_xor(ov, bv, out=ov)
    return out


class _Pipeline:
    """The samples ``[lo, hi)`` (global numbers: force * n + sample) in a pipeline of fixed
    width; writes arrival times and snapshot positions (effective km) into shared arrays.

    Each slot holds a sample's state and its next event (``te`` its time, ``isb`` whether it
    is a barrier, ``ue`` where the sample will be then): a pass applies every slot's event,
    then finds each slot's next one; a sample whose next event lies beyond the horizon is
    done and its slot takes the next sample, whose first event was found when it started."""

    STATE = ("t", "u", "v", "tsw", "lp", "fr", "eb", "ob", "rowno", "k", "xk",
             "te", "isb", "ue")

    def __init__(self, tab: _Tables, lo: int, hi: int, arrival: np.ndarray,
                 pos: np.ndarray | None, snaps: np.ndarray, width: int) -> None:
        self.tab, self.next, self.end = tab, lo, hi
        self.arrival, self.pos, self.snaps = arrival, pos, snaps
        self.arrival_flat = arrival.reshape(-1)
        self.h = _F4(tab.horizon)
        self.w = w = max(1, min(width, hi - lo))
        self.t, self.u = np.full(w, np.nan, _F4), np.zeros(w, _F4)   # nan time: idle slot
        self.v, self.tsw = np.zeros(w, _F4), np.zeros(w, _F4)
        self.lp = np.zeros(w, _F4)                    # log of the sample's own pace
        self.fr = np.zeros(w, _IX)                    # 6 * force + 2 * regime
        self.eb, self.ob = np.zeros(w, _IX), np.zeros(w, _IX)   # next obstacle, objective
        self.rowno = np.zeros(w, _IX)                 # row of the results * objectives
        self.k = np.ones(w, np.int32)                 # regime switches so far (+1)
        self.xk = np.zeros(w, np.uint64)              # the sample's next stream word
        self.te, self.ue = np.full(w, np.nan, _F4), np.zeros(w, _F4)
        self.isb = np.zeros(w, bool)
        self.batch = _BATCH                           # samples started at once
        self.res: dict[str, np.ndarray] = {}
        self.res_at = self.res_n = 0
        # scratch, reused every pass
        self._f = np.empty((10, w), _F4)
        self._m = np.empty((2, w), _U4)
        self._b = np.empty((3, w), bool)
        self._i = np.empty((2, w), _IX)
        self._h = np.empty((2, w), np.uint64)

    # -- the start of a sample ------------------------------------------------------------

    def _start(self, a: int, b: int) -> dict[str, np.ndarray]:
        """State and first event of the samples [a, b) that have one within the horizon
        (the others are done: their arrivals and positions are written)."""
        tab, h, n = self.tab, self.h, self.tab.n
        m = b - a
        g = np.arange(a, b, dtype=_IX)
        if a // n == (b - 1) // n:      # one force: its constants as scalars
            fi: np.ndarray | int = a // n
            x_s, x_v, c00, c01, c10, c11, t0, pace_sd, rc0, rc1 = tab.per_force[:, fi]
            t0 = np.full(m, t0)
            base = tab.base_keys[fi]
        else:
            fi = g // n
            x_s, x_v, c00, c01, c10, c11, t0, pace_sd, rc0, rc1 = (
                row.take(fi) for row in tab.per_force)
            base = tab.base_keys.take(fi)
        with np.errstate(over="ignore"):
            key = (g - fi * n).astype(np.uint64)           # the sample's number in its force
            key *= rng.GOLDEN
            key += base
            tmp = np.empty((2, m), np.uint64)
            key = rng.mix_into(key, key, tmp[0])
            words = key + _WORDS2                          # stream words 0 and 1
            rng.mix_into(words, words, tmp)
            key += np.uint64(_START_WORDS) * rng.GOLDEN    # where the events' words begin
        un = np.empty((3, 2, m), _F4)
        rng.unit_triple(words, un[0], un[1], un[2], tmp, b_scale=2.0 * np.pi)
        # word 0: posterior draw radius and angle, regime; word 1: pace radius and angle,
        # first holding time (Box-Muller: sqrt(-2 ln u) times the cosine or sine of an angle)
        r = np.log(un[0])
        r *= _F4(-2.0)
        np.sqrt(r, out=r)
        z1, zp = np.cos(un[1]) * r
        z2 = np.sin(un[1, 0])
        z2 *= r[0]
        a_reg, a_hold = un[2]
        reg = (a_reg > rc0).astype(_IX)
        reg += a_reg > rc1
        s = c00 * z1
        s += c01 * z2
        s += x_s
        v = c10 * z1
        v += c11 * z2
        v += x_v
        done = np.isnan(t0)
        t = np.where(done, h, t0)
        done |= t >= h
        np.maximum(s, 0.0, out=s)
        np.maximum(v, 0.0, out=v)
        v *= reg != 0
        tsw = np.log(a_hold)
        tsw *= tab.neg_hold.take(reg)
        tsw += t
        if tab.k_max <= 1:                                 # no switch allowed at all
            tsw[:] = np.inf
        zp *= pace_sd                                      # log of the sample's own pace
        # barriers and objectives already behind the start
        fi = np.broadcast_to(fi, (m,))
        ev = fi * tab.ne
        for _c in range(tab.ne - 1):
            behind = tab.ev_s_flat.take(ev) <= s
            if not behind.any():
                break
            ev += behind
        ob = fi * tab.nob
        for _c in range(tab.nob - 1):
            behind = np.flatnonzero((tab.ob_s_flat.take(ob) <= s) & (t <= h))
            if not behind.size:
                break
            self.arrival[g[behind], tab.ob_col_flat[ob[behind]]] = t[behind]
            ob[behind] += 1
        far = np.flatnonzero(s > tab.supplied.take(fi))   # beyond the supply range
        if far.size:
            s[far] = effective_km(s[far].astype(float), tab.b[fi[far]], tab.d[fi[far]])
        g *= tab.no
        state = {"t": t, "u": s, "v": v, "tsw": tsw, "lp": zp, "fr": fi * 6 + 2 * reg,
                 "eb": ev, "ob": ob, "rowno": g, "k": np.ones(m, np.int32), "xk": key}
        if self.pos is not None:   # a sample done at its start stays where it is
            dn = np.flatnonzero(done)
            self.pos[g[dn] // tab.no] = np.where(np.isnan(t0[dn]), np.nan, s[dn])[:, None]
        t[done] = np.nan                                   # (no event: done below)
        fin = self._head(state)                            # the first event
        done_now = np.flatnonzero(fin)
        if done_now.size:  # done already: dropped, or (if few) left idle for a pass (cheaper)
            if done_now.size > m // 4:
                live = np.flatnonzero(~fin)
                state = {name: x[live] for name, x in state.items()}
            else:
                t[done_now] = np.nan
                state["te"][done_now] = np.nan
                state["isb"][done_now] = False
        return state

    def _refill(self, slots: np.ndarray) -> None:
        """Start the next samples in these free slots; slots left over go idle. Samples are
        started in batches (a reservoir), which costs less than starting a few per pass."""
        while slots.size:
            if self.res_at >= self.res_n:
                if self.next >= self.end:
                    break
                b = min(self.end, self.next + self.batch)
                if self.tab.n >= self.batch // 8:   # one force per batch: its constants
                    b = min(b, (self.next // self.tab.n + 1) * self.tab.n)   # are scalars
                state = self._start(self.next, b)
                self.next = b
                self.res = {name: np.ascontiguousarray(x, dtype=getattr(self, name).dtype)
                            for name, x in state.items()}
                self.res_at, self.res_n = 0, len(self.res["t"])
            k = min(slots.size, self.res_n - self.res_at)
            put, slots = slots[:k], slots[k:]
            for name in self.STATE:
                getattr(self, name)[put] = self.res[name][self.res_at:self.res_at + k]
            self.res_at += k
        self.t[slots] = np.nan                            # idle: no event ever
        self.te[slots] = np.nan
        self.isb[slots] = False

    def _exhausted(self) -> bool:
        return self.next >= self.end and self.res_at >= self.res_n

    # -- the passes -------------------------------------------------------------------------

    def run(self) -> None:
        self.arrival[self.next:self.end] = np.inf
        if self.pos is not None:
            self.pos[self.next:self.end] = np.nan
        self._refill(np.arange(self.w))
        while True:
            if self._exhausted():
                live = np.flatnonzero(~np.isnan(self.t))
                if live.size == 0:
                    return
                if live.size <= self.w // 2:   # compact: no work on idle slots
                    for name in self.STATE:
                        setattr(self, name, getattr(self, name)[live])
                    self.w = live.size
            self._pass()

    def _head(self, st: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Each sample's next event (time ``te``, at a barrier ``isb``, position ``ue``) and
        the objectives it passes on the way; returns where the next event lies beyond the
        horizon (the sample is done). On the pipeline's slots, or on a dict of states."""
        tab, h = self.tab, self.h
        if st is None:
            t, u, v, tsw, eb = self.t, self.u, self.v, self.tsw, self.eb
            w = self.w
            ub, um = self._f[0, :w], self._f[1, :w]
            mb = self._m[1, :w]
            fin, go = self._b[1, :w], self._b[2, :w]
            te, isb = self.te, self.isb
        else:
            t, u, v, tsw, eb = st["t"], st["u"], st["v"], st["tsw"], st["eb"]
            w = t.size
            ub, um, te = np.empty(w, _F4), np.empty(w, _F4), np.empty(w, _F4)
            mb = np.empty(w, _U4)
            fin, go, isb = np.empty(w, bool), np.empty(w, bool), np.empty(w, bool)
            st["te"], st["isb"] = te, isb
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            tab.ev_u.take(eb, out=ub, mode="clip")         # the next obstacle or line
            np.subtract(ub, u, out=te)
            np.divide(te, v, out=te)                      # inf (or nan) if v == 0
            np.add(te, t, out=te)
            np.less_equal(te, tsw, out=isb)               # the barrier comes first
            # the event's time: the barrier's, or the switch's (a switch that fell inside a
            # wait happens at its end; fmin: nan where v = 0 at a barrier)
            np.fmin(te, tsw, out=te)
            np.maximum(te, t, out=te)
            np.less_equal(te, h, out=fin)                 # beyond the horizon (or idle):
            np.logical_not(fin, out=fin)                  # done
            # where the sample is at the event, or at the horizon if that comes first
            np.minimum(te, h, out=um)
            np.subtract(um, t, out=um)
            np.multiply(um, v, out=um)
            np.add(um, u, out=um)
            np.logical_not(fin, out=go)
            go &= isb
            np.negative(go.view(np.uint8), out=mb, dtype=_U4)
            if st is None:
                ue = _select(mb, ub, um, self.ue)
                self._objectives(t, u, v, ue, self.ob, self.rowno, um, go)
                if self.pos is not None:
                    self._snap_moving(t, u, v, te, fin, self.rowno)
            else:
                st["ue"] = ue = _select(mb, ub, um, ub)
                self._objectives(t, u, v, ue, st["ob"], st["rowno"])
                if self.pos is not None:
                    self._snap_moving(t, u, v, te, fin, st["rowno"])
        return fin

    def _pass(self) -> None:
        """Every slot's event, then its next event; done samples make way for new ones."""
        tab, w = self.tab, self.w
        t, u, v, tsw, te, isb = self.t, self.ue, self.v, self.tsw, self.te, self.isb
        z, zs, th, lb, xs, xb, sg, e = self._f[2:, :w]
        mask = self._m[0, :w]
        nb = self._b[0, :w]
        new, idx = self._i[:, :w]
        hh, tmp = self._h[0, :w], self._h[1, :w]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            np.negative(isb.view(np.uint8), out=mask, dtype=_U4)
            # this event's word: a normal pair (z, zs) by Box-Muller, a log-uniform lb
            rng.mix_into(self.xk, hh, tmp)
            np.add(self.xk, rng.GOLDEN, out=self.xk)
            rng.unit_triple(hh, z, th, lb, tmp, b_scale=2.0 * np.pi)
            np.log(z, out=z)
            np.multiply(z, _F4(-2.0), out=z)
            np.sqrt(z, out=z)
            np.sin(th, out=zs)
            np.multiply(zs, z, out=zs)
            np.cos(th, out=th)
            np.multiply(z, th, out=z)
            np.log(lb, out=lb)
            # a switch: the jump chain's next regime (by zs), its speed (z), holding time (lb)
            fr = self.fr
            tab.jump_z.take(fr, out=xs, mode="clip")
            np.greater(zs, xs, out=nb)
            np.add(fr, nb, out=idx)
            tab.next_fr.take(idx, out=new, mode="clip")
            tab.next_log_med.take(idx, out=xs, mode="clip")
            xs += self.lp
            tab.next_sigma.take(idx, out=sg, mode="clip")
            sg *= z
            xs += sg                                      # log of the new speed
            tab.next_neg_hold.take(idx, out=th, mode="clip")
            th *= lb
            th += te                                      # the next switch
            # a barrier: an obstacle's delay (z); a halt line: none
            tab.mu.take(self.eb, out=xb, mode="clip")
            tab.sig.take(self.eb, out=sg, mode="clip")
            sg *= z
            xb += sg
            _select(mask, xb, xs, xb)
            np.exp(xb, out=e)                             # a speed or a delay
            # the new state (the position: ue, where the head put it; swapped, not copied)
            self.u, self.ue = u, self.u
            _select(mask, v, e, v)
            _select(mask, tsw, th, tsw)
            ev = e.view(_U4)
            ev &= mask
            np.add(te, e, out=t)                          # the delay at a barrier
            m64 = idx.view(np.uint64)                     # (idx is free now)
            np.negative(isb.view(np.uint8), out=m64, dtype=np.uint64)
            _select(m64, fr.view(np.uint64), new.view(np.uint64), fr.view(np.uint64))
            self.k += 1                                   # one more switch, unless a barrier
            self.k -= isb
            if int(self.k.max()) >= tab.k_max:
                tsw[self.k >= tab.k_max] = np.inf
            # a halt line: stop there if the order is obeyed (zs below the probit of p_obey)
            # and in force
            halt = ()
            if tab.has_halts:
                np.equal(e, 0.0, out=nb)
                nb &= isb
                halt = np.flatnonzero(nb)
            if len(halt):
                at = self.eb[halt]
                he = te[halt]
                until = tab.until[at]
                stop = (zs[halt] < tab.obey_z[at]) & (he >= tab.start[at]) & (he < until)
                t[halt[stop]] = until[stop]
            self.eb += isb
            if self.pos is not None:
                self._snap_still(te, isb)
        fin = self._head()
        done = np.flatnonzero(fin)
        if done.size:
            self._refill(done)

    def _objectives(self, t: np.ndarray, u: np.ndarray, v: np.ndarray, ue: np.ndarray,
                    ob: np.ndarray, rowno: np.ndarray, uo: np.ndarray | None = None,
                    hit: np.ndarray | None = None) -> None:
        """Arrivals at the objectives passed on the way from ``u`` (at ``t``, speed ``v``) to
        ``ue``; moves the pointers ``ob`` on (``uo``, ``hit``: scratch)."""
        tab = self.tab
        uo = tab.ob_u.take(ob, out=uo, mode="clip")
        hit = np.flatnonzero(np.less_equal(uo, ue, out=hit))
        if not hit.size:
            return
        obh, rn = ob[hit], rowno[hit]
        uoh = tab.ob_u[obh]
        th, uh, vh = t[hit], u[hit], v[hit]
        while True:
            at = np.minimum(th + (uoh - uh) / vh, self.h)   # (<= h but for rounding)
            self.arrival_flat[rn + tab.ob_col_flat[obh]] = at
            obh += 1
            ob[hit] = obh
            uoh = tab.ob_u[obh]
            more = np.flatnonzero(uoh <= ue[hit])           # two objectives in one segment
            if not more.size:
                return
            hit, obh, rn, uoh = hit[more], obh[more], rn[more], uoh[more]
            th, uh, vh = th[more], uh[more], vh[more]

    def _snap_moving(self, t: np.ndarray, u: np.ndarray, v: np.ndarray, te: np.ndarray,
                     fin: np.ndarray, rowno: np.ndarray) -> None:
        """Positions at the snapshot times that fall in the moving segment from ``t`` to the
        next event (a sample that is done moves on at its speed; one whose time reached the
        horizon stays where it is)."""
        end = te.copy()
        end[fin] = np.inf
        still = t >= self.h
        for j, ts in enumerate(self.snaps):
            hit = np.flatnonzero((t <= ts) & (ts < end) & ~still)
            if hit.size:
                at = u[hit] + v[hit] * (_F4(ts) - t[hit])
                self.pos[rowno[hit] // self.tab.no, j] = at
            hit = np.flatnonzero(still & (t <= ts))
            if hit.size:
                self.pos[rowno[hit] // self.tab.no, j] = u[hit]

    def _snap_still(self, te: np.ndarray, isb: np.ndarray) -> None:
        """Positions at the snapshot times inside a wait at a barrier (after the event)."""
        for j, ts in enumerate(self.snaps):
            hit = np.flatnonzero(isb & (te <= ts) & (ts < self.t))
            if hit.size:
                self.pos[self.rowno[hit] // self.tab.no, j] = self.u[hit]


def simulate(plans: Sequence[ForcePlan], params: ForecastParams,
             rates: np.ndarray) -> list[np.ndarray]:
    """Arrival times (days after as_of, float32; inf = not within the horizon) per force,
    shape ``(samples, objectives of that force)``."""
    return simulate_full(plans, params, rates)[0]


def simulate_full(plans: Sequence[ForcePlan], params: ForecastParams, rates: np.ndarray,
                  snap_days: Sequence[float] = (), *, workers: int | None = None,
                  processes: bool | None = None,
                  width: int = _WIDTH) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Arrival times as :func:`simulate`, and each sample's position (km along its route) at
    the times ``snap_days`` (days after as_of), shape ``(samples, len(snap_days))`` per
    force (nan for a force without an estimate).

    ``workers``: how many parts the samples are split into, run in parallel (default: the
    machine's cores for runs large enough to gain, when called from the main thread; else
    one); ``processes``: run the parts in forked processes (no GIL to share; default where
    that is safe: Linux, and no other thread in this process) rather than threads;
    ``width``: samples in flight per part. None of them changes the result."""
    n = params.samples
    if not plans or n <= 0:
        return [np.empty((max(n, 0), len(p.objectives)), _F4) for p in plans], \
            [np.empty((max(n, 0), len(snap_days))) for p in plans]
    tab = _Tables(plans, params, rates)
    arrival, pos = _simulate(tab, len(plans), params, snap_days, workers, processes, width)
    arrivals = [arrival[i * n:(i + 1) * n, :len(p.objectives)] for i, p in enumerate(plans)]
    positions: list[np.ndarray] = []
    for i in range(len(plans)):
        if pos is None:
            positions.append(np.empty((n, 0)))
            continue
        pu = pos[i * n:(i + 1) * n].astype(float)
        positions.append(route_km(pu, tab.b[i], tab.d[i]))
    return arrivals, positions


def simulate_columns(cols: PlanColumns, params: ForecastParams, rates: np.ndarray,
                     snap_days: Sequence[float] = (), *, workers: int | None = None,
                     processes: bool | None = None, width: int = _WIDTH
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`simulate_full` of plans given as :class:`PlanColumns`, with the results as
    two arrays: arrival times ``(F * samples, cols.objectives)`` float32 (row ``force *
    samples + sample``; inf in the columns beyond a force's own objectives) and the
    positions ``(F * samples, len(snap_days))`` km along the route (None without
    ``snap_days``). A force's numbers are those :func:`simulate_full` gives its plan."""
    n, nf = params.samples, len(cols)
    if nf == 0 or n <= 0:
        return np.empty((max(nf * n, 0), cols.objectives), _F4), \
            (np.empty((max(nf * n, 0), len(snap_days))) if len(snap_days) else None)
    tab = _Tables(cols, params, rates)
    arrival, pos = _simulate(tab, nf, params, snap_days, workers, processes, width)
    if pos is not None:
        pos = route_km(pos.astype(float), np.repeat(tab.b, n)[:, None],
                       np.repeat(tab.d, n)[:, None])
    return arrival, pos


def _simulate(tab: _Tables, nf: int, params: ForecastParams, snap_days: Sequence[float],
              workers: int | None, processes: bool | None, width: int
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """The samples of ``nf`` forces' tables: arrivals ``(nf * samples, tab.no)`` and
    positions in effective km ``(nf * samples, len(snap_days))`` (or None), float32."""
    n = params.samples
    total = nf * n
    snaps = np.asarray(snap_days, dtype=float)
    if workers is None:   # workers of our own only from the main thread: a caller that runs
        # us in its worker threads (a server, a Dask worker) has its own parallelism, and
        # more threads than cores only slow NumPy down (they queue for the GIL)
        main = threading.current_thread() is threading.main_thread()
        workers = min(_cores(), max(1, total // _THREAD_MIN)) if main else 1
    workers = max(1, min(workers, total))
    if processes is None:   # forking is safe only where no other thread runs
        processes = _FORK and threading.active_count() == 1
    processes = processes and workers > 1
    # float32: the engine's precision (times to a fraction of a second); each pipeline fills
    # its own rows (first touch, in its thread or process)
    new = _shared if processes else np.empty
    arrival = new((total, tab.no), _F4)
    pos = new((total, snaps.size), _F4) if snaps.size else None
    cuts = np.linspace(0, total, workers + 1).astype(int)
    runs = [_Pipeline(tab, int(a), int(b), arrival, pos, snaps, width)
            for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]
    if len(runs) == 1:
        runs[0].run()
    elif processes:
        _run_forked(runs)
    else:
        with ThreadPoolExecutor(len(runs)) as ex:
            for f in [ex.submit(r.run) for r in runs]:
                f.result()
    return arrival, pos


_FORK = sys.platform == "linux"


def _shared(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """An array in anonymous shared memory (MAP_SHARED): forked children write into it."""
    count = int(np.prod(shape))
    buf = mmap.mmap(-1, max(1, count * np.dtype(dtype).itemsize))
    return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape)


def _run_forked(runs: list[_Pipeline]) -> None:
    """Run all pipelines but the last in forked children and the last here; a child's
    failure is raised here with its traceback."""
    kids = []
    for r in runs[:-1]:
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:                                       # the child
            os.close(rfd)
            code = 0
            try:
                r.run()
            except BaseException:  # noqa: BLE001 (reported to the parent, whatever it is)
                os.write(wfd, traceback.format_exc().encode()[-8000:])
                code = 1
            os._exit(code)
        os.close(wfd)
        kids.append((pid, rfd))
    failed = []
    try:
        runs[-1].run()
    finally:
        for pid, rfd in kids:
            with os.fdopen(rfd, "rb") as fh:
                msg = fh.read().decode(errors="replace")
            _, status = os.waitpid(pid, 0)
            if status != 0:
                failed.append(msg or f"exit status {status}")
    if failed:
        raise RuntimeError("forecast worker process failed:\n" + failed[0])


def _cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
    """A square root of a covariance (or of each of a stack) that tolerates rounding
    (eigen-clipped)."""
    c = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    w, vecs = np.linalg.eigh(c)
    return vecs * np.sqrt(np.clip(w, 0.0, None))[..., None, :]


def quantile(x: np.ndarray, q: float) -> float:
    """The q-quantile of samples that may hold inf (no interpolation into inf)."""
    v = float(np.quantile(x, q, method="inverted_cdf"))
    return v if math.isfinite(v) else math.inf


def quantiles(x: np.ndarray, qs: Sequence[float]) -> list[float]:
    """:func:`quantile` at several levels, from one partial sort (np.quantile partitions
    around all the levels' order statistics at once)."""
    return [v if math.isfinite(v) else math.inf
            for v in np.quantile(x, np.asarray(qs, dtype=float), method="inverted_cdf").tolist()]
