"""Batched Kalman filter and Rauch–Tung–Striebel smoother, nearly-constant-velocity model.

State and units
---------------
Each force ``f`` has the state ``x = [s, v]``: ``s`` is the distance along its route in km and
``v`` its speed along the route in km/day. Times ``t`` are in days (floats), field reports
``z = s + e`` are in km with ``e ~ N(0, r)``, ``r`` in km². The measurement matrix is therefore
``H = [1, 0]``.

Model (NCV, continuous white-noise acceleration)
------------------------------------------------
Between two reports ``dt = t[k] - t[k-1]`` days apart the state moves as ::

    x[k] = F(dt) x[k-1] + w,   F(dt) = [[1, dt],
                                         [0,  1]],
    w ~ N(0, Q(dt)),           Q(dt) = q [[dt³/3, dt²/2],
                                          [dt²/2, dt   ]],

where ``q`` (km²/day³) is the power spectral density of the white acceleration: the speed
performs a random walk whose variance grows by ``q·dt`` (km²/day²) in ``dt`` days. For example
``q = 1`` lets the speed drift by about 1 km/day per √day.

Filter
------
Predict: ``x⁻ = F x``, ``P⁻ = F P Fᵀ + Q``. Update with a report: innovation ``ν = z - s⁻``
(km), its variance ``S = P⁻₀₀ + r`` (km²), gain ``K = P⁻ Hᵀ / S = [P⁻₀₀, P⁻₀₁] / S``,
``x = x⁻ + K ν`` and ``P = (I - K H) P⁻``; the log-likelihood of the report is
``-(log(2π S) + ν²/S) / 2``. The 2×2 algebra is written out on element arrays
(``P00``, ``P01``, ``P11``), one array element per force, with a Python loop over the time
index only. Results equal filterpy's ``KalmanFilter`` (which uses the Joseph form) to
rounding.

Batching
--------
Inputs have shape ``(F, N)``: ``F`` forces, ``N`` report slots per force. Forces with fewer
reports are padded with ``valid = False`` slots (with non-decreasing times, e.g. the last time
repeated): a slot that is not valid is a pure prediction to its time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "KalmanResult",
    "kalman_filter",
    "ncv_process_noise",
    "ncv_transition",
    "rts_smoother",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Forces processed together (cache blocking) and time steps per chunk of precomputed
#: per-step coefficients. Work arrays are allocated once per call and reused: fresh memory is
#: expensive (page faults), cached memory is not.
_BLOCK = 8192
_CHUNK = 32


def ncv_transition(dt: ArrayLike) -> FloatArray:
    """NCV state-transition matrix ``F(dt) = [[1, dt], [0, 1]]``.

    Parameters
    ----------
    dt:
        Time step(s) in days, any shape ``S``.

    Returns
    -------
    Array of shape ``S + (2, 2)`` mapping ``[s km, v km/day]`` at ``t`` to ``t + dt``.
    """
    d = np.asarray(dt, dtype=np.float64)
    out = np.zeros(d.shape + (2, 2))
    out[..., 0, 0] = 1.0
    out[..., 0, 1] = d
    out[..., 1, 1] = 1.0
    return out


def ncv_process_noise(dt: ArrayLike, q: ArrayLike) -> FloatArray:
    """NCV process-noise covariance ``Q(dt) = q [[dt³/3, dt²/2], [dt²/2, dt]]``.

    Parameters
    ----------
    dt:
        Time step(s) in days.
    q:
        Acceleration noise power spectral density in km²/day³ (broadcast against ``dt``).

    Returns
    -------
    Array of shape ``broadcast(dt, q).shape + (2, 2)``; units km² / km²·day⁻¹ / km²·day⁻².
    """
    d, qq = np.broadcast_arrays(np.asarray(dt, dtype=np.float64), np.asarray(q, dtype=np.float64))
    out = np.empty(d.shape + (2, 2))
    qd = qq * d
    out[..., 0, 0] = qd * d * d / 3.0
    out[..., 0, 1] = qd * d / 2.0
    out[..., 1, 0] = out[..., 0, 1]
    out[..., 1, 1] = qd
    return out


@dataclass
class KalmanResult:
    """Output of :func:`kalman_filter` for ``F`` forces and ``N`` report slots.

    Attributes
    ----------
    x_pred, P_pred:
        Predicted (prior) state ``[s km, v km/day]`` and covariance at each ``t[:, k]``,
        shapes ``(F, N, 2)`` and ``(F, N, 2, 2)``. At ``k = 0`` they equal ``x0``, ``P0``.
    x, P:
        Filtered (posterior) state and covariance, same shapes. Equal to the prediction where
        the report was not used.
    innovation:
        ``ν = z - s⁻`` in km, ``(F, N)``, for every slot (also unused ones; NaN if ``z`` is).
    innovation_var:
        ``S = P⁻₀₀ + r`` in km², ``(F, N)``; ``ν²/S`` is the normalised innovation squared.
    used:
        ``(F, N)`` bool, the update was applied (``valid`` and not gated).
    gated:
        ``(F, N)`` bool, a valid report rejected by the gate.
    loglik:
        ``(F,)`` sum over used reports of ``-(log(2π S) + ν²/S) / 2``.

    The arrays are transposed views of time-major storage (one contiguous write per step), so
    they are not C-contiguous; ``np.ascontiguousarray`` gives a copy in force-major order.
    """

    x_pred: FloatArray
    P_pred: FloatArray
    x: FloatArray
    P: FloatArray
    innovation: FloatArray
    innovation_var: FloatArray
    used: BoolArray
    gated: BoolArray
    loglik: FloatArray


def _prepare_inputs(
    t: ArrayLike,
    z: ArrayLike,
    r: ArrayLike,
    valid: ArrayLike,
    x0: ArrayLike,
    P0: ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray, BoolArray, FloatArray, FloatArray]:
    """Validate and broadcast the common filter inputs (shared with the IMM)."""
    tt = np.asarray(t, dtype=np.float64)
    if tt.ndim != 2:
        raise ValueError(f"t must have shape (F, N), got {tt.shape}")
    shape = tt.shape
    zz = np.broadcast_to(np.asarray(z, dtype=np.float64), shape)
    rr = np.broadcast_to(np.asarray(r, dtype=np.float64), shape)
    vv = np.broadcast_to(np.asarray(valid, dtype=bool), shape)
    n_f = shape[0]
    xx0 = np.broadcast_to(np.asarray(x0, dtype=np.float64), (n_f, 2))
    pp0 = np.broadcast_to(np.asarray(P0, dtype=np.float64), (n_f, 2, 2))
    if not np.all(np.isfinite(tt)):
        raise ValueError("t must be finite (pad with the last time, not NaN)")
    if shape[1] > 1 and np.any(tt[:, 1:] < tt[:, :-1]):
        raise ValueError("t must be non-decreasing along each row; sort the reports first")
    if np.any(vv & ~(rr > 0.0)):
        raise ValueError("r must be > 0 where valid")
    if not np.array_equal(pp0[:, 0, 1], pp0[:, 1, 0]):
        raise ValueError("P0 must be symmetric")
    return tt, zz, rr, vv, xx0, pp0


def _per_force(value: ArrayLike, n_f: int, name: str) -> FloatArray:
    """Broadcast a scalar or ``(F,)`` parameter to ``(F,)``."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim > 1:
        raise ValueError(f"{name} must be a scalar or have shape (F,)")
    return np.broadcast_to(arr, (n_f,))


class _Inputs:
    """Time-major workspace for one chunk of steps × one block of forces of the inputs.

    ``load`` fills ``dt`` (days, 0 at the first slot), ``z``, ``r``, ``valid``, and ``z_use`` /
    ``r_use``: ``z`` and ``r`` where valid, else 0 and 1, so that padding never brings a NaN
    into the arithmetic; each ``(T, B)``.
    """

    def __init__(
        self, t: FloatArray, z: FloatArray, r: FloatArray, valid: BoolArray, n_t: int, n_b: int
    ) -> None:
        self.src = (t, z, r, valid)
        self.buf_dt = np.empty((n_t, n_b))
        self.buf_z = np.empty((n_t, n_b))
        self.buf_zu = np.empty((n_t, n_b))
        self.buf_r = np.empty((n_t, n_b))
        self.buf_ru = np.empty((n_t, n_b))
        self.buf_v = np.empty((n_t, n_b), dtype=bool)
        self.buf_nv = np.empty((n_t, n_b), dtype=bool)

    def load(self, sl: slice, c0: int, c1: int) -> None:
        t, z, r, valid = self.src
        n_t = c1 - c0
        n_b = sl.stop - sl.start
        self.dt = dt = self.buf_dt[:n_t, :n_b]
        if c0 == 0:
            dt[0] = 0.0
            np.subtract(t[sl, 1:c1].T, t[sl, : c1 - 1].T, out=dt[1:])
        else:
            np.subtract(t[sl, c0:c1].T, t[sl, c0 - 1 : c1 - 1].T, out=dt)
        self.z = self.buf_z[:n_t, :n_b]
        np.copyto(self.z, z[sl, c0:c1].T)
        self.r = self.buf_r[:n_t, :n_b]
        np.copyto(self.r, r[sl, c0:c1].T)
        self.valid = self.buf_v[:n_t, :n_b]
        np.copyto(self.valid, valid[sl, c0:c1].T)
        self.invalid = self.buf_nv[:n_t, :n_b]
        np.logical_not(self.valid, out=self.invalid)
        self.z_use = self.buf_zu[:n_t, :n_b]
        np.copyto(self.z_use, self.z)
        np.copyto(self.z_use, 0.0, where=self.invalid)
        self.r_use = self.buf_ru[:n_t, :n_b]
        np.copyto(self.r_use, self.r)
        np.copyto(self.r_use, 1.0, where=self.invalid)


def kalman_filter(
    t: ArrayLike,
    z: ArrayLike,
    r: ArrayLike,
    valid: ArrayLike,
    x0: ArrayLike,
    P0: ArrayLike,
    q: ArrayLike,
    gate: float | None = None,
) -> KalmanResult:
    """Run the NCV Kalman filter on ``F`` forces at once.

    Parameters
    ----------
    t:
        ``(F, N)`` report times in days, finite and non-decreasing along each row.
    z:
        ``(F, N)`` reported positions in km along the route (ignored where not valid, may be
        NaN there).
    r:
        ``(F, N)`` (or broadcastable) measurement variance in km², > 0 where valid; may differ
        per report.
    valid:
        ``(F, N)`` bool. False marks padding or a report excluded upstream: the filter predicts
        to ``t`` but does not update.
    x0, P0:
        ``(F, 2)`` and ``(F, 2, 2)`` prior mean ``[km, km/day]`` and covariance at ``t[:, 0]``.
        There is no prediction before the first slot (``dt = 0`` at ``k = 0``).
    q:
        Acceleration noise spectral density in km²/day³, a scalar or ``(F,)``.
    gate:
        ``None`` (no gating) or a threshold on the normalised innovation squared ``ν²/S``,
        which is χ² with 1 degree of freedom for a correct model: 3.84 rejects 5 % of good
        reports, 6.63 1 %, 10.83 0.1 %. For an ``n``-sigma gate pass ``n²`` (e.g. 9 or 25).
        A valid report with ``ν²/S > gate`` is not used and is marked ``gated``.

    Returns
    -------
    KalmanResult
    """
    tt, zz, rr, vv, xx0, pp0 = _prepare_inputs(t, z, r, valid, x0, P0)
    n_f, n = tt.shape
    qq = _per_force(q, n_f, "q")
    # Time-major storage (N, 6, F) per stage, rows [s, v, P00, P01, P10, P11]: each step is
    # stored with one contiguous write; the result holds (F, N, 2) / (F, N, 2, 2) views.
    pred = np.empty((n, 6, n_f))
    filt = np.empty((n, 6, n_f))
    innovation = np.empty((n, n_f))
    innovation_var = np.empty((n, n_f))
    used = np.empty((n, n_f), dtype=bool)
    gated = np.zeros((n, n_f), dtype=bool)
    loglik = np.zeros(n_f)
    block = min(_BLOCK, max(n_f, 1))
    n_t = min(_CHUNK, max(n, 1))
    inputs = _Inputs(tt, zz, rr, vv, n_t, block)
    work = [np.empty((n_t, block)) for _ in range(4)]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for b0 in range(0, n_f, block):
            sl = slice(b0, min(b0 + block, n_f))
            loglik[sl] = _kf_block(
                inputs,
                work,
                xx0[sl],
                pp0[sl],
                qq[sl],
                gate,
                pred[..., sl],
                filt[..., sl],
                (innovation[:, sl], innovation_var[:, sl], used[:, sl], gated[:, sl]),
                sl,
                n,
            )
    return KalmanResult(
        x_pred=pred[:, 0:2].transpose(2, 0, 1),
        P_pred=pred[:, 2:6].reshape(n, 2, 2, n_f).transpose(3, 0, 1, 2),
        x=filt[:, 0:2].transpose(2, 0, 1),
        P=filt[:, 2:6].reshape(n, 2, 2, n_f).transpose(3, 0, 1, 2),
        innovation=innovation.T,
        innovation_var=innovation_var.T,
        used=used.T,
        gated=gated.T,
        loglik=loglik,
    )


def _kf_block(
    inputs: _Inputs,
    work: list[FloatArray],
    x0: FloatArray,
    P0: FloatArray,
    q: FloatArray,
    gate: float | None,
    pred: FloatArray,
    filt: FloatArray,
    diag: tuple[FloatArray, FloatArray, BoolArray, BoolArray],
    sl: slice,
    n: int,
) -> FloatArray:
    """Filter the block ``sl`` of ``B`` forces; returns their loglik.

    ``pred`` and ``filt`` are ``(N, 6, B)`` views receiving ``[s, v, P00, P01, P10, P11]``;
    ``diag`` holds the ``(N, B)`` innovation, innovation variance, used and gated arrays.
    The state lives in one ``(6, B)`` array ``X`` whose two off-diagonal rows are updated
    together, so that one call stores a whole step.
    """
    innov, innov_var, used, gated = diag
    n_b = x0.shape[0]
    X = np.empty((6, n_b))
    X[0:2] = x0.T
    X[2:6] = P0.reshape(n_b, 4).T
    s, v, p00, p01, p11 = X[0], X[1], X[2], X[3], X[5]
    sv, p00_p01, p01s, cov = X[0:2], X[2:4], X[3:5], X[2:5]
    loglik = np.zeros(n_b)

    for c0 in range(0, n, _CHUNK):
        c1 = min(c0 + _CHUNK, n)
        inputs.load(sl, c0, c1)
        dt, z_use, r_use, valid_c = inputs.dt, inputs.z_use, inputs.r_use, inputs.valid
        # Per-step NCV coefficients of the chunk: q dt³/3, q dt²/2, q dt.
        q00, q01, q11, tmp = (w[: c1 - c0, :n_b] for w in work)
        np.multiply(dt, q, out=q11)
        np.multiply(q11, dt, out=q01)
        np.multiply(q01, dt, out=q00)
        q00 /= 3.0
        q01 *= 0.5

        for j in range(c1 - c0):
            k = c0 + j
            # Predict: x = F x, P = F P Fᵀ + Q (identity at k = 0 where dt = 0):
            # u = P01 + dt P11, P00 += dt (P01 + u) + Q00, P01 = u + Q01, P11 += Q11.
            d = dt[j]
            s += d * v
            t = d * p11
            u = p01 + t
            u += p01
            u *= d
            p00 += u
            p00 += q00[j]
            t += q01[j]
            p01s += t
            p11 += q11[j]
            pred[k] = X

            # Update with H = [1, 0]: gain K = [P00, P01] / S.
            nu = z_use[j] - s
            S = p00 + r_use[j]
            ok = valid_c[j]
            if gate is not None:
                ok = ok > (nu * nu > gate * S)  # valid and not ν²/S > gate (S > 0)
            used[k] = ok
            gain = p00_p01 * np.divide(ok, S)  # K = [P00, P01] / S, or 0 if not used
            sv += gain * nu
            p11 -= gain[1] * p01
            cov -= gain[0] * cov
            filt[k] = X

        # Innovations of the chunk (all slots) and the log-likelihood of the used ones.
        inn = innov[c0:c1]
        var = innov_var[c0:c1]
        np.subtract(inputs.z, pred[c0:c1, 0], out=inn)
        np.add(pred[c0:c1, 2], inputs.r, out=var)
        if gate is not None:
            np.greater(valid_c, used[c0:c1], out=gated[c0:c1])  # valid and not used
        term = q00  # reuse the coefficient buffers
        np.multiply(var, 2.0 * np.pi, out=term)
        np.log(term, out=term)
        np.multiply(inn, inn, out=tmp)
        tmp /= var
        term += tmp
        np.copyto(term, 0.0, where=~used[c0:c1])
        loglik -= 0.5 * term.sum(axis=0)
    return loglik


def rts_smoother(result: KalmanResult, t: ArrayLike, q: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Rauch–Tung–Striebel fixed-interval smoother for a :func:`kalman_filter` run.

    Backwards from the last slot, with ``F = F(t[k+1] - t[k])`` and ``Q = Q(t[k+1] - t[k])``::

        P⁻ = F P[k] Fᵀ + Q
        C  = P[k] Fᵀ (P⁻)⁻¹
        xs[k] = x[k] + C (xs[k+1] - F x[k])
        Ps[k] = P[k] + C (Ps[k+1] - P⁻) Cᵀ

    (filterpy's ``KalmanFilter.rts_smoother`` with the same ``Fs`` and ``Qs``). Slots that were
    not used are pure predictions and are smoothed like any other; the last slot is returned
    as filtered.

    Parameters
    ----------
    result:
        The filter output (uses ``result.x`` and ``result.P``).
    t:
        ``(F, N)`` times in days, as given to the filter.
    q:
        Acceleration noise spectral density in km²/day³ as given to the filter (scalar or
        ``(F,)``).

    Returns
    -------
    ``(xs, Ps)`` of shapes ``(F, N, 2)`` [km, km/day] and ``(F, N, 2, 2)``.
    """
    tt = np.asarray(t, dtype=np.float64)
    n_f, n = tt.shape
    if result.x.shape != (n_f, n, 2):
        raise ValueError("t does not match the result's shape")
    qq = _per_force(q, n_f, "q")
    # Time-major views of the filter output (contiguous when it comes from kalman_filter).
    x_tm = result.x.transpose(1, 2, 0)
    p_tm = result.P.transpose(1, 2, 3, 0)
    xs = np.empty((n, 2, n_f))
    Ps = np.empty((n, 2, 2, n_f))
    if n:
        block = min(_BLOCK, max(n_f, 1))
        work = [np.empty((min(_CHUNK, n) + 1, block)) for _ in range(4)]
        with np.errstate(invalid="ignore", divide="ignore"):
            for b0 in range(0, n_f, block):
                sl = slice(b0, min(b0 + block, n_f))
                _rts_block(
                    tt[sl], qq[sl], x_tm[..., sl], p_tm[..., sl], xs[..., sl], Ps[..., sl], work
                )
    return xs.transpose(2, 0, 1), Ps.transpose(3, 0, 1, 2)


def _rts_block(
    t: FloatArray,
    q: FloatArray,
    x: FloatArray,
    P: FloatArray,
    xs: FloatArray,
    Ps: FloatArray,
    work: list[FloatArray],
) -> None:
    """Smooth one block of forces (time-major ``(N, ..., B)`` arrays; see :func:`rts_smoother`)."""
    n_b, n = t.shape
    # Smoothed estimate at k + 1, starting from the filtered last slot.
    a0 = x[n - 1, 0].copy()
    a1 = x[n - 1, 1].copy()
    b00 = P[n - 1, 0, 0].copy()
    b01 = P[n - 1, 0, 1].copy()
    b11 = P[n - 1, 1, 1].copy()
    xs[n - 1] = x[n - 1]
    Ps[n - 1] = P[n - 1]
    # Chunks of transitions k -> k + 1 for k in [c0, c1), backwards.
    for c1 in range(n - 1, 0, -_CHUNK):
        c0 = max(c1 - _CHUNK, 0)
        n_t = c1 - c0
        dt, q00, q01, q11 = (w[:n_t, :n_b] for w in work)
        np.subtract(t[:, c0 + 1 : c1 + 1].T, t[:, c0:c1].T, out=dt)  # dt[k - c0] = t[k+1] - t[k]
        np.multiply(dt, q, out=q11)
        np.multiply(q11, dt, out=q01)
        np.multiply(q01, dt, out=q00)
        q00 /= 3.0
        q01 *= 0.5
        for k in range(c1 - 1, c0 - 1, -1):
            j = k - c0
            d = dt[j]
            s = x[k, 0]
            v = x[k, 1]
            p00 = P[k, 0, 0]
            p01 = P[k, 0, 1]
            p11 = P[k, 1, 1]
            # A = P Fᵀ (not symmetric) and the prediction P⁻ = F P Fᵀ + Q.
            a00 = p00 + d * p01
            a10 = p01 + d * p11
            m00 = a00 + d * a10 + q00[j]
            m01 = a10 + q01[j]
            m11 = p11 + q11[j]
            inv_det = 1.0 / (m00 * m11 - m01 * m01)
            # C = A (P⁻)⁻¹ with (P⁻)⁻¹ = [[m11, -m01], [-m01, m00]] / det.
            c00 = (a00 * m11 - p01 * m01) * inv_det
            c01 = (p01 * m00 - a00 * m01) * inv_det
            c10 = (a10 * m11 - p11 * m01) * inv_det
            c11 = (p11 * m00 - a10 * m01) * inv_det
            # Mean: xs = x + C (xs[k+1] - F x).
            e0 = a0 - (s + d * v)
            e1 = a1 - v
            a0 = s + c00 * e0 + c01 * e1
            a1 = v + c10 * e0 + c11 * e1
            # Covariance: Ps = P + C D Cᵀ with D = Ps[k+1] - P⁻ (symmetric).
            d00 = b00 - m00
            d01 = b01 - m01
            d11 = b11 - m11
            g00 = c00 * d00 + c01 * d01
            g01 = c00 * d01 + c01 * d11
            g10 = c10 * d00 + c11 * d01
            g11 = c10 * d01 + c11 * d11
            b00 = p00 + (g00 * c00 + g01 * c01)
            b01 = p01 + (g00 * c10 + g01 * c11)
            b11 = p11 + (g10 * c10 + g11 * c11)
            xs[k, 0] = a0
            xs[k, 1] = a1
            Ps[k, 0, 0] = b00
            Ps[k, 0, 1] = b01
            Ps[k, 1, 1] = b11
    Ps[:, 1, 0] = Ps[:, 0, 1]
