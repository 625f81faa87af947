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
``(6, 3, B)`` array: component × regime × force) inside a Python loop over the time index
only.
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
_BLOCK = 4096
_CHUNK = 16
#: Predicted regime probabilities ``c_j`` at or below this are treated as 0 in the mixing (the
#: regime keeps its own estimate): mixing weights built from subnormal numbers are inexact.
_C_MIN = 1e-280
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
    time-major storage (not C-contiguous).
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
            if len(coefs):
                np.einsum("mij,mtb->tijb", coefs, e, out=out)
            else:
                out.fill(0.0)
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
    # Time-major storage, one contiguous write per step: per regime (N, 6, 3, F) and combined
    # (N, 6, F), rows [s, v, P00, P01, P10, P11]; the result holds transposed views.
    out = _Store(
        regime=np.empty((n, 6, 3, n_f)),
        comb=np.empty((n, 6, n_f)),
        mu=np.empty((n, 3, n_f)),
        innovation=np.empty((n, n_f)),
        innovation_var=np.empty((n, n_f)),
        used=np.empty((n, n_f), dtype=bool),
        gated=np.zeros((n, n_f), dtype=bool),
    )
    loglik = np.zeros(n_f)
    block = min(_BLOCK, max(n_f, 1))
    n_t = min(_CHUNK, max(n, 1))
    work = _Work(
        inputs=_Inputs(tt, zz, rr, vv, n_t, block),
        coefs=_Coefficients(params, _Switching(params.rates), n_t, block),
        mix=np.empty((6, 3, block)),
        log_total=np.empty((n_t, block)),
        nis_min=np.empty((n_t, block)),
    )
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        for b0 in range(0, n_f, block):
            sl = slice(b0, min(b0 + block, n_f))
            view = _Store(*(a[..., sl] for a in out.arrays()))
            loglik[sl] = _imm_block(work, xx0[sl], pp0[sl], params, gate, view, sl, n)
    return IMMResult(
        x=out.comb[:, 0:2].transpose(2, 0, 1),
        P=out.comb[:, 2:6].reshape(n, 2, 2, n_f).transpose(3, 0, 1, 2),
        mu=out.mu.transpose(2, 0, 1),
        x_regime=out.regime[:, 0:2].transpose(3, 0, 2, 1),
        P_regime=out.regime[:, 2:6].reshape(n, 2, 2, 3, n_f).transpose(4, 0, 3, 1, 2),
        innovation=out.innovation.T,
        innovation_var=out.innovation_var.T,
        used=out.used.T,
        gated=out.gated.T,
        loglik=loglik,
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

    ``fill(dt)`` sets ``f01``, ``f11``, ``f11sq = F11²``, ``q00``, ``q01``, ``q11``, each
    ``(T, 3, B)``, and ``pis`` ``(T, 3, 3, B)`` = ``Π(dt)``.
    """

    def __init__(self, params: IMMParams, switching: _Switching, n_t: int, n_b: int) -> None:
        self.params = params
        self.switching = switching
        self.bufs = [np.empty((n_t, 3, n_b)) for _ in range(6)]
        self.buf_pis = np.empty((n_t, 3, 3, n_b))
        self.scratch = np.empty((2, n_t, n_b))

    def fill(self, dt: FloatArray) -> None:
        n_t, n_b = dt.shape
        f01, f11, f11sq, q00, q01, q11 = (b[:n_t, :, :n_b] for b in self.bufs)
        scratch = self.scratch[:, :n_t, :n_b]
        for i, (q, tau) in enumerate(zip(self.params.q, self.params.tau, strict=True)):
            cols = (f01[:, i], f11[:, i], q00[:, i], q01[:, i], q11[:, i])
            _ou_into(dt, q, tau, cols, (scratch[0], scratch[1]))
        np.multiply(f11, f11, out=f11sq)
        self.f01, self.f11, self.f11sq, self.q00, self.q01, self.q11 = (
            f01,
            f11,
            f11sq,
            q00,
            q01,
            q11,
        )
        self.pis = self.buf_pis[:n_t, :, :, :n_b]
        self.switching.fill(dt, self.pis, scratch)


@dataclass
class _Work:
    """Work arrays shared by all blocks of one :func:`imm_filter` call."""

    inputs: _Inputs
    coefs: _Coefficients
    mix: FloatArray
    log_total: FloatArray
    nis_min: FloatArray


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

    The regime states live in one ``(6, 3, B)`` array ``Y`` (rows ``[s, v, P00, P01, P10,
    P11]``, the two off-diagonal rows updated together), the combined estimate in ``(6, B)``.
    Mixing uses the previous combined estimate ``x̄`` as the reference point: with
    ``e_i = x_i - x̄`` and ``A_i = P_i + e_i e_iᵀ`` (which also give ``P = Σ μ_i A_i``),
    ``x0_j = x̄ + Σ_i w_ij e_i`` and ``P0_j = Σ_i w_ij A_i - (x0_j - x̄)(x0_j - x̄)ᵀ``; the sums
    ``Σ_i Π_ij (μ_i Y_i)`` are one contraction over the six ``Y ∈ {1, e_s, e_v, A00, A01,
    A11}`` (array ``ys``).
    """
    inputs, coefs = work.inputs, work.coefs
    n_b = x0.shape[0]
    mix = work.mix[:, :, :n_b]
    log_total_all, nis_min_all = work.log_total[:, :n_b], work.nis_min[:, :n_b]

    # All regimes start from the prior: e = 0, A = P0.
    Y = np.empty((6, 3, n_b))
    Y[0:2] = x0.T[:, None, :]
    Y[2:6] = P0.reshape(n_b, 4).T[:, None, :]
    xb = np.empty((6, n_b))
    xb[0:2] = x0.T
    xb[2:6] = P0.reshape(n_b, 4).T
    mu = np.repeat(np.asarray(params.mu0, dtype=np.float64)[:, None], n_b, axis=1)
    ys = np.empty((6, 3, n_b))
    ys[0] = mu
    ys[1:3] = 0.0
    ys[3] = mu * Y[2]
    ys[4] = mu * Y[3]
    ys[5] = mu * Y[5]
    e2 = np.empty((2, 3, n_b))
    loglik = np.zeros(n_b)
    s, v, p00, p01, p11 = Y[0], Y[1], Y[2], Y[3], Y[5]
    sv, p00_p01, p01s, cov = Y[0:2], Y[2:4], Y[3:5], Y[2:5]

    for c0 in range(0, n, _CHUNK):
        c1 = min(c0 + _CHUNK, n)
        inputs.load(sl, c0, c1)
        z_use, r_use, valid_c = inputs.z_use, inputs.r_use, inputs.valid
        coefs.fill(inputs.dt)
        pis, f01, f11, f11sq = coefs.pis, coefs.f01, coefs.f11, coefs.f11sq
        q00, q01, q11 = coefs.q00, coefs.q01, coefs.q11
        log_total, nis_min = log_total_all[: c1 - c0], nis_min_all[: c1 - c0]

        for j in range(c1 - c0):
            k = c0 + j
            # 1. Mixing: mix[:, j] = Σ_i ys[:, i] Π_ij; c_j = mix[0, j].
            np.einsum("qib,ijb->qjb", ys, pis[j], out=mix)
            c = mix[0]
            c_all = bool((c > _C_MIN).all())
            keep = None if c_all else Y.copy()  # a regime with c_j ≈ 0 keeps its estimate
            mix[1:] /= c if c_all else np.where(c > _C_MIN, c, 1.0)
            np.add(mix[1:3], xb[0:2, None, :], out=sv)
            np.multiply(mix[1], mix[1], out=p00)
            np.subtract(mix[3], p00, out=p00)
            np.subtract(mix[4], mix[1] * mix[2], out=p01s)
            np.multiply(mix[2], mix[2], out=p11)
            np.subtract(mix[5], p11, out=p11)
            if keep is not None:
                np.copyto(Y, keep, where=c <= _C_MIN)

            # 2. Per-regime prediction: s += F01 v, v *= F11,
            # P00 += F01 (2 P01 + F01 P11) + Q00, P01 = F11 (P01 + F01 P11) + Q01,
            # P11 = F11² P11 + Q11.
            a01 = f01[j]
            s += a01 * v
            v *= f11[j]
            u = a01 * p11
            u += p01
            w = u + p01
            w *= a01
            p00 += w
            p00 += q00[j]
            u *= f11[j]
            u += q01[j]
            p01s[...] = u
            p11 *= f11sq[j]
            p11 += q11[j]

            # 3. Combined prediction and gate.
            zk = z_use[j]
            rk = r_use[j]
            sbar = (c * s).sum(axis=0)
            e = s - sbar
            e *= e
            e += p00
            e *= c
            sbar_var = e.sum(axis=0)
            sbar_var += rk
            out.innovation[k] = sbar  # replaced by z - s̄ after the chunk
            out.innovation_var[k] = sbar_var
            ok = valid_c[j]
            if gate is not None:
                nubar = zk - sbar
                ok = ok > (nubar * nubar > gate * sbar_var)  # valid and not gated
            out.used[k] = ok

            # 4. Per-regime update; gain K = [P00, P01] / S, or 0 if the report is not used.
            nu = zk - s
            inv_s = p00 + rk
            np.divide(1.0, inv_s, out=inv_s)
            gain = p00_p01 * (inv_s * ok)
            sv += gain * nu
            p11 -= gain[1] * p01
            cov -= gain[0] * cov
            # Regime likelihoods c_j N(ν_j; 0, S_j), scaled by exp(m/2) √(2π) with m the
            # smallest ν²/S among regimes with c_j > 0 (so that the sum is > 0).
            nis = nu * nu
            nis *= inv_s
            if not c_all:
                nis[c <= 0.0] = np.inf
            m = np.min(nis, axis=0, out=nis_min[j])
            nis -= m
            nis *= -0.5
            lik = np.exp(nis)
            lik *= c
            lik *= np.sqrt(inv_s)
            total = lik.sum(axis=0)
            if not total.all():
                lik, total, m[...] = _likelihood_log_space(nu, 1.0 / inv_s, c)
            np.log(total, out=log_total[j])
            lik /= total
            mu = np.where(ok, lik, c)

            # 5. Combination, and the mixing inputs of the next step.
            np.multiply(sv, mu, out=e2)
            np.sum(e2, axis=1, out=xb[0:2])
            np.subtract(sv, xb[0:2, None, :], out=e2)
            ys[0] = mu
            np.multiply(e2, mu, out=ys[1:3])
            np.multiply(ys[1], e2, out=ys[3:5])
            np.multiply(ys[2], e2[1], out=ys[5])
            ys[3:5] += p00_p01 * mu
            ys[5] += p11 * mu
            np.sum(ys[3:5], axis=1, out=xb[2:4])
            np.sum(ys[5], axis=0, out=xb[5])
            xb[4] = xb[3]
            out.regime[k] = Y
            out.comb[k] = xb
            out.mu[k] = mu

        # Chunk: innovations z - s̄ and the log-likelihood of the used reports.
        inn = out.innovation[c0:c1]
        np.subtract(inputs.z, inn, out=inn)
        np.add(out.innovation_var[c0:c1], inputs.r - r_use, out=out.innovation_var[c0:c1])
        nis_min *= -0.5
        nis_min += log_total
        np.copyto(nis_min, 0.0, where=~out.used[c0:c1])
        loglik += nis_min.sum(axis=0)
        if gate is not None:
            np.greater(valid_c, out.used[c0:c1], out=out.gated[c0:c1])
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
