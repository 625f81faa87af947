"""The estimate stage over columns: arrays of reports in, arrays of force states out.

For archives of millions of forces, where one Python object per force or report would cost
more than the filtering itself. Input: one row per report, ``force`` (an index ``0..F-1``),
``t`` (days, UTC epoch seconds / 86400), ``z`` (km along the force's route, already
projected), ``r`` (measurement variance, km²) and ``valid`` (False: a report kept in the
sequence but not used, like an off-axis one). Output: per force, the IMM's state at its last
report used.

The maths and the order of operations are those of :func:`warroom.estimate.track.estimate`
(``tests/test_scale.py`` checks the two agree to the last bit on the same measurements):

1. rows sorted by force, then time (stable: ties keep their input order), padded to
   ``(F, N)`` with the last time repeated (``_pad`` in track.py);
2. a diffuse prior anchored at the first valid report (``s`` sd ``prior_s_sd_km``, ``v``
   0 ± ``prior_v_sd_kmpd``);
3. outliers: the Kalman filter and RTS smoother, each report's leave-one-out chi-square
   ``e² / (r - Ps00)``, the worst report of a force above the gate dropped and the force
   refitted, until none is above it (at most ``max_outliers``). Forces are independent, so
   after the first pass only the forces that lost a report are refitted, not all of them;
4. the IMM over the reports kept, compacted (a left-out report does not split a step).

Memory is bounded by ``block`` forces at a time; the numbers do not depend on the blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warroom.estimate.imm import imm_filter
from warroom.estimate.kalman import kalman_filter, rts_smoother
from warroom.estimate.track import EstimateParams


@dataclass
class ColumnarEstimate:
    """Per force (index ``0..F-1``): the IMM state at its last report used (km, km/day,
    days). Forces without a report used have ``n_used == 0`` and NaN states."""

    s: np.ndarray           # (F,) km along the route
    v: np.ndarray           # (F,) km/day
    cov: np.ndarray         # (F, 2, 2)
    mu: np.ndarray          # (F, 3) regime probabilities: halted, advancing, pursuit
    last_t: np.ndarray      # (F,) days, time of the last report used
    n_reports: np.ndarray   # (F,) reports given
    n_used: np.ndarray      # (F,) reports used
    n_outliers: np.ndarray  # (F,) reports dropped as outliers

    def __len__(self) -> int:
        return len(self.s)


def sort_rows(force: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The order of rows by force, then time; ties keep their input order. (Archives usually
    hold each force's reports in time order already: then a stable sort by force suffices,
    which is many times cheaper than sorting by two keys.)"""
    order = _order(force, t)
    return np.arange(len(force)) if order is None else order


def _order(force: np.ndarray, t: np.ndarray) -> np.ndarray | None:
    """As :func:`sort_rows`, or None where the rows are in that order already (the usual
    case of an archive: nothing to gather)."""
    if len(force) < 2:
        return None
    down = force[1:] < force[:-1]
    if not down.any():
        same = np.logical_not(down, out=down)
        np.equal(force[1:], force[:-1], out=same)
        if not (same & (t[1:] < t[:-1])).any():
            return None
        return np.lexsort((t, force))
    order = np.argsort(force, kind="stable")
    fs, ts = force[order], t[order]
    if ((fs[1:] == fs[:-1]) & (ts[1:] < ts[:-1])).any():
        order = np.lexsort((t, force))
    return order


def pad(force: np.ndarray, t: np.ndarray, z: np.ndarray, r: np.ndarray, valid: np.ndarray,
        n_forces: int, presorted: bool = False
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(t, z, r, valid)`` as ``(F, N)`` arrays (rows sorted by time, padding: last time
    repeated, z 0, r 1, not valid) and the counts per force (``presorted``: the rows are in
    :func:`sort_rows` order already)."""
    order = None if presorted else _order(force, t)
    if order is not None:
        force, t, z, r, valid = force[order], t[order], z[order], r[order], valid[order]
    counts = np.bincount(force, minlength=n_forces)
    return (*_pad_sorted(force, t, z, r, valid, counts), counts)


def _pad_sorted(force: np.ndarray, t: np.ndarray, z: np.ndarray, r: np.ndarray,
                valid: np.ndarray | None, counts: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`pad` of rows in :func:`sort_rows` order, ``counts`` per force given (``valid``
    None: all valid). The arrays are stored time-major (``(F, N)`` views of ``(N, F)``
    memory, Fortran order), the filters' own layout: they read a time step of all forces
    as one contiguous row. Each report goes to its slot ``k * F + f`` (``k``: its rank in
    its force): one scatter per column."""
    n_forces = len(counts)
    n = max(1, int(counts.max(initial=0)))
    ends = np.cumsum(counts)
    # slot of row i: (i - first row of f) * F + f
    slot = (ends - counts).take(force)
    np.subtract(np.arange(len(force)), slot, out=slot)
    slot *= n_forces
    slot += force
    # padding: a force's last time repeated (0 for a force without reports)
    last = np.where(counts > 0, t.take(np.maximum(ends - 1, 0), mode="clip") if len(t)
                    else 0.0, 0.0)
    tt = np.tile(last, n)
    tt[slot] = t
    finite = np.isfinite(z)
    all_finite = bool(finite.all())
    zz = np.zeros(n_forces * n)
    zz[slot] = z if all_finite else np.nan_to_num(z)
    rr = np.ones(n_forces * n)
    rr[slot] = r
    vv = np.zeros(n_forces * n, dtype=bool)
    if valid is None:
        vv[slot] = finite
    else:
        vv[slot] = valid if all_finite else valid & finite
    shape = (n, n_forces)
    return tt.reshape(shape).T, zz.reshape(shape).T, rr.reshape(shape).T, vv.reshape(shape).T


def _prior(z: np.ndarray, valid: np.ndarray,
           params: EstimateParams) -> tuple[np.ndarray, np.ndarray]:
    f = len(z)
    first = np.argmax(valid, axis=1)
    s0 = np.where(valid.any(axis=1), z[np.arange(f), first], 0.0)
    x0 = np.stack([s0, np.zeros(f)], axis=1)
    p0 = np.zeros((f, 2, 2))
    p0[:, 0, 0] = params.prior_s_sd_km**2
    p0[:, 1, 1] = params.prior_v_sd_kmpd**2
    return x0, p0


def _chi2(t: np.ndarray, z: np.ndarray, r: np.ndarray, used: np.ndarray, x0: np.ndarray,
          p0: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out chi-square of every used report (-inf elsewhere, and for forces with
    two reports or fewer: a lone report cannot be contradicted), and the residuals."""
    kf = kalman_filter(t, z, r, used, x0, p0, q)
    xs, ps = rts_smoother(kf, t, q)
    e = z - xs[..., 0]
    var = np.maximum(r - ps[..., 0, 0], 1e-6 * r)
    chi2 = np.where(used, e * e / var, -np.inf)
    chi2 = np.where(used.sum(axis=1, keepdims=True) > 2, chi2, -np.inf)
    return chi2, e


def reject_outliers(t: np.ndarray, z: np.ndarray, r: np.ndarray, valid: np.ndarray,
                    x0: np.ndarray, p0: np.ndarray, params: EstimateParams) -> np.ndarray:
    """The reports kept (``(F, N)`` bool): the worst of each force above the gate dropped,
    one per round, refitting only the forces that lost one."""
    used = valid.copy(order="K")
    active: np.ndarray | None = None  # None: every force (no copies of the inputs)
    for _ in range(params.max_outliers + 1):
        if active is None:
            chi2, _ = _chi2(t, z, r, used, x0, p0, params.q_kf)
        elif active.size == 0:
            break
        else:
            chi2, _ = _chi2(t[active], z[active], r[active], used[active], x0[active],
                            p0[active], params.q_kf)
        worst = np.argmax(chi2, axis=1)
        hit = chi2[np.arange(len(chi2)), worst] > params.gate
        active = np.flatnonzero(hit) if active is None else active[hit]
        used[active, worst[hit]] = False
    return used


def estimate_padded(t: np.ndarray, z: np.ndarray, r: np.ndarray, valid: np.ndarray,
                    params: EstimateParams, counts: np.ndarray | None = None
                    ) -> ColumnarEstimate:
    """Estimate forces given as padded ``(F, N)`` arrays (see :func:`pad`; ``counts``: the
    reports per force, default the valid ones)."""
    f, n = t.shape
    x0, p0 = _prior(z, valid, params)
    used = reject_outliers(t, z, r, valid, x0, p0, params)
    # The IMM sees only the reports kept, compacted to the front of each row (a stable
    # partition, kept first). Most rows are a prefix of kept reports already: only the others
    # are reordered.
    n_kept = used.sum(axis=1)
    cvalid = (np.arange(n)[:, None] < n_kept[None, :]).T  # the inputs' layout (time-major)
    moved = np.flatnonzero((used != cvalid).any(axis=1))
    ct, cz, cr = t, z, r
    if moved.size:
        order = np.argsort(~used[moved], axis=1, kind="stable")
        rows = moved[:, None]
        ct, cz, cr = t.copy(order="K"), z.copy(order="K"), r.copy(order="K")
        ct[moved], cz[moved], cr[moved] = t[rows, order], z[rows, order], r[rows, order]
    idx = np.arange(f)
    at = np.maximum(n_kept - 1, 0)
    last_t = ct[idx, at]
    ct = np.where(cvalid, ct, last_t[:, None])
    imm = imm_filter(ct, cz, cr, cvalid, x0, p0, params=params.imm)
    none = n_kept == 0
    s = np.where(none, np.nan, np.maximum(imm.x[idx, at, 0], 0.0))
    v = np.where(none, np.nan, imm.x[idx, at, 1])
    cov = np.where(none[:, None, None], np.nan, imm.P[idx, at])
    mu = np.where(none[:, None], np.nan, imm.mu[idx, at])
    return ColumnarEstimate(s=s, v=v, cov=cov, mu=mu, last_t=np.where(none, np.nan, last_t),
                            n_reports=valid.sum(axis=1) if counts is None else counts,
                            n_used=n_kept, n_outliers=(valid & ~used).sum(axis=1))


def estimate_columns(force: np.ndarray, t: np.ndarray, z: np.ndarray, r: np.ndarray,
                     n_forces: int, valid: np.ndarray | None = None,
                     params: EstimateParams | None = None,
                     block: int = 32_768) -> ColumnarEstimate:
    """Estimate ``n_forces`` forces from report columns (see the module docstring), in
    blocks of at most ``block`` forces (of equal size)."""
    params = params or EstimateParams()
    force = np.asarray(force)
    if force.dtype.kind not in "iu":
        force = force.astype(np.int64)
    t = np.asarray(t, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    r = np.broadcast_to(np.asarray(r, dtype=np.float64), t.shape)
    valid = None if valid is None else np.broadcast_to(np.asarray(valid, dtype=bool), t.shape)
    if len(force) and (force.min() < 0 or force.max() >= n_forces):
        raise ValueError(f"force indices must lie in [0, {n_forces})")
    if n_forces == 0:
        return ColumnarEstimate(*(np.empty((0,) + shape, dtype=dt) for shape, dt in (
            ((), float), ((), float), ((2, 2), float), ((3,), float), ((), float),
            ((), np.int64), ((), np.int64), ((), np.int64))))
    order = _order(force, t)
    if order is not None:
        force, t, z, r = force[order], t[order], z[order], r[order]
        valid = None if valid is None else valid[order]
    counts = np.bincount(force, minlength=n_forces)
    bounds = np.concatenate(([0], np.cumsum(counts)))
    n_blocks = -(-n_forces // block)
    edges = [round(i * n_forces / n_blocks) for i in range(n_blocks + 1)]
    parts = []
    for f0, f1 in zip(edges[:-1], edges[1:], strict=True):
        a, b = bounds[f0], bounds[f1]
        tt, zz, rr, vv = _pad_sorted(force[a:b] - f0, t[a:b], z[a:b], r[a:b],
                                     None if valid is None else valid[a:b], counts[f0:f1])
        parts.append(estimate_padded(tt, zz, rr, vv, params, counts[f0:f1]))
    if len(parts) == 1:
        return parts[0]
    return ColumnarEstimate(*(np.concatenate([getattr(p, k) for p in parts])
                              for k in ColumnarEstimate.__dataclass_fields__))
