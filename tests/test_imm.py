"""Three-regime IMM: against the plain Kalman filter, a plain per-force reference, and data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import expm

from warroom.estimate import imm
from warroom.estimate.imm import (
    REGIMES,
    IMMParams,
    IMMResult,
    imm_filter,
    regime_process_noise,
    regime_transition,
    transition_probabilities,
)
from warroom.estimate.kalman import kalman_filter

from .test_kalman import Batch, make_batch

TOL = {"rtol": 1e-9, "atol": 1e-9}
HALTED, ADVANCING, PURSUIT = 0, 1, 2


# ------------------------------------------------------------------------------------------
# Plain reference: one force at a time, np.linalg, scipy's expm for every matrix.


def van_loan(dt: float, q: float, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """F and Q of ds = v dt, dv = -v/τ dt + dW (intensity q) by Van Loan's method.

    Van Loan's block matrix holds e^{+dt/τ}, which loses all precision for dt ≫ τ; so it is
    applied to a step h = dt / 2^m with h ≤ τ and the result doubled m times with
    Q(2h) = F(h) Q(h) F(h)ᵀ + Q(h), F(2h) = F(h)².
    """
    beta = 0.0 if math.isinf(tau) else 1.0 / tau
    doublings = max(0, math.ceil(math.log2(beta * dt))) if beta * dt > 1.0 else 0
    h = dt / 2.0**doublings
    a = np.array([[0.0, 1.0], [0.0, -beta]])
    g = np.array([[0.0], [1.0]])
    m = np.zeros((4, 4))
    m[:2, :2] = -a
    m[:2, 2:] = q * (g @ g.T)
    m[2:, 2:] = a.T
    e = expm(m * h)
    F = e[2:, 2:].T
    Q = F @ e[:2, 2:]
    for _ in range(doublings):
        Q = F @ Q @ F.T + Q
        F = F @ F
    return F, Q


def reference_imm(
    t: np.ndarray,
    z: np.ndarray,
    r: np.ndarray,
    valid: np.ndarray,
    x0: np.ndarray,
    P0: np.ndarray,
    params: IMMParams,
    gate: float | None,
) -> dict[str, np.ndarray]:
    n_f, n = t.shape
    rates = np.array(params.rates)
    H = np.array([[1.0, 0.0]])
    out = {
        "x": np.zeros((n_f, n, 2)),
        "P": np.zeros((n_f, n, 2, 2)),
        "mu": np.zeros((n_f, n, 3)),
        "x_regime": np.zeros((n_f, n, 3, 2)),
        "P_regime": np.zeros((n_f, n, 3, 2, 2)),
        "used": np.zeros((n_f, n), dtype=bool),
        "gated": np.zeros((n_f, n), dtype=bool),
        "loglik": np.zeros(n_f),
    }
    for f in range(n_f):
        xs = [x0[f].astype(float).copy() for _ in range(3)]
        Ps = [P0[f].astype(float).copy() for _ in range(3)]
        mu = np.array(params.mu0, dtype=float)
        for k in range(n):
            dt = t[f, k] - t[f, k - 1] if k else 0.0
            Pi = expm(dt * rates)
            c = Pi.T @ mu
            xp, Pp = [], []
            for j in range(3):
                if c[j] > 1e-280:
                    w = Pi[:, j] * mu / c[j]
                    xm = sum(w[i] * xs[i] for i in range(3))
                    Pm = sum(w[i] * (Ps[i] + np.outer(xs[i] - xm, xs[i] - xm)) for i in range(3))
                else:  # a regime that cannot be reached (c_j ≈ 0) keeps its own estimate
                    xm, Pm = xs[j], Ps[j]
                F, Q = van_loan(dt, params.q[j], params.tau[j])
                xp.append(F @ xm)
                Pp.append(F @ Pm @ F.T + Q)
            s_bar = sum(c[j] * xp[j][0] for j in range(3))
            S_bar = sum(c[j] * (Pp[j][0, 0] + (xp[j][0] - s_bar) ** 2) for j in range(3)) + r[f, k]
            use = bool(valid[f, k])
            if use and gate is not None and (z[f, k] - s_bar) ** 2 / S_bar > gate:
                use = False
                out["gated"][f, k] = True
            if use:
                logl = np.full(3, -np.inf)
                for j in range(3):
                    S = (H @ Pp[j] @ H.T)[0, 0] + r[f, k]
                    K = Pp[j] @ H.T / S
                    nu = z[f, k] - xp[j][0]
                    xs[j] = xp[j] + K[:, 0] * nu
                    Ps[j] = (np.eye(2) - K @ H) @ Pp[j]
                    if c[j] > 0.0:
                        logl[j] = math.log(c[j]) - 0.5 * (math.log(2 * math.pi * S) + nu * nu / S)
                top = logl.max()
                mu = np.exp(logl - top)
                out["loglik"][f] += top + math.log(mu.sum())
                mu /= mu.sum()
            else:
                xs, Ps, mu = xp, Pp, c
            x = sum(mu[j] * xs[j] for j in range(3))
            P = sum(mu[j] * (Ps[j] + np.outer(xs[j] - x, xs[j] - x)) for j in range(3))
            out["x"][f, k], out["P"][f, k], out["mu"][f, k] = x, P, mu
            out["x_regime"][f, k] = np.array(xs)
            out["P_regime"][f, k] = np.array(Ps)
            out["used"][f, k] = use
    return out


def random_params(seed: int) -> IMMParams:
    """Random models and a random (generally non-reversible) switching-rate matrix."""
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.0, 2.0, size=(3, 3)) * (rng.random((3, 3)) > 0.2)
    np.fill_diagonal(rates, 0.0)
    np.fill_diagonal(rates, -rates.sum(axis=1))
    mu0 = rng.dirichlet(np.ones(3))
    taus = [rng.choice([0.01, 0.05, 0.5, 3.0, math.inf]) for _ in range(3)]
    return IMMParams(
        q=tuple(rng.uniform(0.01, 300.0, size=3)),
        tau=tuple(float(x) for x in taus),
        rates=tuple(tuple(row) for row in rates),
        mu0=tuple(mu0 / mu0.sum()),
    )


def compare(res: IMMResult, ref: dict[str, np.ndarray], loglik_atol: float = 1e-9,
            rtol: float = TOL["rtol"]) -> None:
    for name, want in ref.items():
        got = getattr(res, name)
        assert got.shape == want.shape, name
        if want.dtype == bool:
            np.testing.assert_array_equal(got, want, err_msg=name)
        elif name == "loglik":
            np.testing.assert_allclose(got, want, err_msg=name, rtol=1e-9, atol=loglik_atol)
        else:
            np.testing.assert_allclose(got, want, err_msg=name, rtol=rtol, atol=TOL["atol"])


batches = st.builds(
    make_batch,
    seed=st.integers(0, 2**32 - 1),
    n_forces=st.integers(1, 3),
    n_slots=st.integers(1, 25),
)


# ------------------------------------------------------------------------------------------
# Tests


@settings(max_examples=30, deadline=None)
@given(b=batches, params_seed=st.integers(0, 2**32 - 1), gate=st.sampled_from([None, 6.63]))
def test_equals_plain_reference(b: Batch, params_seed: int, gate: float | None) -> None:
    """Random switching rates, including zero rates (regimes that cannot be re-entered) and
    long gaps: a switching probability can then be ~1e-10 while Π(dt) is exact only to ~1e-16
    in absolute terms (here and in scipy's expm alike), so a report that such an unlikely
    regime explains moves the log-likelihood by up to ~1e-7, and the regime probabilities
    (with the states and covariances they mix) by parts in 1e8 (a case hypothesis found:
    3.7e-8); elsewhere they agree to 1e-9."""
    params = random_params(params_seed)
    res = imm_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, params, gate=gate)
    ref = reference_imm(b.t, b.z, b.r, b.valid, b.x0, b.P0, params, gate)
    compare(res, ref, loglik_atol=1e-6, rtol=1e-7)


@settings(max_examples=10, deadline=None)
@given(b=batches, gate=st.sampled_from([None, 6.63]))
def test_default_params_equal_plain_reference(b: Batch, gate: float | None) -> None:
    res = imm_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, gate=gate)
    compare(res, reference_imm(b.t, b.z, b.r, b.valid, b.x0, b.P0, IMMParams(), gate))


@settings(max_examples=40, deadline=None)
@given(b=batches, gate=st.sampled_from([None, 9.0]), q=st.floats(0.01, 100.0))
def test_identical_regimes_equal_kalman_filter(b: Batch, gate: float | None, q: float) -> None:
    params = IMMParams(q=(q, q, q), tau=(math.inf, math.inf, math.inf))
    res = imm_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, params, gate=gate)
    kf = kalman_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, q, gate=gate)
    np.testing.assert_allclose(res.x, kf.x, **TOL)
    np.testing.assert_allclose(res.P, kf.P, **TOL)
    np.testing.assert_allclose(res.loglik, kf.loglik, **TOL)
    np.testing.assert_allclose(res.innovation, kf.innovation, **TOL)
    np.testing.assert_allclose(res.innovation_var, kf.innovation_var, **TOL)
    np.testing.assert_array_equal(res.used, kf.used)
    np.testing.assert_array_equal(res.gated, kf.gated)
    for j in range(3):
        np.testing.assert_allclose(res.x_regime[:, :, j], kf.x, **TOL)
        np.testing.assert_allclose(res.P_regime[:, :, j], kf.P, **TOL)
    # Nothing distinguishes the regimes: the probabilities follow the Markov chain alone.
    np.testing.assert_allclose(res.mu, imm_filter(b.t, b.z, b.r, False, b.x0, b.P0, params).mu)


@settings(max_examples=30, deadline=None)
@given(b=batches, params_seed=st.integers(0, 2**32 - 1))
def test_probabilities_are_a_distribution(b: Batch, params_seed: int) -> None:
    res = imm_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, random_params(params_seed), gate=9.0)
    np.testing.assert_allclose(res.mu.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    assert np.all(res.mu >= 0.0) and np.all(res.mu <= 1.0 + 1e-12)
    assert np.all(np.isfinite(res.x)) and np.all(np.isfinite(res.P))
    # The combined covariance is a covariance.
    assert np.all(np.linalg.eigvalsh(res.P) > -1e-9 * np.abs(res.P).max())


def test_covariances_are_exactly_symmetric_and_read_only() -> None:
    b = make_batch(3, 5, 25)
    res = imm_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, gate=9.0)
    for p in (res.P, res.P_regime):
        np.testing.assert_array_equal(p[..., 0, 1], p[..., 1, 0])
        with pytest.raises(ValueError):
            p[..., 0, 1] = 0.0
    copy = np.array(res.P)
    copy[..., 0, 1] = 7.0  # a copy is an ordinary array
    assert np.all(copy[..., 1, 0] == res.P[..., 1, 0])


def simulate(seed: int, n_forces: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Forces halted for 15 days, advancing at 25 km/day until day 30, then a pursuit whose
    speed rises from 40 to 60 km/day over 3 days and stays at 60. Reports every 0.25–0.75 day,
    1 km noise."""
    rng = np.random.default_rng(seed)
    dt = rng.uniform(0.25, 0.75, size=(n_forces, 120))
    dt[:, 0] = 0.0
    t = np.cumsum(dt, axis=1)
    fine = np.linspace(0.0, t.max() + 1.0, 200_001)
    speed = np.where(
        fine < 15, 0.0, np.where(fine < 30, 25.0, 40.0 + 20.0 * np.clip((fine - 30) / 3, 0, 1))
    )
    dist = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * np.diff(fine))])
    z = 100.0 + np.interp(t, fine, dist) + rng.normal(0.0, 1.0, size=t.shape)
    return t, z


@pytest.mark.parametrize(("seed", "gate"), [(0, None), (1, None), (0, 400.0)])
def test_regimes_are_detected(seed: int, gate: float | None) -> None:
    t, z = simulate(seed)
    n_f = t.shape[0]
    outlier = np.zeros(t.shape, dtype=bool)
    if gate is not None:  # a 150 km (150 σ) outlier in mid-advance, for every force
        outlier[np.arange(n_f), np.argmax(t >= 25.0, axis=1)] = True
        z = z + 150.0 * outlier
    x0 = np.column_stack([z[:, 0], np.zeros(n_f)])
    res = imm_filter(t, z, 1.0, True, x0, np.diag([1.0, 400.0]), gate=gate)
    assert REGIMES == ("halted", "advancing", "pursuit")
    np.testing.assert_array_equal(res.gated, outlier)

    def mean_mu(a: float, b: float) -> np.ndarray:
        window = (t >= a) & (t < b)
        return np.array([res.mu[f][window[f]].mean(axis=0) for f in range(n_f)])

    halted = mean_mu(5.0, 15.0)  # well inside the halt
    advancing = mean_mu(20.0, 30.0)  # steady 25 km/day
    pursuit = mean_mu(30.5, 33.5)  # accelerating from 40 to 60 km/day
    # Measured with these seeds: ≥ 0.77, ≥ 0.87, ≥ 0.76 for every force.
    assert np.all(halted[:, HALTED] > 0.6)
    assert np.all(advancing[:, ADVANCING] > 0.7)
    assert np.all(pursuit[:, PURSUIT] > 0.5)
    assert np.all(halted.argmax(axis=1) == HALTED)
    assert np.all(advancing.argmax(axis=1) == ADVANCING)
    assert np.all(pursuit.argmax(axis=1) == PURSUIT)
    # And the speed estimates follow.
    last_halt = np.array([np.searchsorted(t[f], 15.0) - 1 for f in range(n_f)])
    assert np.all(np.abs(res.x[np.arange(n_f), last_halt, 1]) < 2.0)
    assert np.all(np.abs(res.x[:, -1, 1] - 60.0) < 5.0)


def test_halted_regime_dominates_after_long_halt() -> None:
    t = np.cumsum(np.full((1, 60), 0.5), axis=1)
    z = 42.0 + np.random.default_rng(3).normal(0.0, 1.0, t.shape)
    res = imm_filter(t, z, 1.0, True, [[42.0, 10.0]], np.diag([1.0, 100.0]))
    assert res.mu[0, -1, HALTED] > 0.6
    assert res.mu[0, -1].argmax() == HALTED
    assert abs(res.x[0, -1, 1]) < 1.0


def test_unreachable_regime_keeps_its_estimate() -> None:
    """A jump of thousands of km kills the halted regime (μ = 0 exactly); a second report at
    the same time then has c_halted = 0: the degenerate mixing path, checked against the
    reference."""
    t = np.array([[0.0, 1.0, 2.0, 3.0, 3.0, 3.0, 4.0]])
    z = np.array([[0.0, 0.0, 0.0, 5000.0, 5000.5, 5001.0, 5100.0]])
    x0 = np.array([[0.0, 0.0]])
    P0 = np.diag([1.0, 1.0])[None]
    params = IMMParams()
    res = imm_filter(t, z, 0.01, True, x0, P0, params)
    assert res.mu[0, 3, HALTED] == 0.0
    np.testing.assert_allclose(res.mu.sum(-1), 1.0, atol=1e-12)
    assert np.all(np.isfinite(res.P_regime))
    compare(
        res,
        reference_imm(t, z, np.full(t.shape, 0.01), np.ones(t.shape, bool), x0, P0, params, None),
    )


def test_blocking_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    b = make_batch(4, 7, 40)
    params = random_params(8)
    res = imm_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, params, gate=9.0)
    monkeypatch.setattr(imm, "_BLOCK", 3)
    monkeypatch.setattr(imm, "_CHUNK", 4)
    small = imm_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, params, gate=9.0)
    for name in IMMResult.__dataclass_fields__:
        np.testing.assert_allclose(getattr(small, name), getattr(res, name), rtol=1e-13, atol=1e-13)


def test_a_forces_numbers_do_not_depend_on_its_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forces filtered in blocks of two (the smallest block), alone, or all together with
    forces whose reports are missing, gated or far off (likelihoods redone in log space) get
    bit-for-bit the same numbers: the columnar estimator relies on it."""
    b = make_batch(5, 8, 30)
    z = b.z.copy()
    k = 10 + int(np.argmax(b.valid[0, 10:]))
    z[0, k] += 1e5  # ~10⁴ σ from every regime: the likelihood ratios overflow
    params = random_params(3)
    log_space = imm._likelihood_log_space
    calls: list[int] = []

    def counted(*args: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        calls.append(args[0].shape[1])
        return log_space(*args)

    monkeypatch.setattr(imm, "_likelihood_log_space", counted)
    for gate in (None, 9.0):
        res = imm_filter(b.t, z, b.r, b.valid, b.x0, b.P0, params, gate=gate)
        monkeypatch.setattr(imm, "_BLOCK", 1)
        pairs = imm_filter(b.t, z, b.r, b.valid, b.x0, b.P0, params, gate=gate)
        monkeypatch.setattr(imm, "_BLOCK", 8192)
        for name in IMMResult.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(pairs, name), getattr(res, name), name)
        for f in (0, 1):
            one = slice(f, f + 1)
            alone = imm_filter(b.t[one], z[one], b.r[one], b.valid[one], b.x0[one], b.P0[one],
                               params, gate=gate)
            for name in IMMResult.__dataclass_fields__:
                np.testing.assert_array_equal(getattr(alone, name), getattr(res, name)[one], name)
        assert res.gated.any() == (gate is not None)
    assert calls and max(calls) < 8  # the log-space path ran, for the affected forces only
    assert not b.valid.all()


@pytest.mark.parametrize("n_slots", [0, 1, 2, 5])
def test_short_histories(n_slots: int) -> None:
    """No slot, a first slot only (no time step), and chunks shorter than a block's."""
    b = make_batch(2, 3, 6)
    t, z, r, valid = (a[:, :n_slots] for a in (b.t, b.z, b.r, b.valid))
    res = imm_filter(t, z, r, valid, b.x0, b.P0)
    assert res.x.shape == (3, n_slots, 2) and res.mu.shape == (3, n_slots, 3)
    if n_slots:
        compare(res, reference_imm(t, z, r, valid, b.x0, b.P0, IMMParams(), None))


def test_permuting_forces_permutes_results() -> None:
    b = make_batch(6, 9, 30)
    perm = np.random.default_rng(0).permutation(9)
    res = imm_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, gate=9.0)
    per = imm_filter(
        b.t[perm], b.z[perm], b.r[perm], b.valid[perm], b.x0[perm], b.P0[perm], gate=9.0
    )
    for name in IMMResult.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(per, name), getattr(res, name)[perm], err_msg=name)


@pytest.mark.parametrize("params_seed", [0, 1, 2, 3, 4, 5])
def test_transition_probabilities_equal_expm(params_seed: int) -> None:
    rates = np.array(random_params(params_seed).rates)
    dt = np.array([0.0, 1e-9, 1e-3, 0.4, 2.0, 30.0])
    got = transition_probabilities(dt, rates)
    for d, p in zip(dt, got, strict=True):
        np.testing.assert_allclose(p, expm(d * rates), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got[0], np.eye(3))
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-14)


def test_transition_probabilities_defective_rates() -> None:
    """A non-diagonalisable rate matrix (a chain with a repeated eigenvalue) uses the
    scaling-and-squaring fallback."""
    rates = np.array([[-1.0, 1.0, 0.0], [0.0, -1.0, 1.0], [0.0, 0.0, 0.0]])
    dt = np.array([[0.0, 0.3], [1.0, 7.5]])
    got = transition_probabilities(dt, rates)
    assert got.shape == (2, 2, 3, 3)
    for idx in np.ndindex(dt.shape):
        np.testing.assert_allclose(got[idx], expm(dt[idx] * rates), rtol=0, atol=1e-12)


@pytest.mark.parametrize("tau", [0.01, 0.05, 1.0, 40.0, math.inf])
def test_regime_matrices_equal_van_loan(tau: float) -> None:
    dt = np.array([0.0, 1e-7, 1e-4, 0.002, 0.1, 0.7, 3.0, 25.0])
    F = regime_transition(dt, tau)
    Q = regime_process_noise(dt, 2.5, tau)
    for d, f, q in zip(dt, F, Q, strict=True):
        f_ref, q_ref = van_loan(d, 2.5, tau)
        np.testing.assert_allclose(f, f_ref, rtol=1e-12, atol=1e-15)
        # Relative accuracy also for tiny steps (where the closed form cancels).
        np.testing.assert_allclose(q, q_ref, rtol=1e-9, atol=1e-300)
    assert np.all(np.linalg.eigvalsh(Q[1:]) >= 0.0)


def test_halted_model_stops_the_force() -> None:
    F = regime_transition(1.0, IMMParams().tau[HALTED])
    assert abs(F[1, 1]) < 1e-8  # the speed is gone within a day
    assert F[0, 1] == pytest.approx(IMMParams().tau[HALTED], rel=1e-8)


def test_likelihood_fallback_in_log_space() -> None:
    """The log-space fallback (used when the scaled likelihood sum underflows) gives the
    posterior regime probabilities and the log-likelihood of the mixture."""
    rng = np.random.default_rng(0)
    nu = rng.normal(0.0, 5.0, size=(3, 4))
    S = rng.uniform(0.5, 5.0, size=(3, 4))
    c = rng.dirichlet(np.ones(3), size=4).T
    c[0, 1] = 0.0
    c[:, 1] /= c[:, 1].sum()
    lik, total, top = imm._likelihood_log_space(nu, S, c)
    dens = c * np.exp(-0.5 * nu**2 / S) / np.sqrt(2 * np.pi * S)
    np.testing.assert_allclose(lik / total, dens / dens.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(
        np.log(total) + top - 0.5 * np.log(2 * np.pi), np.log(dens.sum(axis=0)), rtol=1e-12
    )


def test_params_are_validated() -> None:
    with pytest.raises(ValueError):
        IMMParams(rates=((-1.0, 1.0, 0.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0)))
    with pytest.raises(ValueError):
        IMMParams(mu0=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError):
        IMMParams(tau=(0.0, math.inf, math.inf))
    with pytest.raises(ValueError):
        IMMParams(q=(-1.0, 1.0, 1.0))
