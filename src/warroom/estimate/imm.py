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

At ``k = 0`` no time passes (``Π = I``, ``F = I``, ``Q = 0``): mixing and prediction leave the
prior unchanged and are skipped.

The 2×2 algebra is written out on element arrays (``s, v, P00, P01, P11`` rows of one
``(5, 3, B)`` array: component × regime × force, computed in place in the output) inside a
Python loop over the time index only; every operation covers whole rows (all regimes of a
block of forces), the mixing sums ``Σ_i w_ij (…)_i`` are one ``einsum`` contraction, and
the per-step coefficients (``F``, ``Q``, ``Π``) of a few steps are computed together. The
likelihoods are evaluated relative to regime 1 (two exponentials per report instead of
three; see :func:`_imm_block`). A force's numbers do not depend on which other forces share
its block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from warroom.estimate.kalman import _prepare_inputs

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
_BLOCK = 8192
_CHUNK = 4
#: NumPy's ufunc buffer (elements) while filtering: no larger than a block's rows.
_BUFSIZE = 1024
#: Bytes per memory page (the smallest; one write per page faults the output in).
_PAGE = 4096
#: Predicted regime probabilities ``c_j`` at or below this are treated as 0 in the mixing (the
#: regime keeps its own estimate): mixing weights built from subnormal numbers are inexact.
_C_MIN = 1e-280
#: A report likelihood (up to √(2π)) below this is recomputed in log space: it may have lost
#: digits to underflow (a report hundreds of σ from every regime).
_TOTAL_MIN = 1e-250
#: A relative likelihood sum above this may have overflowed (regime 1 fits far worse than
#: another): recomputed in log space too.
_TOTAL_MAX = 1e250
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
    out: tuple[FloatArray, FloatArray | None, FloatArray, FloatArray, FloatArray],
    scratch: tuple[FloatArray, FloatArray],
    decay: FloatArray | None = None,
    decay2: FloatArray | None = None,
) -> None:
    """Write ``(F01, F11, Q00, Q01, Q11)`` of one regime for steps ``dt`` (days) into ``out``.

    ``out`` and ``scratch`` are C-contiguous arrays of ``dt``'s shape; see the module
    docstring for the formulas (``τ = ∞``: NCV). ``decay``, if given, already holds
    ``F11 = e^{-dt/τ}`` (then ``out[1]`` is not written and may be None), ``decay2`` its
    square ``e^{-2dt/τ}``.
    """
    f01, f11, q00, q01, q11 = out
    if math.isinf(tau):
        np.copyto(f01, dt)
        if f11 is not None:
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
    if decay is None:
        assert f11 is not None
        np.negative(x, out=f11)
        np.exp(f11, out=f11)  # e^{-x}
        decay = f11
    np.subtract(1.0, decay, out=a)  # a = 1 - e^{-x}
    np.multiply(a, tau, out=f01)
    g = q00
    if decay2 is None:
        np.subtract(2.0, a, out=g)
        g *= a  # 1 - e^{-2x}
    else:
        np.subtract(1.0, decay2, out=g)
    np.multiply(g, 0.5 * q * tau, out=q11)
    np.multiply(a, a, out=q01)
    q01 *= 0.5 * q * tau * tau
    g *= 0.5
    g += x
    g -= a
    g -= a  # g(x) = x - 2a + (1 - e^{-2x})/2, cancels for small x: use the series there
    # Few elements (short steps): full relative accuracy with expm1 and the series of g.
    # At x = 0 (no time step, e.g. the first slot) the closed form is exactly 0 already.
    small = (
        np.flatnonzero((x < _SERIES_X) & (x > 0.0))
        if x.size and x.min() < _SERIES_X
        else np.empty(0, dtype=np.intp)
    )
    if small.size:
        xs = _flat(x)[small]
        a_s = -np.expm1(-xs)
        _flat(f01)[small] = tau * a_s
        _flat(q01)[small] = 0.5 * q * tau * tau * a_s * a_s
        _flat(q11)[small] = 0.5 * q * tau * a_s * (2.0 - a_s)
        poly = np.zeros_like(xs)
        for c in reversed(_G_COEFFS):
            poly *= xs
            poly += c
        _flat(g)[small] = poly * xs**3
    g *= q * tau**3


def _flat(a: FloatArray) -> FloatArray:
    """A 1-D view (never a copy) of a C-contiguous array."""
    if not a.flags.c_contiguous:
        raise ValueError("expected a C-contiguous array")
    return a.reshape(-1)


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
    """``Π(dt) = expm(dt Λ)`` for many ``dt`` at once, from one decomposition of ``Λ``.

    With real eigenvalues (the usual case) ``Π(dt) - I = Σ_k C_k (e^{λ_k dt} - 1)``: the
    filter computes the ``e^{λ_k dt}`` (:attr:`lams`, per day) together with its other
    exponentials and passes them to :meth:`fill`.
    """

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
        #: The real eigenvalues λ_k (per day) whose ``e^{λ_k dt} - 1`` :meth:`fill` accepts, or
        #: None if Π is computed otherwise (complex eigenvalues, no eigendecomposition).
        self.lams: list[float] | None = (
            [lam_k.real for lam_k, _ in self.terms] if self.spectral and self.real else None
        )
        self.coefs = (
            np.stack([comp.real for _, comp in self.terms])
            if self.lams
            else np.zeros((0, 3, 3))
        )

    def fill(self, dt: FloatArray, out: FloatArray, em1: FloatArray | None = None) -> None:
        """Write ``Π(dt)`` for ``dt`` of shape ``(T, B)`` into ``out`` of shape ``(3, 3, T, B)``
        (``out[i, j]`` = ``Π_ij``, each C-contiguous).

        Off-diagonal entries are ``Σ_k C_k,ij (e^{λ_k dt} - 1)`` (exact 0 at ``dt = 0``), clipped
        at 0; the diagonal is 1 minus the rest of its row, so rows sum to 1. ``em1``: ``(K, T,
        B)`` holding ``e^{λ_k dt} - 1`` for :attr:`lams` if the caller has them (real case).
        """
        n_t, n_b = dt.shape
        if self.spectral:
            if self.real:
                if em1 is None:
                    em1 = np.multiply(dt[None], np.array(self.lams)[:, None, None])
                    np.exp(em1, out=em1)
                    em1 -= 1.0  # e^{λ dt} - 1: absolute error ~1e-16, exactly 0 at dt = 0
                coefs = self.coefs
            else:
                # Real pairs (coefficient matrix, array): Re(C E) = Re C · Re E - Im C · Im E.
                parts = [np.expm1(lam_k * dt) for lam_k, _ in self.terms]
                em1 = np.stack([p.real for p in parts] + [p.imag for p in parts])
                coefs = np.stack(
                    [comp.real for _, comp in self.terms] + [-comp.imag for _, comp in self.terms]
                )
            # Off-diagonal entries only (the diagonal follows from the rows), each a sum of
            # scalar multiples of the em1 arrays; the diagonal slot serves as scratch.
            for i in range(3):
                for j in range(3):
                    if i == j:
                        continue
                    o, tmp = out[i, j], out[i, i]
                    if not len(coefs):
                        o.fill(0.0)
                        continue
                    np.multiply(em1[0], coefs[0, i, j], out=o)
                    for m in range(1, len(coefs)):
                        np.multiply(em1[m], coefs[m, i, j], out=tmp)
                        o += tmp
                    np.maximum(o, 0.0, out=o)
        else:
            flat = _expm_batch(dt.reshape(-1)[:, None, None] * self.rates)
            out[...] = flat.reshape(n_t, n_b, 3, 3).transpose(2, 3, 0, 1)
            np.maximum(out, 0.0, out=out)
        for i in range(3):
            j1, j2 = (j for j in range(3) if j != i)
            np.subtract(1.0, out[i, j1], out=out[i, i])
            out[i, i] -= out[i, j2]


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
    tm = np.empty((3, 3) + flat.shape)
    _Switching(rates).fill(flat, tm)
    return np.moveaxis(tm[:, :, 0], -1, 0).reshape(d.shape + (3, 3))


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
    n_given = tt.shape[0]
    if n_given == 1:
        # A lone force is filtered as a pair with itself: blocks always hold at least two
        # forces, so that ``einsum`` keeps the force axis innermost and sums over regimes in
        # the same order as for any other block (the same numbers, bit for bit).
        tt, zz, rr, vv, xx0, pp0 = (np.concatenate([a, a]) for a in (tt, zz, rr, vv, xx0, pp0))
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
    # Fault the output pages in now, one sequential pass (the kernel zeroes them): faulted in
    # the middle of the computation, zeroing a 2 MB page would evict the working set.
    for a in out.arrays():
        a.reshape(-1).view(np.uint8)[::_PAGE] = 0
    # Blocks of near-equal size, at least two forces each (no small remainder block: a step
    # costs the same calls for few forces as for many).
    n_blocks = max(1, min(-(-n_f // max(_BLOCK, 2)), n_f // 2))
    edges = [n_f * i // n_blocks for i in range(n_blocks + 1)]
    block = max(1, -(-n_f // n_blocks))
    n_t = min(_CHUNK, max(n, 1))
    work = _Work(
        inputs=_ChunkInputs(tt, zz, rr, vv, n_t, block),
        coefs=_Coefficients(params, _Switching(params.rates), n_t, block),
        block=block,
        n_t=n_t,
    )
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        # Rows of a block are broadcast against each other: with NumPy's default buffer
        # (8192 elements) a row of fewer forces would be copied into buffers first.
        old_bufsize = np.setbufsize(_BUFSIZE)
        try:
            for b0, b1 in zip(edges[:-1], edges[1:], strict=True):
                sl = slice(b0, b1)
                view = _Store(*(a[..., sl] for a in out.arrays()))
                loglik[sl] = _imm_block(work, xx0[sl], pp0[sl], params, gate, view, sl, n)
        finally:
            np.setbufsize(old_bufsize)
    if n_given == 1:
        out = _Store(*(a[..., :1] for a in out.arrays()))
        loglik = loglik[:1]
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


class _ChunkInputs:
    """Time-major inputs of one chunk of ``T`` steps × one block of ``B`` forces.

    ``load`` fills ``dt`` (days, 0 at the first slot), ``z`` (km), ``r`` (km²), ``valid``
    and ``z_use`` / ``r_use``: ``z`` and ``r`` where valid, else 0 and 1, so that padding
    never brings a NaN into the arithmetic (the same arrays as ``z`` and ``r`` when every
    slot of the chunk is valid, :attr:`all_valid`); each ``(T, B)``. The times are read once
    (with the slot before the chunk) and differenced in place.
    """

    def __init__(
        self, t: FloatArray, z: FloatArray, r: FloatArray, valid: BoolArray, n_t: int, n_b: int
    ) -> None:
        self.src = (t, z, r, valid)
        self.buf_t = np.empty((n_t + 1, n_b))
        self.buf = np.empty((5, n_t, n_b))
        self.buf_v = np.empty((n_t, n_b), dtype=bool)
        self.all_valid = True

    def load(self, sl: slice, c0: int, c1: int, dt_out: FloatArray | None = None) -> None:
        """Load slots ``c0:c1`` of forces ``sl``; ``dt`` goes to ``dt_out`` if given."""
        t, z, r, valid = self.src
        n_t, n_b = c1 - c0, sl.stop - sl.start
        tb = self.buf_t[: n_t + 1, :n_b]
        if c0 == 0:
            np.copyto(tb[1:], t[sl, :c1].T)
            tb[0] = tb[1]  # dt = 0 at the first slot
        else:
            np.copyto(tb, t[sl, c0 - 1 : c1].T)
        dt, zz, rr, zu, ru = (b[:n_t, :n_b] for b in self.buf)
        self.dt = np.subtract(tb[1:], tb[:-1], out=dt if dt_out is None else dt_out)
        self.z, self.r = zz, rr
        np.copyto(zz, z[sl, c0:c1].T)
        np.copyto(rr, r[sl, c0:c1].T)
        self.valid = self.buf_v[:n_t, :n_b]
        np.copyto(self.valid, valid[sl, c0:c1].T)
        self.all_valid = bool(self.valid.all())
        if self.all_valid:
            self.z_use, self.r_use = zz, rr
            return
        invalid = ~self.valid
        self.z_use, self.r_use = zu, ru
        np.copyto(zu, zz)
        np.copyto(zu, 0.0, where=invalid)
        np.copyto(ru, rr)
        np.copyto(ru, 1.0, where=invalid)


class _Coefficients:
    """Per-step model and switching coefficients for a chunk of ``T`` steps of ``B`` forces.

    ``fill(dt)`` sets, as C-contiguous ``(…, T, B)`` arrays (component-major, so that every
    computation here runs over whole ``T × B`` blocks and a step reads strided ``(…, B)``
    rows):

    - ``pis`` ``(3, 3, T, B)``: ``Π_ij(dt)``;
    - ``f01`` ``(3, T, B)``: ``F01`` of each regime (``τ(1 - e^{-dt/τ})``, or ``dt`` for NCV;
      the NCV rows are left unset when those regimes are adjacent, :attr:`ncv_rows`, and
      the prediction multiplies by ``dt`` directly);
    - ``f11``, ``f2`` ``(R, T, B)``: ``F11 = e^{-dt/τ}`` and ``F11²`` of the ``R`` damped
      regimes (:attr:`ou`; for NCV ``F11 = 1`` and nothing is stored);
    - ``q`` ``(3, 3, T, B)``: ``Q00, Q01, Q11`` (first axis) of each regime (second axis).

    All exponentials of a chunk (``e^{-dt/τ}`` of the damped regimes, ``e^{λ_k dt}`` of the
    switching chain) are taken by one ``np.exp`` call over a stacked array, and ``Π`` by one
    contraction. The loader writes ``dt`` straight into :attr:`dt` (:meth:`dt_buffer`), the
    last row of the NCV base ``[dt³/3, dt²/2, dt]``.
    """

    def __init__(self, params: IMMParams, switching: _Switching, n_t: int, n_b: int) -> None:
        self.params = params
        self.switching = switching
        self.ncv = [i for i, tau in enumerate(params.tau) if math.isinf(tau)]
        self.ou = [i for i, tau in enumerate(params.tau) if not math.isinf(tau)]
        lams = switching.lams or []
        self.n_ou, self.n_sw = len(self.ou), len(lams)
        # Exponents per day: e^{-dt/τ} of the damped regimes, then e^{λ_k dt} of the chain.
        self.rates = np.array([-1.0 / params.tau[i] for i in self.ou] + lams, dtype=np.float64)
        # Π = I + Σ_k C_k [e^{λ_k dt} - 1]: one contraction over the em1 rows.
        self.cterms = switching.coefs if switching.lams else None
        ncv = self.ncv
        contiguous = bool(ncv) and ncv == list(range(ncv[0], ncv[-1] + 1))
        self.ncv_rows = slice(ncv[0], ncv[-1] + 1) if contiguous else None
        self.q_ncv = np.array([params.q[i] for i in ncv], dtype=np.float64)[:, None, None]
        # Components, each (T, B): exponentials, Π, F01, F11², Q, two OU scratch rows and the
        # NCV base [dt³/3, dt²/2, dt].
        self.sizes = (len(self.rates), 9, 3, self.n_ou, 9, 2, 3)
        self.buf = np.empty(sum(self.sizes) * n_t * n_b)
        self._carve(n_t, n_b)

    def _carve(self, n_t: int, n_b: int) -> None:
        """Contiguous views of ``buf`` for ``(n_t, n_b)`` steps × forces."""
        self.shape = (n_t, n_b)
        size = n_t * n_b
        views = []
        pos = 0
        for n_c in self.sizes:
            views.append(self.buf[pos : pos + n_c * size].reshape(n_c, n_t, n_b))
            pos += n_c * size
        self.ex, pis, self.f01, self.f2, q, self.scratch, self.base = views
        self.dt = self.base[2]
        self.pis = pis.reshape(3, 3, n_t, n_b)
        self.pis_diag = pis[::4]  # Π_00, Π_11, Π_22
        self.q = q.reshape(3, 3, n_t, n_b)
        self.f11 = self.ex[: self.n_ou]

    def dt_buffer(self, n_t: int, n_b: int) -> FloatArray:
        """The array :meth:`fill` reads ``dt`` from without a copy (for the loader)."""
        if (n_t, n_b) != self.shape:
            self._carve(n_t, n_b)
        return self.dt

    def fill(self, dt: FloatArray) -> None:
        if dt.shape != self.shape:
            self._carve(*dt.shape)
        params, ex, f01, q, n_ou = self.params, self.ex, self.f01, self.q, self.n_ou
        if len(self.rates):
            np.multiply(dt[None], self.rates[:, None, None], out=ex)
            np.exp(ex, out=ex)
        if self.cterms is not None:
            em1 = ex[n_ou:]
            em1 -= 1.0  # e^{λ dt} - 1: absolute error ~1e-16, exactly 0 at dt = 0
            np.einsum("mij,mtb->ijtb", self.cterms, em1, out=self.pis)
            self.pis_diag += 1.0
            np.maximum(self.pis, 0.0, out=self.pis)  # rounding below 0 where Π_ij = 0
        else:
            self.switching.fill(dt, self.pis)
        x, h = self.scratch
        for m, i in enumerate(self.ou):
            decay, f2 = self.f11[m], self.f2[m]
            np.multiply(decay, decay, out=f2)
            cols = (f01[i], None, q[0, i], q[1, i], q[2, i])
            _ou_into(dt, params.q[i], params.tau[i], cols, (x, h), decay=decay, decay2=f2)
        if self.ncv:
            base = self.base
            np.multiply(dt, dt, out=base[1])
            np.multiply(base[1], dt, out=base[0])
            base[0] /= 3.0  # dt³/3
            base[1] *= 0.5  # dt²/2
            if dt is not self.dt:  # (the loader may have written it there already)
                np.copyto(base[2], dt)
            if self.ncv_rows is not None:
                # F01 = dt is read from ``dt`` itself by the prediction.
                np.multiply(base[:, None], self.q_ncv, out=q[:, self.ncv_rows])
            else:
                for i in self.ncv:
                    np.copyto(f01[i], dt)
                    np.multiply(base, params.q[i], out=q[:, i])


@dataclass
class _Work:
    """Work arrays shared by all blocks of one :func:`imm_filter` call (``block`` forces)."""

    inputs: _ChunkInputs
    coefs: _Coefficients
    block: int
    n_t: int

    def __post_init__(self) -> None:
        b = self.block
        self.totals = np.empty((self.n_t, b))
        self.offs = np.empty((self.n_t, b))
        self.z = np.empty((5, 3, b))
        self.w = np.empty((3, 3, b))
        self.t2 = np.empty((2, 3, b))
        self.gain = np.empty((2, 3, b))
        self.rows = np.empty((8, 3, b))
        self.ed = np.empty((2, b))
        self.first = np.empty((5, 3, b))


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

    The state of step ``k`` is computed in place in the output, ``Y = out.regime[k]``
    (``(5, 3, B)``: rows ``[s, v, P00, P01, P11]`` × regime × force), the combined estimate in
    ``out.comb[k]`` and the probabilities in ``out.mu[k]``; nothing is copied afterwards.
    Everything is elementwise on whole rows; sums over the regime axis are added in a fixed
    order (regime 0, 1, 2), the 45 products of the mixing by one ``einsum`` contraction (no
    temporaries; with at least two forces per block its force axis stays innermost, so the
    order is the same for any block); the speed multiplications of the prediction are done
    only for the regimes whose ``F11`` is not 1 (damped velocity).

    Mixing uses the previous combined estimate ``x̄`` as the reference point: with
    ``e_i = x_i - x̄`` and ``A_i = P_i + e_i e_iᵀ`` (array ``z``: rows ``e_s, e_v, A00, A01,
    A11``; they also give ``P = Σ μ_i A_i``), the mixing weights ``w_ij = Π_ij μ_i / c_j``,
    ``x0_j = x̄ + Σ_i w_ij e_i`` and ``P0_j = Σ_i w_ij A_i - (x0_j - x̄)(x0_j - x̄)ᵀ``. The update
    uses ``[P00, P01] ← r K``, ``P11 ← P11 - K1 P01`` (``(I - K H) P`` with ``1 - P00/S =
    r/S``); a force's numbers do not depend on the other forces of its block.

    Likelihoods are taken relative to regime 1: with ``n_j = -ν_j²/(2 S_j)``, ``ℓ_j = c_j
    S_j^{-1/2} e^{n_j - n_1}`` (``e^{0} = 1`` for ``j = 1``: two exponentials instead of three)
    gives ``μ_j = ℓ_j / Σ ℓ`` and ``log Σ_j c_j N(ν_j; 0, S_j) = log Σ ℓ + n_1 - log(2π)/2``.
    The sums ``Σ ℓ`` of a chunk are multiplied before one logarithm; a sum that under- or
    overflows (a report thousands of σ off, or regime 1 far worse than another) is redone in
    log space for that force (:func:`_likelihood_log_space`).
    """
    inputs, coefs = work.inputs, work.coefs
    n_b = x0.shape[0]
    totals_all, offs_all = work.totals[:, :n_b], work.offs[:, :n_b]
    z, wgt, t2, gain = (a[..., :n_b] for a in (work.z, work.w, work.t2, work.gain))
    t3, u3, nu, inv_s, nn, lik, c, ic = work.rows[..., :n_b]
    ed = work.ed[:, :n_b]
    first = work.first[..., :n_b]
    mul, add, sub, copyto, divide, einsum = (
        np.multiply, np.add, np.subtract, np.copyto, np.divide, np.einsum
    )
    exp, sqrt = np.exp, np.sqrt
    regime, comb, mu_all = out.regime, out.comb, out.mu
    z_e, z_es, z_ev, z_a01, z_a2, z_a = z[0:2], z[0], z[1], z[2:4], z[4], z[2:5]
    nn_02, nn_1, c_02, lik_02 = nn[::2], nn[1], c[::2], lik[::2]
    # Fixed views of the work arrays (made once, not per step).
    t3_0, t3_1, t3_2 = t3
    lik_0, lik_1, lik_2 = lik
    t2_0, t2_1 = t2
    t2_r0, t2_r1, t2_r2 = t2[:, 0], t2[:, 1], t2[:, 2]
    w_0, w_1, w_2 = wgt
    w_r0, w_r1, w_r2 = wgt[:, 0], wgt[:, 1], wgt[:, 2]
    gain_1 = gain[1]
    ncv_rows = coefs.ncv_rows
    if ncv_rows is not None:
        t2_ncv, u3_ncv = t2[:, ncv_rows], u3[ncv_rows]
    ou_views = [(m, i, t2[:, i], t3[i], u3[i]) for m, i in enumerate(coefs.ou)]

    # All regimes start from the prior: e = 0, A = P0.
    first[0:2] = x0.T[:, None, :]
    first[2] = P0[:, 0, 0, None].T
    first[3] = P0[:, 0, 1, None].T
    first[4] = P0[:, 1, 1, None].T
    mu0 = np.broadcast_to(np.asarray(params.mu0, dtype=np.float64)[:, None], (3, n_b))
    mu0_all = bool(min(params.mu0) > _C_MIN)
    z_e[...] = 0.0
    z_a[...] = first[2:5]
    loglik = np.zeros(n_b)

    for c0, c1 in _chunks(n, _CHUNK):
        if c0:
            inputs.load(sl, c0, c1, coefs.dt_buffer(c1 - c0, n_b))
            coefs.fill(inputs.dt)
        else:  # the first slot needs no coefficients
            inputs.load(sl, c0, c1)
        z_use, r_use, valid_c, dts = inputs.z_use, inputs.r_use, inputs.valid, inputs.dt
        chunk_ok = inputs.all_valid and gate is None
        pis, f01, f11, f2, qc = coefs.pis, coefs.f01, coefs.f11, coefs.f2, coefs.q
        totals, offs = totals_all[: c1 - c0], offs_all[: c1 - c0]

        for j in range(c1 - c0):
            k = c0 + j
            Y = regime[k]
            s, v, p00, p01, p11 = Y
            xs, p0x = Y[0:2], Y[2:4]
            xb, mu = comb[k], mu_all[k]
            xbar = xb[0:2]
            if not k:
                # No time passes before the first slot (Π = I, F = I, Q = 0): every regime
                # holds the prior, with the initial probabilities; mixing and prediction
                # would change nothing.
                copyto(Y, first)
                copyto(c, mu0)
                c_all = mu0_all
            else:
                xprev, mu_prev = comb[k - 1, 0:2], mu_all[k - 1]
                # 1. Mixing: c_j = Σ_i Π_ij μ_i, w_ij = Π_ij μ_i / c_j, Y[:, j] = Σ_i w_ij z_i.
                mul(pis[:, :, j], mu_prev[:, None, :], wgt)  # Π_ij μ_i
                add(w_0, w_1, c)
                c += w_2
                c_all = bool(c.min() > _C_MIN)
                divide(1.0, c if c_all else np.where(c > _C_MIN, c, 1.0), out=ic)
                wgt *= ic  # w_ij
                # Y = [d_s, d_v, ΣwA00, ΣwA01, ΣwA11], then x0 = x̄ + d, P0 = ΣwA - d dᵀ.
                einsum("qib,ijb->qjb", z, wgt, out=Y)
                mul(xs, s, t2)  # d_s d_s, d_v d_s
                p0x -= t2
                mul(v, v, t3)
                p11 -= t3
                xs += xprev[:, None, :]
                if not c_all:  # a regime with c_j ≈ 0 keeps its estimate
                    copyto(Y, regime[k - 1], where=c <= _C_MIN)

                # 2. Per-regime prediction: s += F01 v, P00 += F01 (2 P01 + F01 P11) + Q00,
                # P01 = F11 (P01 + F01 P11) + Q01, P11 = F11² P11 + Q11, v *= F11.
                if ncv_rows is None:
                    a01 = f01[:, j]
                    mul(Y[1::3], a01, t2)  # F01 v, F01 P11
                else:
                    dt_j = dts[j]
                    mul(Y[1::3, ncv_rows], dt_j, t2_ncv)
                    for _, i, t2_i, _, _ in ou_views:
                        mul(Y[1::3, i], f01[i, j], t2_i)
                s += t2_0
                add(t2_1, p01, t3)  # P01 + F01 P11
                add(t3, p01, u3)
                if ncv_rows is None:
                    u3 *= a01
                else:
                    u3_ncv *= dt_j
                    for _, i, _, _, u3_i in ou_views:
                        u3_i *= f01[i, j]
                p00 += u3
                for m, i, _, t3_i, _ in ou_views:
                    f11_mj = f11[m, j]
                    t3_i *= f11_mj
                    v[i] *= f11_mj
                    p11[i] *= f2[m, j]
                add(t3, qc[1, :, j], p01)
                Y[2::2] += qc[0::2, :, j]  # P00 += Q00, P11 += Q11

            # 3. Combined prediction s̄ = Σ c_j s_j, S̄ = Σ c_j (P00_j + (s_j - s̄)²) + r; gate.
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
            all_ok = chunk_ok or bool(ok.all())

            # 4. Per-regime update with K = [P00, P01] / S (0, and ν = 0, if not used):
            # P11 -= K1 P01, [P00, P01] = r K (= (1 - P00/S) [P00, P01]), x += K ν.
            sub(zk, s, nu)
            add(p00, rk, inv_s)
            divide(1.0, inv_s, inv_s)
            mul(p0x, inv_s, gain)
            if all_ok:
                mul(gain_1, p01, u3)
                p11 -= u3
                mul(gain, rk, p0x)
            else:  # the same numbers for the reports used, nothing changed for the rest
                gain *= ok
                nu *= ok
                mul(gain_1, p01, u3)
                p11 -= u3
                mul(gain, rk, t2)
                copyto(p0x, t2, where=ok)
            mul(gain, nu, t2)
            xs += t2
            # Likelihoods relative to regime 1 (times √(2π) and e^{-n_1}): c_j √(1/S_j)
            # e^{n_j - n_1}; their sum is the report's likelihood, their shares the
            # probabilities.
            mul(nu, nu, nn)
            nn *= inv_s  # ν²/S
            mul(nn_1, -0.5, offs[j])  # n_1
            sub(nn_02, nn_1, ed)
            ed *= -0.5  # n_j - n_1
            if not c_all:
                ed[c_02 <= 0.0] = -np.inf
            exp(ed, ed)
            sqrt(inv_s, inv_s)
            mul(c, inv_s, lik)
            lik_02 *= ed
            total = add(lik_0, lik_1, totals[j])
            total += lik_2
            if not (total.min() > _TOTAL_MIN and total.max() < _TOTAL_MAX):
                # Under- or overflow for some forces: redo theirs in log space.
                bad = np.flatnonzero(~((total > _TOTAL_MIN) & (total < _TOTAL_MAX)))
                lik[:, bad], total[bad], offs[j, bad] = _likelihood_log_space(
                    nu[:, bad], 1.0 / inv_s[:, bad] ** 2, c[:, bad]
                )
            divide(lik, total, mu)
            if not all_ok:
                copyto(mu, c, where=~ok)

            # 5. Combination x = Σ μ_j x_j, P = Σ μ_j A_j, and z for the next mixing.
            mul(xs, mu, t2)
            add(t2_r0, t2_r1, xbar)
            xbar += t2_r2
            sub(xs, xbar[:, None, :], z_e)
            mul(z_e, z_es, z_a01)  # e_s e_s, e_v e_s
            z_a01 += p0x
            mul(z_ev, z_ev, z_a2)
            z_a2 += p11
            mul(z_a, mu, wgt)  # μ_i A_i
            pbar = xb[2:5]
            add(w_r0, w_r1, pbar)
            pbar += w_r2

        # Chunk: innovations z - s̄ and the log-likelihood of the used reports (one log of
        # the product of the chunk's likelihoods, unless that under- or overflows).
        used = out.used[c0:c1]
        inn = out.innovation[c0:c1]
        np.subtract(inputs.z, inn, out=inn)
        if not inputs.all_valid:
            np.add(out.innovation_var[c0:c1], inputs.r - r_use, out=out.innovation_var[c0:c1])
        np.copyto(totals, 1.0, where=~used)
        prod = totals.prod(axis=0)
        if prod.min() > 1e-290 and prod.max() < 1e290:
            loglik += np.log(prod)
        else:
            loglik += np.log(totals).sum(axis=0)
        np.copyto(offs, 0.0, where=~used)
        loglik += offs.sum(axis=0)
        if gate is not None:
            np.greater(valid_c, used, out=out.gated[c0:c1])
    return loglik - 0.5 * _LOG_2PI * out.used.sum(axis=0)


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    """Slot ranges of the time loop: the first slot alone (no time passes before it, no
    coefficients), then the rest in near-equal chunks of at most ``size`` slots."""
    if n <= 1:
        return [(0, n)] if n else []
    m = -(-(n - 1) // size)
    edges = [1 + (n - 1) * i // m for i in range(m + 1)]
    return [(0, 1)] + list(zip(edges[:-1], edges[1:], strict=True))


def _likelihood_log_space(
    nu: FloatArray, S: FloatArray, c: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Fallback of the regime-likelihood step in log space (when the scaled sum under- or
    overflows).

    Returns ``lik`` (3, B), ``total`` (B) and ``top`` (B) with ``lik / total`` the posterior
    regime probabilities and ``log total + top`` the log-likelihood up to ``-log(2π)/2``.
    """
    with np.errstate(divide="ignore"):  # log 0 = -inf for a regime with c_j = 0
        log_l = -0.5 * (np.log(S) + nu * nu / S) + np.log(c)
    top = log_l.max(axis=0)
    lik = np.exp(log_l - top)
    total = lik.sum(axis=0)
    return lik, total, top
