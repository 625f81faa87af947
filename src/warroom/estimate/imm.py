"""Interacting multiple model (IMM) filter over three movement regimes, batched over forces.

State, units and inputs are those of :mod:`warroom.estimate.kalman`: ``x = [s, v]`` with ``s`` in
km along the route and ``v`` in km/day, times in days, reports ``z = s + e``, ``e ~ N(0, r)``,
``r`` in km², ``H = [1, 0]``.

Regimes (in this order; index 0, 1, 2)
--------------------------------------
All three act on the same state ``[s, v]``, so mixing between them is exact. Each is an
integrated Ornstein–Uhlenbeck velocity model with damping time ``τ`` (days) and white
acceleration noise of spectral density ``q`` (km²/day³)::

    ds/dt = v,   dv/dt = -v/τ + w(t),   E[w(t) w(t')] = q δ(t - t').

Over ``dt`` days, with ``β = 1/τ``, ``x = dt/τ``, ``a = 1 - e^{-x}``, the exact discretisation is ::

    F(dt) = [[1, τ a],
             [0, e^{-x}]]
    Q(dt) = q [[τ³ (x - 2a + (1 - e^{-2x})/2),  τ² a²/2],
               [τ² a²/2,                         τ (1 - e^{-2x})/2]]

and as ``τ → ∞`` it becomes the nearly-constant-velocity model ``F = [[1, dt], [0, 1]]``,
``Q = q [[dt³/3, dt²/2], [dt²/2, dt]]`` (``τ = math.inf`` selects it exactly).

``halted`` (0)
    Strongly damped velocity: ``τ = 0.05`` day (about an hour), ``q = 1`` km²/day³. Any speed
    decays to 0 within hours; the stationary speed spread is ``√(q τ / 2) ≈ 0.16`` km/day and
    the position wanders by about ``τ √(q dt) ≈ 0.05`` km per √day: the force stays put.
``advancing`` (1)
    NCV, ``q = 1`` km²/day³: a steady advance whose speed drifts by about 1 km/day per √day.
``pursuit`` (2)
    NCV, ``q = 100`` km²/day³: the speed can change by about 10 km/day within a day (a
    breakthrough, an accelerating chase).

Regime switching is a continuous-time Markov chain with rate matrix ``Λ`` (per day; ``Λ[i, j]``
for ``i ≠ j`` is the rate of switching from regime ``i`` to ``j``, rows sum to 0). Over a step
of ``dt`` days the switching probabilities are ``Π(dt) = expm(dt Λ)`` (``Π[i, j] = P(j at
t + dt | i at t)``), evaluated for all steps at once from the eigendecomposition of ``Λ``.
Default rates (per day; rows: from halted, advancing, pursuit)::

    Λ = [[-0.09,  0.06,  0.03],     mean sojourn 11 days halted,
         [ 0.06, -0.12,  0.06],     8 days advancing,
         [ 0.03,  0.15, -0.18]]     5.6 days in pursuit (which mostly ends in an advance)

and the initial regime probabilities are ``μ0 = (1/3, 1/3, 1/3)``.

Filter (Blom & Bar-Shalom), for each step ``k`` with ``dt = t[k] - t[k-1]`` (0 at ``k = 0``):

1. mixing: ``c_j = Σ_i Π_ij μ_i``, ``w_ij = Π_ij μ_i / c_j``, ``x0_j = Σ_i w_ij x_i``,
   ``P0_j = Σ_i w_ij (P_i + (x_i - x0_j)(x_i - x0_j)ᵀ)`` (a regime with ``c_j ≤ 1e-280``,
   i.e. numerically unreachable, keeps its own estimate);
2. per-regime Kalman prediction with ``F_j(dt)``, ``Q_j(dt)``;
3. gate (optional) on the combined prediction ``s̄ = Σ_j c_j s_j⁻``, ``S̄ = Σ_j c_j (P⁻_j,00 +
   (s_j⁻ - s̄)²) + r``: the report is not used if ``(z - s̄)²/S̄ > gate``;
4. per-regime Kalman update, likelihoods ``L_j = N(z - s_j⁻; 0, S_j)``, ``μ_j ∝ c_j L_j`` (no
   update: ``μ_j = c_j``); the log-likelihood of the report is ``log Σ_j c_j L_j``;
5. combination: ``x = Σ_j μ_j x_j``, ``P = Σ_j μ_j (P_j + (x_j - x)(x_j - x)ᵀ)``.

The 2×2 algebra is written out on element arrays (``s, v, P00, P01, P11`` rows of one
``(5, 3, B)`` array: component × regime × force) inside a Python loop over the time index
only; every operation covers whole contiguous rows (all regimes of a block of forces).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from warroom.estimate.kalman import _Inputs, _prepare_inputs

__all__ = [
    "IMMParams",
    "IMMResult",
    "REGIMES",
    "imm_filter",
    "regime_process_noise",
    "regime_transition",
    "transition_probabilities",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Regime names, in the order of the regime axis of every result.
REGIMES: tuple[str, str, str] = ("halted", "advancing", "pursuit")

_LOG_2PI = math.log(2.0 * math.pi)
#: Forces per block (cache blocking) and time steps per chunk of precomputed coefficients.
_BLOCK = 6144
_CHUNK = 16
#: NumPy's ufunc buffer (elements) while filtering: no larger than a block's rows.
_BUFSIZE = 1024
#: Predicted regime probabilities ``c_j`` at or below this are treated as 0 in the mixing (the
#: regime keeps its own estimate): mixing weights built from subnormal numbers are inexact.
_C_MIN = 1e-280
#: A report likelihood (up to √(2π)) below this is recomputed in log space: it may have lost
#: digits to underflow (a report hundreds of σ from every regime).
_TOTAL_MIN = 1e-250
#: Below this ``dt/τ`` the OU position noise uses its Taylor series (avoids cancellation).
_SERIES_X = 0.1
#: Taylor coefficients of ``g(x) = x - 2(1 - e^{-x}) + (1 - e^{-2x})/2`` for x³ … x¹².
_G_COEFFS = tuple(
    (-1.0) ** (k + 1) * (2.0 ** (k - 1) - 2.0) / math.factorial(k) for k in range(3, 13)
)


def _default_rates() -> tuple[tuple[float, float, float], ...]:
    return (
        (-0.09, 0.06, 0.03),
        (0.06, -0.12, 0.06),
        (0.03, 0.15, -0.18),
    )


@dataclass(frozen=True)
class IMMParams:
    """Parameters of the three-regime IMM (regime order: halted, advancing, pursuit).

    Attributes
    ----------
    q:
        Acceleration noise spectral density per regime, km²/day³.
    tau:
        Velocity damping time per regime, days; ``math.inf`` gives the NCV model.
    rates:
        3×3 Markov switching-rate matrix per day: ``rates[i][j]`` (``i ≠ j``) is the rate of
        switching from regime ``i`` to ``j`` (mean sojourn in ``i`` is ``-1/rates[i][i]``
        days); off-diagonal entries ≥ 0 and every row sums to 0. Per-step probabilities are
        ``expm(dt · rates)``. The defaults keep a regime for 5.6–11 days on average.
    mu0:
        Regime probabilities at the first slot (sum to 1).
    """

    q: tuple[float, float, float] = (1.0, 1.0, 100.0)
    tau: tuple[float, float, float] = (0.05, math.inf, math.inf)
    rates: tuple[tuple[float, float, float], ...] = field(default_factory=_default_rates)
    mu0: tuple[float, float, float] = (1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0)

    def __post_init__(self) -> None:
        q = np.asarray(self.q, dtype=np.float64)
        tau = np.asarray(self.tau, dtype=np.float64)
        rates = np.asarray(self.rates, dtype=np.float64)
        mu0 = np.asarray(self.mu0, dtype=np.float64)
        if q.shape != (3,) or tau.shape != (3,) or mu0.shape != (3,) or rates.shape != (3, 3):
            raise ValueError("q, tau, mu0 need 3 entries and rates 3×3")
        if np.any(q < 0) or not np.all(np.isfinite(q)):
            raise ValueError("q must be finite and >= 0")
        if np.any(~(tau > 0)):
            raise ValueError("tau must be > 0 (math.inf for NCV)")
        off = rates[~np.eye(3, dtype=bool)]
        if np.any(off < 0) or not np.all(np.isfinite(rates)):
            raise ValueError("off-diagonal rates must be finite and >= 0")
        if np.any(np.abs(rates.sum(axis=1)) > 1e-9 * max(1.0, float(np.abs(rates).max()))):
            raise ValueError("each row of rates must sum to 0 (diagonal = -sum of the others)")
        if np.any(mu0 < 0) or abs(mu0.sum() - 1.0) > 1e-9:
            raise ValueError("mu0 must be >= 0 and sum to 1")


@dataclass
class IMMResult:
    """Output of :func:`imm_filter` for ``F`` forces and ``N`` slots (regime axis of size 3).

    Attributes
    ----------
    x, P:
        Combined filtered state ``[km, km/day]`` ``(F, N, 2)`` and covariance ``(F, N, 2, 2)``.
    mu:
        ``(F, N, 3)`` posterior regime probabilities (rows sum to 1), order :data:`REGIMES`.
    x_regime, P_regime:
        ``(F, N, 3, 2)`` and ``(F, N, 3, 2, 2)`` filtered state and covariance of each regime.
    innovation, innovation_var:
        ``(F, N)`` combined predicted innovation ``z - s̄`` (km) and its variance ``S̄`` (km²)
        used by the gate (NaN where ``z`` is NaN).
    used, gated:
        ``(F, N)`` bool: update applied; valid report rejected by the gate.
    loglik:
        ``(F,)`` sum over used reports of ``log Σ_j c_j N(ν_j; 0, S_j)``.

    As for :class:`~warroom.estimate.kalman.KalmanResult`, the arrays are transposed views of
    time-major storage (not C-contiguous). ``P`` and ``P_regime`` are read-only views in which
    ``[..., 0, 1]`` and ``[..., 1, 0]`` are the same stored number (covariances are exactly
    symmetric); ``np.array(res.P)`` gives an ordinary copy.
    """

    x: FloatArray
    P: FloatArray
    mu: FloatArray
    x_regime: FloatArray
    P_regime: FloatArray
    innovation: FloatArray
    innovation_var: FloatArray
    used: BoolArray
    gated: BoolArray
    loglik: FloatArray


# --------------------------------------------------------------------------------------------
# Regime models


def _ou_into(
    dt: FloatArray,
    q: float,
    tau: float,
    out: tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray],
    scratch: tuple[FloatArray, FloatArray],
) -> None:
    """Write ``(F01, F11, Q00, Q01, Q11)`` of one regime for steps ``dt`` (days) into ``out``.

    ``out`` and ``scratch`` are arrays of ``dt``'s shape; see the module docstring for the
    formulas (``τ = ∞``: NCV).
    """
    f01, f11, q00, q01, q11 = out
    if math.isinf(tau):
        np.copyto(f01, dt)
        f11.fill(1.0)
        np.multiply(dt, q, out=q11)
        np.multiply(q11, dt, out=q01)
        np.multiply(q01, dt, out=q00)
        q00 /= 3.0
        q01 *= 0.5
        return
    x, a = scratch
    np.divide(dt, tau, out=x)
    # exp rather than expm1 (3× cheaper here): the absolute error of 1 - e^{-x} stays ~1e-16,
    # and the one cancellation-prone term, g(x) below, switches to its series for small x.
    np.negative(x, out=f11)
    np.exp(f11, out=f11)  # e^{-x}
    np.subtract(1.0, f11, out=a)  # a = 1 - e^{-x}
    np.multiply(a, tau, out=f01)
    g = q00
    np.subtract(2.0, a, out=g)
    g *= a  # 1 - e^{-2x}
    np.multiply(g, 0.5 * q * tau, out=q11)
    np.multiply(a, a, out=q01)
    q01 *= 0.5 * q * tau * tau
    g *= 0.5
    g += x
    g -= a
    g -= a  # g(x) = x - 2a + (1 - e^{-2x})/2, cancels for small x: use the series there
    small = np.nonzero(x < _SERIES_X)
    if small[0].size:
        # Few elements (short steps): full relative accuracy with expm1 and the series of g.
        xs = x[small]
        a_s = -np.expm1(-xs)
        f01[small] = tau * a_s
        q01[small] = 0.5 * q * tau * tau * a_s * a_s
        q11[small] = 0.5 * q * tau * a_s * (2.0 - a_s)
        poly = np.zeros_like(xs)
        for c in reversed(_G_COEFFS):
            poly *= xs
            poly += c
        g[small] = poly * xs**3
    g *= q * tau**3


def _ou_coefficients(
    dt: FloatArray, q: float, tau: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """``(F01, F11, Q00, Q01, Q11)`` of one regime for time steps ``dt`` (days), elementwise."""
    d = np.atleast_1d(np.asarray(dt, dtype=np.float64))
    out = tuple(np.empty(d.shape) for _ in range(5))
    _ou_into(d, q, tau, out, (np.empty(d.shape), np.empty(d.shape)))  # type: ignore[arg-type]
    shape = np.shape(dt)
    return tuple(o.reshape(shape) for o in out)  # type: ignore[return-value]


def regime_transition(dt: ArrayLike, tau: float) -> FloatArray:
    """Transition matrix ``F(dt) = [[1, τ(1 - e^{-dt/τ})], [0, e^{-dt/τ}]]`` (``τ = ∞``: NCV).

    ``dt`` in days (any shape ``S``), ``tau`` in days. Returns ``S + (2, 2)``.
    """
    d = np.asarray(dt, dtype=np.float64)
    f01, f11, _, _, _ = _ou_coefficients(d, 0.0, float(tau))
    out = np.zeros(d.shape + (2, 2))
    out[..., 0, 0] = 1.0
    out[..., 0, 1] = f01
    out[..., 1, 1] = f11
    return out


def regime_process_noise(dt: ArrayLike, q: float, tau: float) -> FloatArray:
    """Process noise ``Q(dt)`` of the damped-velocity model (module docstring), km² units.

    ``dt`` in days (any shape ``S``), ``q`` in km²/day³, ``tau`` in days (``∞``: NCV).
    Returns ``S + (2, 2)``.
    """
    d = np.asarray(dt, dtype=np.float64)
    _, _, q00, q01, q11 = _ou_coefficients(d, float(q), float(tau))
    out = np.empty(d.shape + (2, 2))
    out[..., 0, 0] = q00
    out[..., 0, 1] = q01
    out[..., 1, 0] = q01
    out[..., 1, 1] = q11
    return out


# --------------------------------------------------------------------------------------------
# Regime switching


class _Switching:
    """``Π(dt) = expm(dt Λ)`` for many ``dt`` at once, from one decomposition of ``Λ``."""

    def __init__(self, rates: ArrayLike) -> None:
        self.rates = np.asarray(rates, dtype=np.float64)
        lam, vec = np.linalg.eig(self.rates)
        self.spectral = bool(np.linalg.cond(vec) < 1e6)
        # Λ = Σ_k λ_k C_k with C_k = v_k w_kᵀ; the λ = 0 term (rows of Λ sum to 0) adds nothing
        # to expm(dt Λ) - I = Σ_k C_k (e^{λ_k dt} - 1) and is dropped.
        self.terms: list[tuple[complex, NDArray[np.complex128]]] = []
        if self.spectral:
            comps = np.einsum("ik,kj->kij", vec, np.linalg.inv(vec))
            scale = max(float(np.abs(lam).max()), 1e-300)
            self.terms = [(lam[k], comps[k]) for k in range(3) if abs(lam[k]) > 1e-12 * scale]
        self.real = all(abs(lam_k.imag) == 0.0 for lam_k, _ in self.terms)

    def fill(self, dt: FloatArray, out: FloatArray, scratch: FloatArray) -> None:
        """Write ``Π(dt)`` for ``dt`` of shape ``(T, B)`` into ``out`` of shape ``(T, 3, 3, B)``.

        Off-diagonal entries are ``Σ_k C_k,ij (e^{λ_k dt} - 1)`` (exact 0 at ``dt = 0``), clipped
        at 0; the diagonal is 1 minus the rest of its row, so rows sum to 1. ``scratch``:
        ``(2, T, B)``.
        """
        n_t, n_b = dt.shape
        if self.spectral:
            # Real pairs (coefficient matrix, array): Re(C E) = Re C · Re E - Im C · Im E.
            if self.real:
                # e^{λ dt} - 1: absolute error ~1e-16, exactly 0 at dt = 0.
                e = scratch[: len(self.terms)]
                for m, (lam_k, _) in enumerate(self.terms):
                    np.multiply(dt, lam_k.real, out=e[m])
                np.exp(e, out=e)
                e -= 1.0
                coefs = np.stack([comp.real for _, comp in self.terms])
            else:
                parts = [np.expm1(lam_k * dt) for lam_k, _ in self.terms]
                e = np.stack([p.real for p in parts] + [p.imag for p in parts])
                coefs = np.stack(
                    [comp.real for _, comp in self.terms] + [-comp.imag for _, comp in self.terms]
                )
            # Off-diagonal entries only (the diagonal follows from the rows), each a sum of
            # scalar multiples of the e arrays; the diagonal slot serves as scratch.
            for i in range(3):
                for j in range(3):
                    if i == j:
                        continue
                    o, tmp = out[:, i, j], out[:, i, i]
                    if not len(coefs):
                        o.fill(0.0)
                        continue
                    np.multiply(e[0], coefs[0, i, j], out=o)
                    for m in range(1, len(coefs)):
                        np.multiply(e[m], coefs[m, i, j], out=tmp)
                        o += tmp
        else:
            flat = _expm_batch(dt.reshape(-1)[:, None, None] * self.rates)
            out[...] = flat.reshape(n_t, n_b, 3, 3).transpose(0, 2, 3, 1)
        np.maximum(out, 0.0, out=out)
        for i in range(3):
            j1, j2 = (j for j in range(3) if j != i)
            np.subtract(1.0, out[:, i, j1], out=out[:, i, i])
            out[:, i, i] -= out[:, i, j2]


def _expm_batch(a: FloatArray) -> FloatArray:
    """Matrix exponential of a stack ``(M, n, n)`` by scaling and squaring with Taylor(18)."""
    norm = np.abs(a).sum(axis=-1).max(axis=-1) if a.size else np.zeros(0)
    squarings = int(max(0.0, np.ceil(np.log2(max(float(norm.max(initial=0.0)), 1e-300))) + 1))
    scaled = a / 2.0**squarings
    eye = np.broadcast_to(np.eye(a.shape[-1]), a.shape)
    result = eye.copy()
    term = eye.copy()
    for j in range(1, 19):
        term = term @ scaled / j
        result = result + term
    for _ in range(squarings):
        result = result @ result
    return result


def transition_probabilities(dt: ArrayLike, rates: ArrayLike) -> FloatArray:
    """Regime switching probabilities ``Π(dt) = expm(dt · rates)`` (rows sum to 1).

    ``dt`` in days (any shape ``S``); ``rates`` a 3×3 rate matrix per day. Returns
    ``S + (3, 3)`` with ``Π[..., i, j] = P(regime j at t + dt | regime i at t)``. Computed
    from the eigendecomposition of ``rates`` (scaling and squaring if it is not
    diagonalisable); entries are exact to ~1e-16 in absolute terms, so probabilities far
    below 1e-9 carry relative errors.
    """
    d = np.asarray(dt, dtype=np.float64)
    flat = d.reshape(1, -1)
    tm = np.empty((1, 3, 3, flat.shape[1]))
    _Switching(rates).fill(flat, tm, np.empty((2,) + flat.shape))
    return np.moveaxis(tm[0], -1, 0).reshape(d.shape + (3, 3))


# --------------------------------------------------------------------------------------------
# Filter


def imm_filter(
    t: ArrayLike,
    z: ArrayLike,
    r: ArrayLike,
    valid: ArrayLike,
    x0: ArrayLike,
    P0: ArrayLike,
    params: IMMParams = IMMParams(),  # noqa: B008 (frozen, immutable default)
    gate: float | None = None,
) -> IMMResult:
    """Run the three-regime IMM filter on ``F`` forces at once.

    Parameters
    ----------
    t, z, r, valid, x0, P0:
        As for :func:`warroom.estimate.kalman.kalman_filter`: ``(F, N)`` times (days,
        non-decreasing per row), reports (km), report variances (km²), validity mask, and the
        prior ``(F, 2)``, ``(F, 2, 2)`` at ``t[:, 0]`` shared by all regimes.
    params:
        Regime models, switching rates and initial probabilities (:class:`IMMParams`).
    gate:
        ``None`` or a threshold on ``(z - s̄)²/S̄`` of the combined prediction (χ², 1 dof:
        3.84 = 5 %, 6.63 = 1 %, 10.83 = 0.1 % false rejections); reports above it are not used
        and are marked ``gated``. Caution: while the halted regime dominates, ``S̄`` is small
        and the first reports of a force that starts moving are far outside it, so a tight
        gate locks the track out (with the defaults, a halted force starting at 25 km/day
        with 1 km reports every ~0.5 day has ~20 reports rejected at ``gate = 25``; none at
        ``gate = 400``). Use a loose gate (outliers of tens of σ) or handle runs of gated
        reports upstream.

    Returns
    -------
    IMMResult
    """
    tt, zz, rr, vv, xx0, pp0 = _prepare_inputs(t, z, r, valid, x0, P0)
    n_f, n = tt.shape
    # Time-major storage, one contiguous write per step: per regime (N, 5, 3, F) and combined
    # (N, 5, F), rows [s, v, P00, P01, P11]; the result holds transposed views, the 2×2
    # covariances with P10 and P01 read from the same place.
    out = _Store(
        regime=np.empty((n, 5, 3, n_f)),
        comb=np.empty((n, 5, n_f)),
        mu=np.empty((n, 3, n_f)),
        innovation=np.empty((n, n_f)),
        innovation_var=np.empty((n, n_f)),
        used=np.empty((n, n_f), dtype=bool),
        gated=np.zeros((n, n_f), dtype=bool),
    )
    loglik = np.zeros(n_f)
    # Blocks of equal size (no small remainder block: a step costs the same calls for few
    # forces as for many).
    block = -(-max(n_f, 1) // -(-max(n_f, 1) // _BLOCK))
    n_t = min(_CHUNK, max(n, 1))
    work = _Work(
        inputs=_Inputs(tt, zz, rr, vv, n_t, block),
        coefs=_Coefficients(params, _Switching(params.rates), n_t, block),
        totals=np.empty((n_t, block)),
        shift=np.empty((n_t, block)),
        tmp=[np.empty(shape + (block,)) for shape in _TMP_SHAPES],
        tmix=np.empty((6, block)),
    )
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        # Rows of a block are broadcast against each other: with NumPy's default buffer
        # (8192 elements) a row of fewer forces would be copied into buffers first.
        old_bufsize = np.setbufsize(_BUFSIZE)
        try:
            for b0 in range(0, n_f, block):
                sl = slice(b0, min(b0 + block, n_f))
                view = _Store(*(a[..., sl] for a in out.arrays()))
                loglik[sl] = _imm_block(work, xx0[sl], pp0[sl], params, gate, view, sl, n)
        finally:
            np.setbufsize(old_bufsize)
    return IMMResult(
        x=out.comb[:, 0:2].transpose(2, 0, 1),
        P=_symmetric(out.comb[:, 2:5].transpose(2, 0, 1)),
        mu=out.mu.transpose(2, 0, 1),
        x_regime=out.regime[:, 0:2].transpose(3, 0, 2, 1),
        P_regime=_symmetric(out.regime[:, 2:5].transpose(3, 0, 2, 1)),
        innovation=out.innovation.T,
        innovation_var=out.innovation_var.T,
        used=out.used.T,
        gated=out.gated.T,
        loglik=loglik,
    )


def _symmetric(p: FloatArray) -> FloatArray:
    """A read-only ``(..., 2, 2)`` view of ``(..., 3)`` entries ``[P00, P01, P11]``: element
    ``[g, h]`` is entry ``g + h``, so ``P10`` and ``P01`` are the same number."""
    step = p.strides[-1]
    return np.lib.stride_tricks.as_strided(
        p, shape=p.shape[:-1] + (2, 2), strides=p.strides[:-1] + (step, step), writeable=False
    )


@dataclass
class _Store:
    """Time-major output storage (see :func:`imm_filter`), or a block's view of it."""

    regime: FloatArray
    comb: FloatArray
    mu: FloatArray
    innovation: FloatArray
    innovation_var: FloatArray
    used: BoolArray
    gated: BoolArray

    def arrays(self) -> tuple[NDArray[np.generic], ...]:
        return (
            self.regime,
            self.comb,
            self.mu,
            self.innovation,
            self.innovation_var,
            self.used,
            self.gated,
        )


class _Coefficients:
    """Workspace of per-step model and switching coefficients for a chunk of ``T`` steps.

    ``fill(dt)`` sets ``f01``, ``f11`` and ``f2`` (``F01``, ``F11``, ``F11²`` of each regime,
    ``(T, 3, B)``),
    ``q`` (``(T, 3, 3, B)``: ``Q00``, ``Q01``, ``Q11`` × regime) and ``pis`` (``(T, 3, 3, B)``
    = ``Π(dt)``). A regime of the nearly-constant-velocity kind (``τ = ∞``) has ``F11 = 1``
    for good (set here once) and its ``Q`` is ``q`` times the same ``dt³/3, dt²/2, dt`` as
    every other such regime (computed once per chunk).
    """

    def __init__(self, params: IMMParams, switching: _Switching, n_t: int, n_b: int) -> None:
        self.params = params
        self.switching = switching
        self.buf_f01 = np.empty((n_t, 3, n_b))
        self.buf_f11 = np.empty((n_t, 3, n_b))
        self.buf_f2 = np.empty((n_t, 3, n_b))
        self.buf_q = np.empty((n_t, 3, 3, n_b))
        self.buf_pis = np.empty((n_t, 3, 3, n_b))
        self.scratch = np.empty((3, n_t, n_b))
        self.ncv = [i for i, tau in enumerate(params.tau) if math.isinf(tau)]
        self.ou = [i for i, tau in enumerate(params.tau) if not math.isinf(tau)]
        for i in self.ncv:
            self.buf_f11[:, i] = 1.0
            self.buf_f2[:, i] = 1.0

    def fill(self, dt: FloatArray) -> None:
        n_t, n_b = dt.shape
        self.f01 = f01 = self.buf_f01[:n_t, :, :n_b]
        self.f11 = f11 = self.buf_f11[:n_t, :, :n_b]
        self.q = q = self.buf_q[:n_t, :, :, :n_b]
        scratch = self.scratch[:, :n_t, :n_b]
        if self.ncv:
            d2, d3 = scratch[0], scratch[1]
            np.multiply(dt, dt, out=d2)
            np.multiply(d2, dt, out=d3)
            d3 /= 3.0  # dt³/3
            d2 *= 0.5  # dt²/2
            for i in self.ncv:
                qi = self.params.q[i]
                np.copyto(f01[:, i], dt)
                np.multiply(d3, qi, out=q[:, 0, i])
                np.multiply(d2, qi, out=q[:, 1, i])
                np.multiply(dt, qi, out=q[:, 2, i])
        self.f2 = f2 = self.buf_f2[:n_t, :, :n_b]
        for i in self.ou:
            cols = (f01[:, i], f11[:, i], q[:, 0, i], q[:, 1, i], q[:, 2, i])
            _ou_into(dt, self.params.q[i], self.params.tau[i], cols, (scratch[0], scratch[1]))
            np.multiply(f11[:, i], f11[:, i], out=f2[:, i])
        self.pis = self.buf_pis[:n_t, :, :, :n_b]
        self.switching.fill(dt, self.pis, scratch[:2])


#: Shapes (before the force axis) of the per-step work arrays of :func:`_imm_block`.
_TMP_SHAPES = ((6, 3), (6, 3), (2, 3), (2, 3), (3,), (3,), (3,), (3,), (3,))


@dataclass
class _Work:
    """Work arrays shared by all blocks of one :func:`imm_filter` call."""

    inputs: _Inputs
    coefs: _Coefficients
    totals: FloatArray
    shift: FloatArray
    tmp: list[FloatArray]
    tmix: FloatArray


def _imm_block(
    work: _Work,
    x0: FloatArray,
    P0: FloatArray,
    params: IMMParams,
    gate: float | None,
    out: _Store,
    sl: slice,
    n: int,
) -> FloatArray:
    """Filter the block ``sl`` of ``B`` forces into ``out`` (its views); returns their loglik.

    The regime states live in one contiguous ``(5, 3, B)`` array ``Y`` (rows ``[s, v, P00,
    P01, P11]`` × regime × force), the combined estimate in ``(5, B)``; each step is copied to
    the output once. Everything is elementwise on whole rows; the speed multiplications of
    the prediction are done only for the regimes whose ``F11`` is not 1 (damped velocity).

    Mixing uses the previous combined estimate ``x̄`` as the reference point: with
    ``e_i = x_i - x̄`` and ``A_i = P_i + e_i e_iᵀ`` (which also give ``P = Σ μ_i A_i``),
    ``x0_j = x̄ + Σ_i w_ij e_i`` and ``P0_j = Σ_i w_ij A_i - (x0_j - x̄)(x0_j - x̄)ᵀ``; the sums
    ``Σ_i Π_ij (μ_i Y_i)`` are one contraction over the six ``Y ∈ {1, e_s, e_v, A00, A01,
    A11}`` (array ``ys``). The update uses ``P00 ← P00 r/S``, ``P01 ← P01 r/S``,
    ``P11 ← P11 - P01²/S`` (``(I - K H) P`` with ``1 - P00/S = r/S``). The report
    likelihoods of a chunk are multiplied before one logarithm.
    """
    inputs, coefs = work.inputs, work.coefs
    n_b = x0.shape[0]
    totals_all, shift_all = work.totals[:, :n_b], work.shift[:, :n_b]
    ys, mix, gain, e6, t3, u3, inv_s, rho, nis = (w[..., :n_b] for w in work.tmp)
    mul, add, sub, copyto, divide = np.multiply, np.add, np.subtract, np.copyto, np.divide
    exp, sqrt = np.exp, np.sqrt
    ou = coefs.ou

    # State, combined estimate and the mixing inputs, with fixed views of their rows.
    Y = np.empty((5, 3, n_b))
    s, v, p00, p01, p11 = Y
    xs, p0x = Y[0:2], Y[2:4]  # [s, v], [P00, P01]
    xb = np.empty((5, n_b))
    xbar_b = xb[0:2, None, :]
    xb_s, xb_v, xb00, xb01, xb11 = xb
    mu, ys_e, ys_a, ys5, ys_v = ys[0], ys[1:3], ys[3:5], ys[5], ys[2]
    ys_a00, ys_a01 = ys_a
    c, mix_d, mix1, mix2, mix34, mix5 = mix[0], mix[1:3], mix[1], mix[2], mix[3:5], mix[5]
    e6_s, e6_v = e6
    t3_0, t3_1, t3_2 = t3
    nis_0, nis_1, nis_2 = nis
    gain1 = gain[1]
    ys_i0, ys_i1, ys_i2 = ys[:, 0], ys[:, 1], ys[:, 2]
    mix_j = [mix[:, jj] for jj in range(3)]
    tmix = work.tmix[:, :n_b]

    # All regimes start from the prior: e = 0, A = P0.
    xs[...] = x0.T[:, None, :]
    p00[...] = P0[:, 0, 0]
    p01[...] = P0[:, 0, 1]
    p11[...] = P0[:, 1, 1]
    xb[0:2] = x0.T
    xb[2:5] = P0.reshape(n_b, 4).T[[0, 1, 3]]
    mu[...] = np.asarray(params.mu0, dtype=np.float64)[:, None]
    ys_e[...] = 0.0
    mul(Y[2:5], mu, out=ys[3:6])
    loglik = np.zeros(n_b)
    first = Y.copy()  # what a regime with c_j ≈ 0 keeps at the first step

    for c0 in range(0, n, _CHUNK):
        c1 = min(c0 + _CHUNK, n)
        inputs.load(sl, c0, c1)
        z_use, r_use, valid_c = inputs.z_use, inputs.r_use, inputs.valid
        coefs.fill(inputs.dt)
        pis, f01, f11, f2, qc = coefs.pis, coefs.f01, coefs.f11, coefs.f2, coefs.q
        totals, shift = totals_all[: c1 - c0], shift_all[: c1 - c0]
        shift.fill(0.0)

        for j in range(c1 - c0):
            k = c0 + j
            # 1. Mixing: mix[:, j] = Σ_i ys[:, i] Π_ij; c_j = mix[0, j].
            pj = pis[j]
            for jj in range(3):  # mix[:, j] = Σ_i ys[:, i] Π_ij, as whole-row ufuncs
                mj = mix_j[jj]
                mul(ys_i0, pj[0, jj], mj)
                mul(ys_i1, pj[1, jj], tmix)
                mj += tmix
                mul(ys_i2, pj[2, jj], tmix)
                mj += tmix
            c_all = bool(c.min() > _C_MIN)
            mix[1:] /= c if c_all else np.where(c > _C_MIN, c, 1.0)
            if not c_all:  # a regime with c_j ≈ 0 keeps its estimate
                keep = Y.copy() if k else first
            add(mix_d, xbar_b, xs)
            mul(mix_d, mix1, e6)  # d_s d_s, d_v d_s
            sub(mix34, e6, p0x)
            mul(mix2, mix2, t3)
            sub(mix5, t3, p11)
            if not c_all:
                copyto(Y, keep, where=c <= _C_MIN)

            # 2. Per-regime prediction: s += F01 v, P00 += F01 (2 P01 + F01 P11) + Q00,
            # P01 = F11 (P01 + F01 P11) + Q01, P11 = F11² P11 + Q11, v *= F11.
            a01 = f01[j]
            q00, q01, q11 = qc[j]
            mul(a01, v, t3)
            s += t3
            mul(a01, p11, t3)
            t3 += p01  # P01 + F01 P11
            add(t3, p01, u3)
            u3 *= a01
            p00 += u3
            p00 += q00
            for i in ou:
                t3[i] *= f11[j, i]
                v[i] *= f11[j, i]
                p11[i] *= f2[j, i]
            add(t3, q01, p01)
            p11 += q11

            # 3. Combined prediction and gate.
            zk = z_use[j]
            rk = r_use[j]
            sbar = out.innovation[k]  # replaced by z - s̄ after the chunk
            var = out.innovation_var[k]
            mul(c, s, t3)
            add(t3_0, t3_1, sbar)
            sbar += t3_2
            sub(s, sbar, t3)
            t3 *= t3
            t3 += p00
            t3 *= c
            add(t3_0, t3_1, var)
            var += t3_2
            var += rk
            ok = valid_c[j]
            if gate is not None:
                nubar = zk - sbar
                ok = ok > (nubar * nubar > gate * var)  # valid and not gated
            out.used[k] = ok
            all_ok = bool(ok.all())

            # 4. Per-regime update with K = [P00, P01] / S (0, and ν = 0, if not used).
            nu = sub(zk, s, t3)
            add(p00, rk, inv_s)
            divide(1.0, inv_s, inv_s)
            mul(p0x, inv_s, gain)
            mul(inv_s, rk, rho)  # 1 - P00/S
            if not all_ok:
                gain *= ok
                nu *= ok
                copyto(rho, 1.0, where=~ok)
            mul(gain1, p01, u3)
            p11 -= u3
            p0x *= rho
            mul(gain, nu, e6)
            xs += e6
            # Regime likelihoods c_j N(ν_j; 0, S_j) (times √(2π)); their sum is the report's
            # likelihood and their shares the regime probabilities.
            mul(nu, nu, nis)
            nis *= inv_s
            if not c_all:
                nis[c <= 0.0] = np.inf
            nis *= -0.5
            lik = exp(nis, nis)
            lik *= c
            sqrt(inv_s, inv_s)
            lik *= inv_s
            total = add(nis_0, nis_1, totals[j])
            total += nis_2
            if not total.min() > _TOTAL_MIN:  # (scaled) underflow for some forces
                lik, total, shift[j] = _likelihood_log_space(nu, 1.0 / inv_s**2, c)
                totals[j] = total
            divide(lik, total, mu)
            if not all_ok:
                copyto(mu, c, where=~ok)

            # 5. Combination, and the mixing inputs of the next step.
            mul(xs, mu, e6)
            add(e6_s[0], e6_s[1], xb_s)
            xb_s += e6_s[2]
            add(e6_v[0], e6_v[1], xb_v)
            xb_v += e6_v[2]
            sub(xs, xbar_b, e6)
            mul(e6, mu, ys_e)
            mul(ys_e, e6_s, ys_a)  # μ e_s e_s, μ e_s e_v
            mul(p0x, mu, gain)
            ys_a += gain
            mul(ys_v, e6_v, ys5)  # μ e_v e_v
            mul(p11, mu, t3)
            ys5 += t3
            add(ys_a00[0], ys_a00[1], xb00)
            xb00 += ys_a00[2]
            add(ys_a01[0], ys_a01[1], xb01)
            xb01 += ys_a01[2]
            add(ys5[0], ys5[1], xb11)
            xb11 += ys5[2]
            out.regime[k] = Y
            out.comb[k] = xb
            out.mu[k] = mu

        # Chunk: innovations z - s̄ and the log-likelihood of the used reports (one log of
        # the product of the chunk's likelihoods, unless that under- or overflows).
        used = out.used[c0:c1]
        inn = out.innovation[c0:c1]
        np.subtract(inputs.z, inn, out=inn)
        np.add(out.innovation_var[c0:c1], inputs.r - r_use, out=out.innovation_var[c0:c1])
        np.copyto(totals, 1.0, where=~used)
        prod = totals.prod(axis=0)
        if prod.min() > 1e-290 and prod.max() < 1e290:
            loglik += np.log(prod)
        else:
            loglik += np.log(totals).sum(axis=0)
        np.copyto(shift, 0.0, where=~used)
        loglik -= 0.5 * shift.sum(axis=0)
        if gate is not None:
            np.greater(valid_c, used, out=out.gated[c0:c1])
    return loglik - 0.5 * _LOG_2PI * out.used.sum(axis=0)


def _likelihood_log_space(
    nu: FloatArray, S: FloatArray, c: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Fallback of the regime-likelihood step in log space (when the scaled sum underflows).

    Returns ``lik`` (3, B), ``total`` (B) and ``m`` (B) with ``lik / total`` the posterior regime
    probabilities and ``log total - m/2`` the log-likelihood up to ``-log(2π)/2``.
    """
    with np.errstate(divide="ignore"):  # log 0 = -inf for a regime with c_j = 0
        log_l = -0.5 * (np.log(S) + nu * nu / S) + np.log(c)
    top = log_l.max(axis=0)
    lik = np.exp(log_l - top)
    total = lik.sum(axis=0)
    return lik, total, -2.0 * top
