"""From reports to the state of every force along its route: the estimate stage.

A pure function of the scenario and the reports known as of T (``received_at <= T``):
:func:`estimate` returns one :class:`ForceEstimate` per force.

Measurements
    Every report becomes a measurement ``z`` of ``s`` (km along the route). A position is
    projected onto the route near where the force is expected: a first pass projects every
    report to its nearest point; the second projects each near the furthest on-axis ``s`` seen
    in earlier reports (forces advance), which settles routes that pass close to themselves.
    A ``reached`` event measures ``s`` where the route reaches that objective; a ``crossed``
    event where it crosses that line. Noise is the report's ``uncertainty_km`` (1-sigma), else
    the grade's default (:func:`warroom.grades.sigma_km`: A1 2 km ... E5 50 km, F6 25 km),
    added in quadrature to ``track_sigma_km`` (5 km): a report places one unit, the track
    follows the force's lead, and the two are seldom the same point.

Disregarded reports (flags, never silently absorbed)
    ``off_axis``: cross-track distance above ``max(off_axis_km, 3 sigma)``;
    ``outlier``: a report the rest of the track contradicts. The Kalman filter and RTS smoother
    run over the kept reports; each report's residual ``e = z - s_smooth`` has variance
    ``r - Ps_00`` (the smoothed estimate includes the report), so ``e^2 / (r - Ps_00)`` is its
    leave-one-out chi-square (1 degree of freedom). The worst report of each force above the
    gate (15.13 = p 0.0001) is dropped and the track refitted, until none is above it. Testing
    against the whole track, not the running prediction, keeps one early contradiction from
    locking the filter out of every later report;
    ``not_on_route``: an event about an objective or line the route never reaches;
    ``no_position``: a ``halted`` report with neither position nor place.

Filters
    The IMM (:mod:`warroom.estimate.imm`: halted / advancing / pursuit) gives the current state
    and the regime probabilities; the nearly-constant-velocity Kalman filter
    (:mod:`warroom.estimate.kalman`, ``q_kf`` km^2/day^3) with the Rauch-Tung-Striebel smoother
    gives the history drawn on maps and used by backtests. ``s``, ``v``, their covariance and
    the regime probabilities are the IMM's at the last report used (the last known state, with
    its age); ``s_now`` is that state predicted to T by the IMM (regime chain, each regime's
    own model), for a reader who wants "where is it likely now" and its widening spread.

Retreat
    ``v`` may come out negative (a retreat, or noise around a halt): the estimate reports it as
    it is; the forecast treats ``v < 0`` as halted (speed 0), so speeds never go negative in its
    eyes and a retreat shows as a halt plus the lost ground in ``s``.

Late and out-of-order reports
    The store is the truth: each estimate re-filters every force from its first report, in
    ``observed_at`` order, so a late report lands where it belongs and the result is the one
    of filtering the sorted reports from scratch (it is exactly that).

Acceleration
    On the smoothed track: speed over the last 48 h, ``(s(T) - s(T-48h)) / 2 d``, against the
    96 h before, ``(s(T-48h) - s(T-144h)) / 4 d``; ``z = (v_recent - v_before) / se`` with
    ``se`` from the smoothed variances of the three points taken as independent (which
    overstates ``se``: the test errs on the quiet side). ``p`` is the one-sided normal
    probability that the force is faster now. None when the history is shorter than 144 h.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from warroom.domain import Force, Report, Scenario
from warroom.estimate.imm import (
    REGIMES,
    IMMParams,
    imm_filter,
    regime_process_noise,
    regime_transition,
    transition_probabilities,
)
from warroom.estimate.kalman import kalman_filter, rts_smoother
from warroom.gazetteer import Gazetteer
from warroom.grades import sigma_km
from warroom.timeutil import SECONDS_PER_DAY, to_iso

# The IMM as tuned for forces racing to objectives (armies, columns, fleets): a halt lasts
# weeks (leaves at 0.04/day), an advance days (0.2/day), a pursuit a few days (0.25/day);
# an advance's speed drifts ~5 km/day per sqrt(day) (q 30), a pursuit's ~30 (q 1000).
WARROOM_IMM = IMMParams(
    q=(1.0, 30.0, 1000.0),
    rates=((-0.04, 0.03, 0.01), (0.10, -0.20, 0.10), (0.05, 0.20, -0.25)),
)


@dataclass(frozen=True)
class EstimateParams:
    """Tuning of the estimate stage (``[estimate]`` in scenario.toml overrides these)."""

    # km^2/day^3: NCV process noise of the Kalman filter / smoother. Large on purpose: armies
    # go from a halt to 80 km/day within a day (sqrt(1000) ~ 32 km/day per sqrt(day)).
    q_kf: float = 1000.0
    track_sigma_km: float = 5.0  # km, 1-sigma: unit reported vs the force's lead element
    off_axis_km: float = 30.0  # cross-track distance beyond which a report is off the axis
    gate: float = 15.13  # chi-square (1 dof) outlier gate; 15.13 = p 0.0001
    max_outliers: int = 20  # per force and estimate, at most this many dropped
    prior_s_sd_km: float = 100.0  # diffuse prior on s before the first report
    prior_v_sd_kmpd: float = 30.0  # prior on v: 0 +- this
    recent_h: float = 48.0  # acceleration test: recent window
    before_h: float = 96.0  # acceleration test: the window before it
    imm: IMMParams = field(default_factory=lambda: WARROOM_IMM)


@dataclass
class Flag:
    """A report left out of the estimate, and why."""

    report: str  # "source/report_id"
    reason: str  # off_axis | outlier | not_on_route | no_position
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"report": self.report, "reason": self.reason, "detail": self.detail}


@dataclass
class ForceEstimate:
    """The estimated state of one force as of a time (km, km/day, UTC epoch seconds)."""

    force: str
    as_of: int
    n_reports: int
    n_used: int
    s_km: float | None = None
    v_kmpd: float | None = None
    cov: list[list[float]] | None = None  # [[var s, cov], [cov, var v]] at the last report
    regime: dict[str, float] | None = None  # at the last report
    last_report_at: int | None = None
    s_now_km: float | None = None  # predicted to as_of
    s_now_sd_km: float | None = None
    v_now_kmpd: float | None = None
    regime_now: dict[str, float] | None = None
    lat: float | None = None
    lon: float | None = None
    place: str | None = None
    place_km: float | None = None
    accel_z: float | None = None
    accel_p: float | None = None
    v_recent_kmpd: float | None = None
    v_before_kmpd: float | None = None
    flags: list[Flag] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # smoothed, per report used
    measurements: list[dict[str, Any]] = field(default_factory=list)  # every report's z

    @property
    def s_sd_km(self) -> float | None:
        return None if self.cov is None else math.sqrt(max(self.cov[0][0], 0.0))

    @property
    def v_sd_kmpd(self) -> float | None:
        return None if self.cov is None else math.sqrt(max(self.cov[1][1], 0.0))

    @property
    def trend(self) -> str:
        """halted / accelerating / slowing / steady (or unknown)."""
        if self.regime is None or self.v_kmpd is None:
            return "unknown"
        if self.regime["halted"] >= 0.5 or abs(self.v_kmpd) < 2.0:
            return "halted"
        if (self.accel_z is not None and self.accel_z >= 2.0) or self.regime["pursuit"] >= 0.7:
            return "accelerating"
        if self.accel_z is not None and self.accel_z <= -2.0:
            return "slowing"
        return "steady"

    def as_dict(self) -> dict[str, Any]:
        r = lambda x, n=3: None if x is None else round(float(x), n)  # noqa: E731
        return {
            "force": self.force,
            "as_of": to_iso(self.as_of),
            "reports": self.n_reports,
            "used": self.n_used,
            "s_km": r(self.s_km, 2),
            "s_sd_km": r(self.s_sd_km, 2),
            "speed_kmpd": r(self.v_kmpd, 2),
            "speed_sd_kmpd": r(self.v_sd_kmpd, 2),
            "cov": None if self.cov is None else [[r(c, 4) for c in row] for row in self.cov],
            "regime": None if self.regime is None else {k: r(v) for k, v in self.regime.items()},
            "trend": self.trend,
            "last_report_at": to_iso(self.last_report_at),
            "now": {
                "s_km": r(self.s_now_km, 2),
                "s_sd_km": r(self.s_now_sd_km, 2),
                "speed_kmpd": r(self.v_now_kmpd, 2),
                "regime": None
                if self.regime_now is None
                else {k: r(v) for k, v in self.regime_now.items()},
            },
            "position": None
            if self.lat is None
            else {
                "lat": r(self.lat, 5),
                "lon": r(self.lon, 5),
                "place": self.place,
                "place_km": r(self.place_km, 1),
            },
            "acceleration": {
                "z": r(self.accel_z),
                "p_faster": r(self.accel_p),
                "v_recent_kmpd": r(self.v_recent_kmpd, 2),
                "v_before_kmpd": r(self.v_before_kmpd, 2),
            },
            "flags": [f.as_dict() for f in self.flags],
            "history": self.history,
            "measurements": self.measurements,
        }


@dataclass
class _Meas:
    """One force's measurements, in observed order."""

    t: np.ndarray
    z: np.ndarray
    r: np.ndarray
    valid: np.ndarray
    reports: list[Report]
    xt: np.ndarray


def _feature_km(scenario: Scenario, force: Force, target: str) -> float | None:
    if target in force.objective_km:
        return force.objective_km[target]
    feat = scenario.features.get(target)
    if feat is None:
        return None
    if target in scenario.objectives:
        from warroom.scenario import objective_km

        return objective_km(force.route, scenario.objectives[target], feat)
    if feat.geometry != "LineString":
        return None
    hits = force.route.crossings(feat.coords)
    return hits[0] if hits else None


def measurements(
    scenario: Scenario,
    force: Force,
    reports: Sequence[Report],
    params: EstimateParams,
    gaz: Gazetteer,
) -> tuple[_Meas, list[Flag]]:
    """Turn one force's reports (observed order) into measurements of ``s`` and flags."""
    n = len(reports)
    z = np.full(n, np.nan)
    xt = np.zeros(n)
    sig = np.array([r.uncertainty_km or sigma_km(r.grade) for r in reports], dtype=float)
    valid = np.ones(n, dtype=bool)
    flags: list[Flag] = []
    pos = np.array([r.lat is not None and r.lon is not None for r in reports], dtype=bool)
    event_km: dict[int, float] = {}
    for i, r in enumerate(reports):
        if r.event in ("reached", "crossed") and r.target:
            km = _feature_km(scenario, force, r.target)
            if km is None:
                valid[i] = False
                flags.append(
                    Flag(
                        f"{r.source}/{r.report_id}",
                        "not_on_route",
                        f"{force.name}'s route never reaches {r.target}",
                    )
                )
            else:
                event_km[i] = km
        elif not pos[i]:
            valid[i] = False
            flags.append(
                Flag(
                    f"{r.source}/{r.report_id}",
                    "no_position",
                    f"{r.event} report without a position",
                )
            )
    if pos.any():
        idx = np.flatnonzero(pos)
        lat = np.array([reports[i].lat for i in idx], dtype=float)
        lon = np.array([reports[i].lon for i in idx], dtype=float)
        s1, x1 = force.route.project_many(lat, lon)
        on = x1 <= np.maximum(params.off_axis_km, 3 * sig[idx])
        ahead = np.where(on, s1, -np.inf)
        near = np.maximum.accumulate(np.concatenate([[-np.inf], ahead[:-1]]))
        near = np.where(np.isfinite(near), near, s1)
        s2, x2 = force.route.project_many(lat, lon, near)
        z[idx], xt[idx] = s2, x2
    for i, km in event_km.items():
        z[i] = km
        xt[i] = 0.0
    for i in np.flatnonzero(pos & valid):
        if i in event_km:
            continue
        limit = max(params.off_axis_km, 3 * sig[i])
        if xt[i] > limit:
            valid[i] = False
            r = reports[i]
            where = r.place or _place_name(gaz, r.lat, r.lon)
            flags.append(
                Flag(
                    f"{r.source}/{r.report_id}",
                    "off_axis",
                    f"{where} is {xt[i]:.0f} km off {force.name}'s axis (limit {limit:.0f} km)",
                )
            )
    t = np.array([r.observed_at for r in reports], dtype=float) / SECONDS_PER_DAY
    return _Meas(t, z, sig**2 + params.track_sigma_km**2, valid, list(reports), xt), flags


def _place_name(gaz: Gazetteer, lat: float, lon: float) -> str:
    near = gaz.nearest(lat, lon)
    if near is None:
        return f"({lat:.3f}, {lon:.3f})"
    f, d = near
    return f.label if d < 10 else f"{d:.0f} km from {f.label}"


def _pad(ms: list[_Meas]) -> tuple[np.ndarray, ...]:
    n = max(1, max((len(m.t) for m in ms), default=1))
    f = len(ms)
    t = np.zeros((f, n))
    z = np.zeros((f, n))
    r = np.ones((f, n))
    v = np.zeros((f, n), dtype=bool)
    for i, m in enumerate(ms):
        k = len(m.t)
        if k:
            t[i, :k], t[i, k:] = m.t, m.t[-1]
            z[i, :k] = np.nan_to_num(m.z)
            r[i, :k] = m.r
            v[i, :k] = m.valid & np.isfinite(m.z)
    return t, z, r, v


def estimate(
    scenario: Scenario,
    reports: Mapping[str, Sequence[Report]],
    as_of: int,
    params: EstimateParams | None = None,
) -> dict[str, ForceEstimate]:
    """Estimate every force of the scenario from its reports known as of ``as_of``."""
    params = params or EstimateParams()
    gaz = Gazetteer(scenario.places)
    forces = list(scenario.forces.values())
    ms: list[_Meas] = []
    flags: list[list[Flag]] = []
    for force in forces:
        known = sorted(
            (r for r in reports.get(force.id, ()) if r.received_at <= as_of),
            key=lambda r: (r.observed_at, r.received_at, r.source, r.report_id),
        )
        m, fl = measurements(scenario, force, known, params, gaz)
        ms.append(m)
        flags.append(fl)
    t, z, r, valid = _pad(ms)
    # The first valid measurement anchors a diffuse prior (s sd prior_s_sd_km, v 0 +- sd).
    first = np.argmax(valid, axis=1)
    s0 = np.where(valid.any(axis=1), z[np.arange(len(forces)), first], 0.0)
    x0 = np.stack([s0, np.zeros(len(forces))], axis=1)
    p0 = np.zeros((len(forces), 2, 2))
    p0[:, 0, 0] = params.prior_s_sd_km**2
    p0[:, 1, 1] = params.prior_v_sd_kmpd**2
    used_mask, outliers, kf, xs, ps = _reject_outliers(t, z, r, valid, x0, p0, params)
    # The IMM sees only the reports kept: a left-out report must not even split a time step
    # (regime mixing at an extra step would change the result).
    order = np.argsort(~used_mask, axis=1, kind="stable")
    rows = np.arange(len(forces))[:, None]
    n_kept = used_mask.sum(axis=1)
    ct, cz, cr = t[rows, order], z[rows, order], r[rows, order]
    cvalid = np.arange(t.shape[1])[None, :] < n_kept[:, None]
    last_t = ct[np.arange(len(forces)), np.maximum(n_kept - 1, 0)]
    ct = np.where(cvalid, ct, last_t[:, None])
    imm_c = imm_filter(ct, cz, cr, cvalid, x0, p0, params=params.imm)
    inverse = np.argsort(order, axis=1)
    imm = type(imm_c)(**{
        k: (getattr(imm_c, k)[rows, inverse] if getattr(imm_c, k).ndim >= 2 else
            getattr(imm_c, k)) for k in vars(imm_c)})
    now = as_of / SECONDS_PER_DAY
    out: dict[str, ForceEstimate] = {}
    iso: dict[int, str] = {}  # reports share times: each is written out once

    def iso_of(t: int) -> str:
        text = iso.get(t)
        if text is None:
            text = iso[t] = to_iso(t)
        return text

    for i, force in enumerate(forces):
        m = ms[i]
        est = ForceEstimate(
            force=force.id, as_of=as_of, n_reports=len(m.t), n_used=0, flags=flags[i]
        )
        out[force.id] = est
        k = len(m.t)
        for j in range(k):
            rep = m.reports[j]
            est.measurements.append(
                {
                    "report": f"{rep.source}/{rep.report_id}",
                    "observed_at": iso_of(rep.observed_at),
                    "z_km": None if not np.isfinite(m.z[j]) else round(float(m.z[j]), 2),
                    "sigma_km": round(math.sqrt(m.r[j]), 2),
                    "cross_track_km": round(float(m.xt[j]), 1),
                    "used": bool(used_mask[i, j]),
                }
            )
        for j, e, chi2 in outliers.get(i, []):
            rep = m.reports[j]
            what = rep.place or (
                _place_name(gaz, rep.lat, rep.lon)
                if rep.lat is not None
                else f"{rep.event} {rep.target}"
            )
            est.flags.append(
                Flag(
                    f"{rep.source}/{rep.report_id}",
                    "outlier",
                    f"{what} is {e:+.0f} km from {force.name}'s track "
                    f"(chi-square {chi2:.0f} > {params.gate:g})",
                )
            )
        used = np.flatnonzero(used_mask[i, :k])
        est.n_used = int(used.size)
        if used.size == 0:
            continue
        last = int(used[-1])
        est.last_report_at = m.reports[last].observed_at
        dt = max(0.0, now - t[i, last])
        x_now, p_now, mu = imm_predict(
            imm.x_regime[i, last], imm.P_regime[i, last], imm.mu[i, last], dt, params.imm
        )
        est.s_km = float(np.clip(imm.x[i, last, 0], 0.0, force.route.length_km))
        est.v_kmpd = float(imm.x[i, last, 1])
        est.cov = imm.P[i, last].tolist()
        est.regime = {n: float(p) for n, p in zip(REGIMES, imm.mu[i, last], strict=True)}
        est.s_now_km = float(np.clip(x_now[0], 0.0, force.route.length_km))
        est.s_now_sd_km = math.sqrt(max(p_now[0, 0], 0.0))
        est.v_now_kmpd = float(x_now[1])
        est.regime_now = {n: float(p) for n, p in zip(REGIMES, mu, strict=True)}
        lat, lon = force.route.point_at(est.s_km)
        est.lat, est.lon = lat, lon
        near = gaz.nearest(lat, lon)
        if near is not None:
            est.place, est.place_km = near[0].label, near[1]
        for j in used:
            h = {"t": iso_of(m.reports[j].observed_at), "s_km": round(float(xs[i, j, 0]), 2),
                 "s_sd_km": round(math.sqrt(max(ps[i, j, 0, 0], 0.0)), 2),
                 "v_kmpd": round(float(xs[i, j, 1]), 2),
                 "v_sd_kmpd": round(math.sqrt(max(ps[i, j, 1, 1], 0.0)), 2)}
            est.history.append(h)
            est.measurements[j]["smoothed"] = h
        _acceleration(est, t[i, used], xs[i, used], ps[i, used], now, x_now, p_now, params)
    return out


def _reject_outliers(
    t: np.ndarray,
    z: np.ndarray,
    r: np.ndarray,
    valid: np.ndarray,
    x0: np.ndarray,
    p0: np.ndarray,
    params: EstimateParams,
) -> tuple[np.ndarray, dict[int, list[tuple[int, float, float]]], Any, np.ndarray, np.ndarray]:
    """Drop, force by force and one at a time, the report the smoothed track contradicts most
    (leave-one-out chi-square above the gate); refit all forces together each round."""
    used = valid.copy()
    outliers: dict[int, list[tuple[int, float, float]]] = {}
    rows = np.arange(len(t))
    for _ in range(params.max_outliers + 1):
        kf = kalman_filter(t, z, r, used, x0, p0, params.q_kf)
        xs, ps = rts_smoother(kf, t, params.q_kf)
        e = z - xs[..., 0]
        var = np.maximum(r - ps[..., 0, 0], 1e-6 * r)
        chi2 = np.where(used, e * e / var, -np.inf)
        # one report is always kept: a lone report cannot be contradicted
        chi2 = np.where(used.sum(axis=1, keepdims=True) > 2, chi2, -np.inf)
        worst = np.argmax(chi2, axis=1)
        hit = chi2[rows, worst] > params.gate
        if not hit.any():
            break
        for i in np.flatnonzero(hit):
            j = int(worst[i])
            outliers.setdefault(int(i), []).append((j, float(e[i, j]), float(chi2[i, j])))
            used[i, j] = False
    return used, outliers, kf, xs, ps


def imm_predict(
    x: np.ndarray, p: np.ndarray, mu: np.ndarray, dt: float, params: IMMParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IMM prediction of one force ``dt`` days ahead without a report: regime probabilities
    through the switching chain, mixing, each regime's own model, then combination.
    ``x`` (3, 2), ``p`` (3, 2, 2), ``mu`` (3,). Returns combined x (2,), P (2, 2), mu (3,)."""
    pi = transition_probabilities(dt, np.asarray(params.rates))
    c = mu @ pi
    w = (pi * mu[:, None]) / np.where(c > 0, c, 1.0)[None, :]
    xs = np.empty((3, 2))
    ps = np.empty((3, 2, 2))
    for j in range(3):
        x0 = w[:, j] @ x
        d = x - x0
        p0 = np.einsum("i,ijk->jk", w[:, j], p + d[:, :, None] * d[:, None, :])
        step = np.array([dt])
        fm = regime_transition(step, params.tau[j])[0]
        xs[j] = fm @ x0
        ps[j] = fm @ p0 @ fm.T + regime_process_noise(step, params.q[j], params.tau[j])[0]
    xc = c @ xs
    d = xs - xc
    pc = np.einsum("i,ijk->jk", c, ps + d[:, :, None] * d[:, None, :])
    return xc, pc, c / c.sum()


def _acceleration(
    est: ForceEstimate,
    t: np.ndarray,
    xs: np.ndarray,
    ps: np.ndarray,
    now: float,
    x_now: np.ndarray,
    p_now: np.ndarray,
    params: EstimateParams,
) -> None:
    """Fill the acceleration test (see the module docstring) on the smoothed track."""
    recent, before = params.recent_h / 24.0, params.before_h / 24.0
    ts = np.append(t, now)
    s = np.append(xs[:, 0], x_now[0])
    var = np.maximum(np.append(ps[:, 0, 0], p_now[0, 0]), 0.0)
    t1, t0 = now - recent, now - recent - before
    if ts[0] > t0:
        return
    s_now, s1, s0 = s[-1], np.interp(t1, ts, s), np.interp(t0, ts, s)
    v_now, v1, v0 = var[-1], np.interp(t1, ts, var), np.interp(t0, ts, var)
    v_recent = (s_now - s1) / recent
    v_before = (s1 - s0) / before
    se = math.sqrt((v_now + v1) / recent**2 + (v1 + v0) / before**2)
    est.v_recent_kmpd, est.v_before_kmpd = float(v_recent), float(v_before)
    if se > 0:
        est.accel_z = float((v_recent - v_before) / se)
        est.accel_p = float(0.5 * (1 + math.erf(est.accel_z / math.sqrt(2))))
