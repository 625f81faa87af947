"""Monte Carlo simulation of every force's advance, event by event.

Why event-driven: between events a sample moves at a constant speed along its route (or, past
its supply range, along a closed-form logistics curve), so the time of the next event is
computed exactly instead of stepping hours through empty road. Events: a regime switch (the
estimate's Markov chain; the new regime draws a new speed), or reaching an obstacle (wait a
log-normal delay) or a halt line (stop if the order is obeyed and in force). Objectives are
not events: a sample's arrival at an objective is read off the segment that passes it. A
sample ends when its next event lies beyond the horizon.

Samples flow through a fixed-width pipeline (``_WIDTH`` samples in flight, float32 state):
each pass handles one event of every sample in flight, as NumPy arrays; a sample that ends
frees its slot for the next one, so memory is the pipeline's width plus the results, whatever
the horizon or the number of samples, and the arrays stay in the processor's cache. The
branches of an event (switch or barrier) are computed for every slot and chosen bitwise,
which is cheaper than splitting the slots. Long runs split the samples between threads
(NumPy releases the GIL in its loops).

Randomness: counter-based (:mod:`warroom.forecast.rng`): each draw is a hash of the seed, the
force id, the sample, the event number and its purpose, so the output does not depend on the
order forces are listed, on which other forces are simulated with them, on the pipeline's
width nor on the threads; and nothing is drawn ahead.

Logistics: with supply base at ``b`` km and range ``D`` km, the speed at ``s`` is
``v * min(1, D / (s - b))``. In the "effective distance" ``e(s) = s`` up to ``b + D`` and
``b + D + ((s - b)^2 - D^2) / (2 D)`` beyond, a sample moves at the constant ``v``: the
travel time from ``s1`` to ``s2`` is ``(e(s2) - e(s1)) / v`` (the closed form of
``ds / dt = v D / (s - b)``). The engine works in effective km and maps positions back.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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


class _Tables:
    """The per-force constants of one simulation, as flat arrays for gathers."""

    def __init__(self, plans: Sequence[ForcePlan], params: ForecastParams,
                 rates: np.ndarray) -> None:
        nf = len(plans)
        self.n = params.samples
        self.horizon = float(params.horizon_days)
        self.k_max = params.max_switches
        self.no = max(1, max(len(p.objectives) for p in plans))
        self.b = np.array([p.base_km for p in plans], dtype=float)
        self.d = np.array([p.supply_free_km for p in plans], dtype=float)
        # barriers that are events (obstacles, halt lines) and objectives, each in route order
        fid = np.repeat(np.arange(nf), [len(p.bar_s) for p in plans])
        bar_s, kind, bar_a, bar_b, bar_c = (
            np.concatenate([np.asarray(getattr(p, f), dtype=float) for p in plans]
                           + [np.empty(0)])
            for f in ("bar_s", "bar_kind", "bar_a", "bar_b", "bar_c"))
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
        # the start: the estimate's posterior and regime probabilities, a column per force
        x = np.stack([p.x for p in plans]).astype(float)
        chol = _chol(np.stack([p.cov for p in plans]).astype(float))
        regime = np.stack([p.regime for p in plans]).astype(float)
        reg_cdf = np.cumsum(regime / regime.sum(axis=1, keepdims=True), axis=1)
        self.per_force = np.stack([
            x[:, 0], x[:, 1], chol[:, 0, 0], chol[:, 0, 1], chol[:, 1, 0], chol[:, 1, 1],
            [p.t0 for p in plans], [p.pace_sd for p in plans], reg_cdf[:, 0],
            reg_cdf[:, 1]]).astype(_F4)
        self.supplied = np.where(np.isnan(self.b), np.inf, self.b + self.d).astype(_F4)
        self.base_keys = rng.force_bases(params.seed, [p.force for p in plans])
        # speeds: log of each force's median per regime (halted: -inf, i.e. 0 km/day)
        with np.errstate(divide="ignore"):
            self.log_med = np.log(np.array([[0.0, p.advancing_kmpd, p.pursuit_kmpd]
                                            for p in plans])).astype(_F4).ravel()
        self.sigma = np.array([0.0, params.advancing_sigma, params.pursuit_sigma], dtype=_F4)
        # the regime chain: holding times and where a switch leads
        rates = np.asarray(rates, dtype=float)
        exit_rate = -np.diag(rates)
        with np.errstate(divide="ignore"):
            self.inv_exit = np.where(exit_rate > 0, 1.0 / np.where(exit_rate > 0, exit_rate,
                                                                   1.0), np.inf)
        self.neg_inv_exit = (-self.inv_exit).astype(_F4)
        jump = np.where(np.eye(3, dtype=bool), 0.0, rates) / np.where(exit_rate > 0, exit_rate,
                                                                      1.0)[:, None]
        # from regime r the chain jumps to the lower of the other two (jump_to[2r]) if a
        # normal falls below jump_z[r], the probit of that jump's probability, else to the
        # higher (jump_to[2r + 1])
        to = np.array([[1, 2], [0, 2], [0, 1]])
        self.jump_to = to.ravel().astype(_IX)
        self.jump_z = _probit(jump[np.arange(3), to[:, 0]]).astype(_F4)


def _probit(p: np.ndarray) -> np.ndarray:
    """The standard normal quantile of each probability (0: -inf, 1: inf)."""
    p = np.asarray(p, dtype=float)
    out = np.empty_like(p)
    dist = NormalDist()
    for q in np.unique(p):
        out[p == q] = (-math.inf if q <= 0 else math.inf if q >= 1 else dist.inv_cdf(float(q)))
    return out


def _select(mask: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = a where mask else b``, bitwise on float32 (``mask``: uint32 all ones or zeros;
    ``out`` may be ``a`` but not ``b``); exact for inf and nan, and without np.where's
    branches."""
    ov, bv = out.view(_U4), b.view(_U4)
    np.bitwise_xor(a.view(_U4), bv, out=ov)
    np.bitwise_and(ov, mask, out=ov)
    np.bitwise_xor(ov, bv, out=ov)
    return out


class _Pipeline:
    """The samples ``[lo, hi)`` (global numbers: force * n + sample) in a pipeline of fixed
    width; writes arrival times and snapshot positions (effective km) into shared arrays."""

    STATE = ("t", "u", "v", "tsw", "lp", "reg", "eb", "ob", "fi3", "rowno", "k", "xk")

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
        self.reg, self.eb, self.ob = np.zeros(w, _IX), np.zeros(w, _IX), np.zeros(w, _IX)
        self.fi3, self.rowno = np.zeros(w, _IX), np.zeros(w, _IX)  # row * objectives
        self.k = np.ones(w, np.int32)                 # regime switches so far (+1)
        self.xk = np.zeros(w, np.uint64)              # the sample's next stream word
        self.batch = _BATCH                           # samples started at once
        self.res: dict[str, np.ndarray] = {}
        self.res_at = self.res_n = 0
        # scratch, reused every pass
        self._f = np.empty((12, w), _F4)
        self._m = np.empty((2, w), _U4)
        self._b = np.empty((4, w), bool)
        self._i = np.empty((2, w), _IX)
        self._h = np.empty((2, w), np.uint64)
        self._tmp = np.empty((2, w), np.uint64)

    # -- the start of a sample ------------------------------------------------------------

    def _start(self, a: int, b: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """State of samples [a, b) at their start, and which of them are already done."""
        tab, h, n = self.tab, self.h, self.tab.n
        m = b - a
        forces = np.arange(a // n, (b - 1) // n + 1)      # samples are in force order
        counts = np.minimum(b, forces * n + n) - np.maximum(a, forces * n)
        fi = np.repeat(forces, counts)
        x_s, x_v, c00, c01, c10, c11, t0, pace_sd, rc0, rc1 = np.repeat(
            tab.per_force[:, forces[0]:forces[-1] + 1], counts, axis=1)
        g = np.arange(a, b, dtype=_IX)
        with np.errstate(over="ignore"):
            key = (g - fi * n).astype(np.uint64)           # the sample's number in its force
            key *= rng.GOLDEN
            key += np.repeat(tab.base_keys[forces[0]:forces[-1] + 1], counts)
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
        tsw *= tab.neg_inv_exit.take(reg)
        tsw += t
        zp *= pace_sd                                      # log of the sample's own pace
        # barriers and objectives already behind the start
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
        if self.pos is not None:   # a sample done at its start stays where it is
            dn = np.flatnonzero(done)
            self.pos[g[dn]] = np.where(np.isnan(t0[dn]), np.nan, s[dn])[:, None]
        g *= tab.no
        fi *= 3
        state = {"t": t, "u": s, "v": v, "tsw": tsw, "lp": zp, "reg": reg, "eb": ev, "ob": ob,
                 "fi3": fi, "rowno": g, "k": np.ones(m, np.int32), "xk": key}
        return state, done

    def _refill(self, slots: np.ndarray) -> None:
        """Start the next samples in these free slots; slots left over go idle. Samples are
        started in batches (a reservoir), which costs less than starting a few per pass."""
        while slots.size:
            if self.res_at >= self.res_n:
                if self.next >= self.end:
                    break
                b = min(self.end, self.next + self.batch)
                state, done = self._start(self.next, b)
                self.next = b
                keep = np.flatnonzero(~done) if done.any() else slice(None)
                self.res = {name: np.ascontiguousarray(x[keep], dtype=getattr(self, name).dtype)
                            for name, x in state.items()}
                self.res_at, self.res_n = 0, len(self.res["t"])
            k = min(slots.size, self.res_n - self.res_at)
            put, slots = slots[:k], slots[k:]
            for name in self.STATE:
                getattr(self, name)[put] = self.res[name][self.res_at:self.res_at + k]
            self.res_at += k
        self.t[slots] = np.nan

    def _exhausted(self) -> bool:
        return self.next >= self.end and self.res_at >= self.res_n

    # -- the passes -------------------------------------------------------------------------

    def run(self) -> None:
        tab = self.tab
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
            self._pass(tab)

    def _pass(self, tab: _Tables) -> None:
        """One event of every sample in flight."""
        w = self.w
        t, u, v, tsw, h = self.t, self.u, self.v, self.tsw, self.h
        ub, tb, sw, um, z, zs, th, lb, xs, xb, sg, e = self._f[:, :w]
        mask, mb = self._m[:, :w]
        isb, fin, nb, go = self._b[:, :w]
        new, idx = self._i[:, :w]
        hh, tmp = self._h[0, :w], self._h[1, :w]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # the next event: the next obstacle or line, or the next switch
            tab.ev_u.take(self.eb, out=ub, mode="clip")
            np.subtract(ub, u, out=tb)
            np.divide(tb, v, out=tb)                          # inf (or nan) if v == 0
            np.add(tb, t, out=tb)
            np.less_equal(tb, tsw, out=isb)                   # a barrier comes first
            np.negative(isb.view(np.uint8), out=mask, dtype=_U4)
            # the event's time: the barrier's, or the switch's (tb >= t; a switch that fell
            # inside a wait happens at its end; fmin: tb is nan where v = 0 at a barrier)
            te = np.fmin(tb, tsw, out=tb)
            np.maximum(te, t, out=te)
            np.greater(te, h, out=fin)                        # beyond the horizon: done
            # where the sample is at the event, or at the horizon if that comes first
            np.minimum(te, h, out=um)
            np.subtract(um, t, out=um)
            np.multiply(um, v, out=um)
            np.add(um, u, out=um)
            np.logical_not(fin, out=go)
            go &= isb                                         # at a barrier, in the horizon
            np.negative(go.view(np.uint8), out=mb, dtype=_U4)
            ue = _select(mb, ub, um, ub)
            self._objectives(ue, sw, zs)
            if self.pos is not None:
                self._snap_moving(te, fin)
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
            reg = self.reg
            tab.jump_z.take(reg, out=xs, mode="clip")
            np.greater(zs, xs, out=nb)
            np.add(reg, reg, out=idx)
            idx += nb
            tab.jump_to.take(idx, out=new, mode="clip")
            np.add(self.fi3, new, out=idx)
            tab.log_med.take(idx, out=xs, mode="clip")
            xs += self.lp
            tab.sigma.take(new, out=sg, mode="clip")
            sg *= z
            xs += sg                                          # log of the new speed
            tab.neg_inv_exit.take(new, out=sw, mode="clip")
            sw *= lb
            sw += te                                          # the next switch
            # a barrier: an obstacle's delay (z); a halt line: none
            tab.mu.take(self.eb, out=xb, mode="clip")
            tab.sig.take(self.eb, out=sg, mode="clip")
            sg *= z
            xb += sg
            _select(mask, xb, xs, xb)
            np.exp(xb, out=e)                                 # a speed or a delay
            # the new state
            np.copyto(u, ue)
            _select(mask, v, e, v)
            _select(mask, tsw, sw, tsw)
            ev = e.view(_U4)
            ev &= mask
            np.add(te, e, out=t)                              # the delay at a barrier
            new -= reg                                        # the regime's change
            np.logical_not(isb, out=nb)
            new *= nb
            reg += new
            self.k += nb
            if int(self.k.max()) >= tab.k_max:
                tsw[self.k >= tab.k_max] = np.inf
            # a halt line: stop there if the order is obeyed (zs below the probit of p_obey)
            # and in force
            np.equal(e, 0.0, out=nb)
            nb &= go
            halt = np.flatnonzero(nb)
            if halt.size:
                at = self.eb[halt]
                he = te[halt]
                until = tab.until[at]
                stop = (zs[halt] < tab.obey_z[at]) & (he >= tab.start[at]) & (he < until)
                t[halt[stop]] = until[stop]
            self.eb += isb
            if self.pos is not None:
                self._snap_still(te, fin, isb)
            done = np.flatnonzero(fin)
            if done.size:
                self._refill(done)

    def _objectives(self, ue: np.ndarray, uo: np.ndarray, at: np.ndarray) -> None:
        """Arrivals at the objectives passed on the way to ``ue`` (``uo``, ``at``:
        scratch)."""
        tab = self.tab
        tab.ob_u.take(self.ob, out=uo, mode="clip")
        hit = np.flatnonzero(uo <= ue)
        if not hit.size:
            return
        np.subtract(uo, self.u, out=at)                      # (for every slot: cheaper
        np.divide(at, self.v, out=at)                        # than gathering four arrays)
        np.add(at, self.t, out=at)
        ob, rn = self.ob[hit], self.rowno[hit]
        ath = np.minimum(at[hit], self.h)                    # (<= h but for rounding)
        while True:
            self.arrival_flat[rn + tab.ob_col_flat[ob]] = ath
            ob += 1
            self.ob[hit] = ob
            uoh = tab.ob_u[ob]
            more = np.flatnonzero(uoh <= ue[hit])            # two objectives in one segment
            if not more.size:
                return
            hit, ob, rn, uoh = hit[more], ob[more], rn[more], uoh[more]
            ath = np.minimum(self.t[hit] + (uoh - self.u[hit]) / self.v[hit], self.h)

    def _snap_moving(self, te: np.ndarray, fin: np.ndarray) -> None:
        """Positions at the snapshot times that fall in this pass's moving segment (a sample
        that ends moves on at its speed; one whose time reached the horizon stays)."""
        t, end = self.t, te.copy()
        end[fin] = np.inf
        end[t >= self.h] = t[t >= self.h]
        for j, ts in enumerate(self.snaps):
            hit = np.flatnonzero((t <= ts) & (ts < end))
            if hit.size:
                at = self.u[hit] + self.v[hit] * (_F4(ts) - t[hit])
                self.pos[self.rowno[hit] // self.tab.no, j] = at

    def _snap_still(self, te: np.ndarray, fin: np.ndarray, isb: np.ndarray) -> None:
        """Positions at the snapshot times inside a wait at a barrier (after the event)."""
        for j, ts in enumerate(self.snaps):
            hit = np.flatnonzero(isb & ~fin & (te <= ts) & (ts < self.t))
            if hit.size:
                self.pos[self.rowno[hit] // self.tab.no, j] = self.u[hit]


def simulate(plans: Sequence[ForcePlan], params: ForecastParams,
             rates: np.ndarray) -> list[np.ndarray]:
    """Arrival times (days after as_of; inf = not within the horizon) per force, shape
    ``(samples, objectives of that force)``."""
    return simulate_full(plans, params, rates)[0]


def simulate_full(plans: Sequence[ForcePlan], params: ForecastParams, rates: np.ndarray,
                  snap_days: Sequence[float] = (), *, workers: int | None = None,
                  width: int = _WIDTH) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Arrival times as :func:`simulate`, and each sample's position (km along its route) at
    the times ``snap_days`` (days after as_of), shape ``(samples, len(snap_days))`` per
    force (nan for a force without an estimate).

    ``workers``: threads (default: the machine's cores, for runs large enough to gain);
    ``width``: samples in flight per thread. Neither changes the result."""
    n = params.samples
    if not plans or n <= 0:
        return [np.empty((max(n, 0), len(p.objectives))) for p in plans], \
            [np.empty((max(n, 0), len(snap_days))) for p in plans]
    tab = _Tables(plans, params, rates)
    total = len(plans) * n
    arrival = np.empty((total, tab.no))        # each pipeline fills its own rows (first touch)
    snaps = np.asarray(snap_days, dtype=float)
    pos = np.empty((total, snaps.size), dtype=_F4) if snaps.size else None
    if workers is None:
        workers = min(_cores(), max(1, total // _THREAD_MIN))
    cuts = np.linspace(0, total, max(1, workers) + 1).astype(int)
    runs = [_Pipeline(tab, int(a), int(b), arrival, pos, snaps, width)
            for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]
    if len(runs) == 1:
        runs[0].run()
    else:
        with ThreadPoolExecutor(len(runs)) as ex:
            for f in [ex.submit(r.run) for r in runs]:
                f.result()
    arrivals = [arrival[i * n:(i + 1) * n, :len(p.objectives)] for i, p in enumerate(plans)]
    positions: list[np.ndarray] = []
    for i in range(len(plans)):
        if pos is None:
            positions.append(np.empty((n, 0)))
            continue
        pu = pos[i * n:(i + 1) * n].astype(float)
        positions.append(route_km(pu, tab.b[i], tab.d[i]))
    return arrivals, positions


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
