"""Batched NCV Kalman filter and RTS smoother against filterpy, run one force at a time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from filterpy.kalman import KalmanFilter
from hypothesis import given, settings
from hypothesis import strategies as st

from warroom.estimate import kalman
from warroom.estimate.kalman import (
    KalmanResult,
    kalman_filter,
    ncv_process_noise,
    ncv_transition,
    rts_smoother,
)

TOL = {"rtol": 1e-9, "atol": 1e-9}
H = np.array([[1.0, 0.0]])


@dataclass
class Batch:
    """Padded batch of forces: row f has ``lengths[f]`` real slots, then padding."""

    t: np.ndarray
    z: np.ndarray
    r: np.ndarray
    valid: np.ndarray
    x0: np.ndarray
    P0: np.ndarray
    q: np.ndarray
    lengths: np.ndarray


def make_batch(seed: int, n_forces: int, n_slots: int) -> Batch:
    """Irregular reports: repeated times, long gaps, excluded reports, varying r, padding."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, n_slots + 1, size=n_forces)
    lengths[0] = n_slots
    gaps = rng.choice([0.0, 0.01, 0.3, 1.0, 4.0], size=(n_forces, n_slots))
    gaps *= rng.uniform(0.5, 1.5, size=gaps.shape)
    gaps[:, 0] = 0.0
    t = rng.uniform(0.0, 50.0, size=(n_forces, 1)) + np.cumsum(gaps, axis=1)
    speed = rng.uniform(-10.0, 60.0, size=(n_forces, 1))
    z = rng.uniform(0.0, 500.0, size=(n_forces, 1)) + speed * (t - t[:, :1])
    z += rng.normal(0.0, 3.0, size=z.shape)
    r = rng.uniform(0.2, 20.0, size=z.shape)
    valid = rng.random(z.shape) > 0.25
    for f, n in enumerate(lengths):
        valid[f, n:] = False
        t[f, n:] = t[f, n - 1]  # padding: same time, no report
        z[f, n:] = np.nan
        r[f, n:] = np.nan
    x0 = np.column_stack([z[:, 0] + rng.normal(0, 5, n_forces), rng.uniform(0, 40, n_forces)])
    a = rng.normal(size=(n_forces, 2, 2)) * np.array([10.0, 5.0])[:, None]
    P0 = a @ a.transpose(0, 2, 1) + np.diag([1.0, 0.5])
    q = rng.uniform(0.05, 50.0, size=n_forces)
    return Batch(t, z, r, valid, x0, P0, q, lengths)


def filterpy_run(b: Batch, f: int, gate: float | None = None) -> dict[str, np.ndarray]:
    """filterpy over force f's own slots, with F, Q and R set per step."""
    kf = KalmanFilter(dim_x=2, dim_z=1)
    kf.x = b.x0[f].reshape(2, 1).copy()
    kf.P = b.P0[f].copy()
    kf.H = H
    out: dict[str, list] = {k: [] for k in ("xp", "Pp", "x", "P", "used", "Fs", "Qs")}
    loglik = 0.0
    for k in range(b.lengths[f]):
        dt = b.t[f, k] - b.t[f, k - 1] if k else 0.0
        F = np.array([[1.0, dt], [0.0, 1.0]])
        Q = b.q[f] * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        kf.predict(F=F, Q=Q)
        out["xp"].append(kf.x[:, 0].copy())
        out["Pp"].append(kf.P.copy())
        use = bool(b.valid[f, k])
        if use and gate is not None:
            nu = b.z[f, k] - kf.x[0, 0]
            use = nu * nu / (kf.P[0, 0] + b.r[f, k]) <= gate
        if use:
            kf.update(b.z[f, k], R=b.r[f, k])
            loglik += kf.log_likelihood
        out["x"].append(kf.x[:, 0].copy())
        out["P"].append(kf.P.copy())
        out["used"].append(use)
        out["Fs"].append(F)
        out["Qs"].append(Q)
    res = {k: np.array(v) for k, v in out.items()}
    res["loglik"] = np.array(loglik)
    return res


batches = st.builds(
    make_batch,
    seed=st.integers(0, 2**32 - 1),
    n_forces=st.integers(1, 5),
    n_slots=st.integers(1, 40),
)


@settings(max_examples=60, deadline=None)
@given(b=batches, gate=st.sampled_from([None, 9.0]))
def test_filter_equals_filterpy(b: Batch, gate: float | None) -> None:
    res = kalman_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, b.q, gate=gate)
    for f, n in enumerate(b.lengths):
        ref = filterpy_run(b, f, gate)
        np.testing.assert_allclose(res.x_pred[f, :n], ref["xp"], **TOL)
        np.testing.assert_allclose(res.P_pred[f, :n], ref["Pp"], **TOL)
        np.testing.assert_allclose(res.x[f, :n], ref["x"], **TOL)
        np.testing.assert_allclose(res.P[f, :n], ref["P"], **TOL)
        np.testing.assert_array_equal(res.used[f, :n], ref["used"])
        np.testing.assert_allclose(res.loglik[f], ref["loglik"], **TOL)
        nu = b.z[f, :n] - ref["xp"][:, 0]
        np.testing.assert_allclose(res.innovation[f, :n], nu, **TOL)
        np.testing.assert_allclose(
            res.innovation_var[f, :n], ref["Pp"][:, 0, 0] + b.r[f, :n], **TOL
        )
        # Padding (same time, no report) is a pure prediction over dt = 0: nothing moves.
        np.testing.assert_array_equal(
            res.x[f, n:], np.broadcast_to(res.x[f, n - 1], (b.t.shape[1] - n, 2))
        )
        np.testing.assert_array_equal(
            res.P[f, n:], np.broadcast_to(res.P[f, n - 1], (b.t.shape[1] - n, 2, 2))
        )
        assert not res.used[f, n:].any()
    assert np.all(res.gated == (b.valid & ~res.used))
    assert np.all(np.isfinite(res.x)) and np.all(np.isfinite(res.P))


@settings(max_examples=40, deadline=None)
@given(b=batches)
def test_smoother_equals_filterpy(b: Batch) -> None:
    res = kalman_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, b.q)
    xs, Ps = rts_smoother(res, b.t, b.q)
    assert xs.shape == res.x.shape and Ps.shape == res.P.shape
    for f, n in enumerate(b.lengths):
        ref = filterpy_run(b, f)
        kf = KalmanFilter(dim_x=2, dim_z=1)
        xs_ref, Ps_ref, _, _ = kf.rts_smoother(ref["x"], ref["P"], ref["Fs"], ref["Qs"])
        np.testing.assert_allclose(xs[f, :n], xs_ref, **TOL)
        np.testing.assert_allclose(Ps[f, :n], Ps_ref, **TOL)
        # The smoothed padding equals the smoothed last real slot (dt = 0, no information).
        np.testing.assert_allclose(xs[f, n:], np.broadcast_to(xs[f, n - 1], xs[f, n:].shape), **TOL)
    # The last slot is not smoothed further.
    np.testing.assert_array_equal(xs[:, -1], res.x[:, -1])
    np.testing.assert_array_equal(Ps[:, -1], res.P[:, -1])


def test_smoother_without_reports_is_the_prediction() -> None:
    """With no report at all, smoothing backwards from the last prediction returns the prior
    propagated forwards: all slots are pure predictions of one and the same trajectory."""
    t = np.array([[0.0, 1.0, 2.5, 4.0]])
    x0 = np.array([[10.0, 20.0]])
    P0 = np.diag([4.0, 9.0])[None]
    res = kalman_filter(t, np.full(t.shape, np.nan), 1.0, False, x0, P0, 2.0)
    xs, Ps = rts_smoother(res, t, 2.0)
    np.testing.assert_allclose(xs[0, :, 0], 10.0 + 20.0 * t[0], **TOL)
    np.testing.assert_allclose(xs[0, :, 1], 20.0, **TOL)
    # Smoothing without data does not reduce the uncertainty of the first slot.
    np.testing.assert_allclose(Ps[0, 0], P0[0], **TOL)


def test_gate_rejects_outlier_and_leaves_the_rest_unchanged() -> None:
    b = make_batch(7, 3, 30)
    b.valid[:, :] = True
    b.lengths[:] = 30
    b.t = np.cumsum(np.full(b.t.shape, 0.5), axis=1)
    b.z = 100.0 + 25.0 * b.t + np.random.default_rng(1).normal(0.0, 1.0, b.t.shape)
    b.r = np.ones(b.t.shape)
    b.x0 = np.column_stack([b.z[:, 0], np.full(3, 25.0)])
    b.P0 = np.broadcast_to(np.diag([1.0, 4.0]), (3, 2, 2)).copy()
    clean = kalman_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, b.q, gate=10.83)
    assert not clean.gated.any()
    k = 20
    sigma = np.sqrt(clean.innovation_var[1, k])
    z = b.z.copy()
    z[1, k] += 100.0 * sigma
    res = kalman_filter(b.t, z, b.r, b.valid, b.x0, b.P0, b.q, gate=10.83)
    expected_gated = np.zeros(b.t.shape, dtype=bool)
    expected_gated[1, k] = True
    np.testing.assert_array_equal(res.gated, expected_gated)
    np.testing.assert_array_equal(res.used, ~expected_gated)
    assert res.innovation[1, k] ** 2 / res.innovation_var[1, k] > 10.83
    # Identical to a run where that report was excluded upstream.
    valid = b.valid.copy()
    valid[1, k] = False
    excluded = kalman_filter(b.t, z, b.r, valid, b.x0, b.P0, b.q, gate=10.83)
    for name in ("x_pred", "P_pred", "x", "P", "innovation", "innovation_var", "used", "loglik"):
        np.testing.assert_array_equal(getattr(res, name), getattr(excluded, name), err_msg=name)
    # Without the gate the outlier is used and drags the track.
    ungated = kalman_filter(b.t, z, b.r, b.valid, b.x0, b.P0, b.q)
    assert ungated.used[1, k] and not ungated.gated.any()
    assert abs(ungated.x[1, k, 0] - res.x[1, k, 0]) > 10.0 * sigma


def test_gate_flags_match_threshold() -> None:
    b = make_batch(3, 6, 60)
    res = kalman_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, b.q, gate=3.84)
    nis = res.innovation**2 / res.innovation_var
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(res.gated, b.valid & (nis > 3.84))
    assert res.gated.any() and res.used.any()


@settings(max_examples=25, deadline=None)
@given(b=batches, perm_seed=st.integers(0, 2**32 - 1))
def test_permuting_forces_permutes_results(b: Batch, perm_seed: int) -> None:
    perm = np.random.default_rng(perm_seed).permutation(b.t.shape[0])
    res = kalman_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, b.q, gate=9.0)
    per = kalman_filter(
        b.t[perm], b.z[perm], b.r[perm], b.valid[perm], b.x0[perm], b.P0[perm], b.q[perm], gate=9.0
    )
    for name in KalmanResult.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(per, name), getattr(res, name)[perm], err_msg=name)
    xs, Ps = rts_smoother(res, b.t, b.q)
    xs_p, Ps_p = rts_smoother(per, b.t[perm], b.q[perm])
    np.testing.assert_array_equal(xs_p, xs[perm])
    np.testing.assert_array_equal(Ps_p, Ps[perm])


def test_blocking_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force blocks and time chunks are an implementation detail: tiny ones give the same."""
    b = make_batch(11, 7, 45)
    res = kalman_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, b.q, gate=9.0)
    xs, Ps = rts_smoother(res, b.t, b.q)
    monkeypatch.setattr(kalman, "_BLOCK", 2)
    monkeypatch.setattr(kalman, "_CHUNK", 3)
    small = kalman_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, b.q, gate=9.0)
    xs2, Ps2 = rts_smoother(small, b.t, b.q)
    for name in KalmanResult.__dataclass_fields__:
        np.testing.assert_allclose(getattr(small, name), getattr(res, name), rtol=1e-14, atol=0)
    np.testing.assert_allclose(xs2, xs, rtol=1e-14, atol=0)
    np.testing.assert_allclose(Ps2, Ps, rtol=1e-14, atol=0)


def test_scalar_and_per_force_q_agree() -> None:
    b = make_batch(5, 4, 20)
    a = kalman_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, 3.0)
    c = kalman_filter(b.t, b.z, b.r, b.valid, b.x0, b.P0, np.full(4, 3.0))
    np.testing.assert_array_equal(a.x, c.x)
    np.testing.assert_array_equal(a.P, c.P)


def test_steady_velocity_is_learnt() -> None:
    """A force reporting along 30 km/day: the filter converges to s and v."""
    rng = np.random.default_rng(2)
    t = np.cumsum(rng.uniform(0.2, 1.0, size=(1, 80)), axis=1)
    z = 5.0 + 30.0 * t + rng.normal(0.0, 0.5, t.shape)
    res = kalman_filter(t, z, 0.25, True, [[0.0, 0.0]], np.diag([1e4, 1e4]), 0.01)
    assert abs(res.x[0, -1, 1] - 30.0) < 1.0
    assert abs(res.x[0, -1, 0] - (5.0 + 30.0 * t[0, -1])) < 1.0
    assert res.P[0, -1, 1, 1] < 1.0


def test_ncv_matrices() -> None:
    dt = np.array([[0.0, 0.5], [2.0, 3.0]])
    F = ncv_transition(dt)
    assert F.shape == (2, 2, 2, 2)
    np.testing.assert_array_equal(F[1, 0], [[1.0, 2.0], [0.0, 1.0]])
    Q = ncv_process_noise(dt, np.array([1.0, 4.0]))
    assert Q.shape == (2, 2, 2, 2)
    np.testing.assert_allclose(Q[1, 1], 4.0 * np.array([[9.0, 4.5], [4.5, 3.0]]), rtol=1e-15)
    np.testing.assert_array_equal(Q[0, 0], np.zeros((2, 2)))
    np.testing.assert_array_equal(Q, Q.swapaxes(-1, -2))
    # Q(dt) is the accumulated white-acceleration noise: Q(a + b) = F(b) Q(a) F(b)ᵀ + Q(b).
    a, c, q = 0.7, 1.9, 2.5
    lhs = ncv_process_noise(a + c, q)
    rhs = ncv_transition(c) @ ncv_process_noise(a, q) @ ncv_transition(c).T + ncv_process_noise(
        c, q
    )
    np.testing.assert_allclose(lhs, rhs, rtol=1e-13)


def test_invalid_inputs_are_refused() -> None:
    t = np.array([[0.0, 2.0, 1.0]])
    z = np.zeros((1, 3))
    with pytest.raises(ValueError, match="non-decreasing"):
        kalman_filter(t, z, 1.0, True, [[0.0, 0.0]], np.eye(2), 1.0)
    with pytest.raises(ValueError, match="r must be > 0"):
        kalman_filter(np.sort(t), z, 0.0, True, [[0.0, 0.0]], np.eye(2), 1.0)
    with pytest.raises(ValueError, match="symmetric"):
        kalman_filter(np.sort(t), z, 1.0, True, [[0.0, 0.0]], [[1.0, 0.5], [0.0, 1.0]], 1.0)


def test_nan_reports_in_invalid_slots_do_not_leak() -> None:
    b = make_batch(9, 3, 25)
    z = b.z.copy()
    z[~b.valid] = np.nan
    res = kalman_filter(b.t, z, b.r, b.valid, b.x0, b.P0, b.q)
    assert np.all(np.isfinite(res.x)) and np.all(np.isfinite(res.P))
    assert np.all(np.isfinite(res.loglik))
    clean = kalman_filter(b.t, np.nan_to_num(z), b.r, b.valid, b.x0, b.P0, b.q)
    np.testing.assert_array_equal(res.x, clean.x)


def test_empty_inputs() -> None:
    res = kalman_filter(
        np.zeros((0, 5)), np.zeros((0, 5)), 1.0, True, np.zeros((0, 2)), np.zeros((0, 2, 2)), 1.0
    )
    assert res.x.shape == (0, 5, 2) and res.loglik.shape == (0,)
    res = kalman_filter(
        np.zeros((2, 0)), np.zeros((2, 0)), 1.0, True, np.zeros((2, 2)), np.eye(2), 1.0
    )
    assert res.P.shape == (2, 0, 2, 2)
    np.testing.assert_array_equal(res.loglik, [0.0, 0.0])
    xs, Ps = rts_smoother(res, np.zeros((2, 0)), 1.0)
    assert xs.shape == (2, 0, 2) and Ps.shape == (2, 0, 2, 2)
