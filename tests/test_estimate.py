"""The estimate stage end to end: measurements, flags, permutation, bitemporal, berlin1945."""

from __future__ import annotations

import io
import math
import random

import numpy as np
import pytest

from warroom import scenario as scenario_mod
from warroom.domain import Report, Scenario
from warroom.estimate.track import EstimateParams, estimate
from warroom.ingest.pipeline import ingest_stream
from warroom.ingest.validate import Validator
from warroom.store import Store
from warroom.timeutil import SECONDS_PER_DAY, parse_time

T0 = parse_time("1911-11-01T00:00:00Z")
DAY = SECONDS_PER_DAY


def along(sc: Scenario, force: str, s: float, off_km: float = 0.0) -> tuple[float, float]:
    """A point ``off_km`` to the side of the route at ``s`` (by stepping across a short chord)."""
    route = sc.forces[force].route
    lat, lon = route.point_at(s)
    if off_km == 0.0:
        return lat, lon
    from warroom.geo import GEOD

    lat2, lon2 = route.point_at(min(s + 1.0, route.length_km))
    az, _, _ = GEOD.inv(lon, lat, lon2, lat2)
    lo, la, _ = GEOD.fwd(lon, lat, az + 90.0, off_km * 1000.0)
    return la, lo


def report(sc: Scenario, rid: str, day: float, s: float, sigma: float = 2.0,
           off_km: float = 0.0, received_day: float | None = None, force: str = "amundsen",
           grade: str = "A1") -> Report:
    lat, lon = along(sc, force, s, off_km)
    obs = T0 + round(day * DAY)
    rec = obs if received_day is None else T0 + round(received_day * DAY)
    return Report(source="test", report_id=rid, force=force, observed_at=obs, received_at=rec,
                  lat=lat, lon=lon, uncertainty_km=sigma, grade=grade)


def steady(sc: Scenario, n: int = 10, speed: float = 20.0, start: float = 50.0) -> list[Report]:
    return [report(sc, f"r{k}", k, start + speed * k) for k in range(n)]


def test_steady_advance_is_estimated_with_honest_spread(pole: Scenario) -> None:
    reps = steady(pole)
    est = estimate(pole, {"amundsen": reps}, T0 + 9 * DAY)["amundsen"]
    assert est.n_used == 10 and est.flags == []
    assert est.s_km == pytest.approx(50 + 9 * 20, abs=3 * est.s_sd_km)
    assert est.v_kmpd == pytest.approx(20.0, abs=3 * est.v_sd_kmpd)
    assert est.v_sd_kmpd < 10
    assert est.trend in ("steady", "accelerating")
    # the position is the route's point at the estimated s
    lat, lon = pole.forces["amundsen"].route.point_at(est.s_km)
    assert (est.lat, est.lon) == pytest.approx((lat, lon))


def test_report_100_km_off_the_route_is_flagged_not_used(pole: Scenario) -> None:
    reps = steady(pole)
    off = report(pole, "off", 4.5, 50 + 90.0, off_km=100.0)
    with_off = estimate(pole, {"amundsen": reps + [off]}, T0 + 9 * DAY)["amundsen"]
    without = estimate(pole, {"amundsen": reps}, T0 + 9 * DAY)["amundsen"]
    (flag,) = with_off.flags
    assert flag.reason == "off_axis" and flag.report == "test/off"
    assert "100 km off Amundsen's pole party's axis" in flag.detail
    assert with_off.s_km == pytest.approx(without.s_km, abs=1e-9)
    assert with_off.v_kmpd == pytest.approx(without.v_kmpd, abs=1e-9)


def test_false_report_far_ahead_is_an_outlier(pole: Scenario) -> None:
    reps = steady(pole)
    false = report(pole, "false", 5.0, 50 + 20 * 5 + 400.0)  # on the route, 400 km ahead
    est = estimate(pole, {"amundsen": reps + [false]}, T0 + 9 * DAY)["amundsen"]
    (flag,) = est.flags
    assert flag.reason == "outlier" and flag.report == "test/false"
    assert "chi-square" in flag.detail
    assert est.v_kmpd == pytest.approx(20.0, abs=3)


def test_arrival_order_does_not_change_the_estimate(pole: Scenario, tmp_path) -> None:
    reps = steady(pole, 12) + [report(pole, "late", 3.5, 120.0, received_day=11.5)]
    header = "report_id,source,force,observed_at,received_at,lat,lon,uncertainty_km,grade\n"

    def line(r: Report) -> str:
        from warroom.timeutil import to_iso

        return (f"{r.report_id},{r.source},{r.force},{to_iso(r.observed_at)},"
                f"{to_iso(r.received_at)},{r.lat!r},{r.lon!r},{r.uncertainty_km},{r.grade}\n")

    results = []
    for seed in (1, 2, 3):
        rows = reps[:]
        random.Random(seed).shuffle(rows)
        store = Store(tmp_path / f"{seed}.db")
        ingest_stream(store, Validator(pole), io.BytesIO((header + "".join(map(line, rows)))
                                                         .encode()), origin="x.csv")
        at = T0 + 12 * DAY
        est = estimate(pole, {"amundsen": store.reports("amundsen", at)}, at)["amundsen"]
        results.append(est.as_dict())
    assert results[0] == results[1] == results[2]


def test_bitemporal_a_late_report_counts_only_once_received(pole: Scenario) -> None:
    reps = steady(pole, 6) + [report(pole, "late", 6.5, 50 + 20 * 6.5, received_day=8.0)]
    before = estimate(pole, {"amundsen": reps}, T0 + 7 * DAY)["amundsen"]
    after = estimate(pole, {"amundsen": reps}, T0 + 8 * DAY)["amundsen"]
    scratch = estimate(pole, {"amundsen": sorted(reps, key=lambda r: r.observed_at)},
                       T0 + 8 * DAY)["amundsen"]
    assert before.n_reports == 6 and after.n_reports == 7
    assert after.as_dict() == scratch.as_dict()
    assert after.s_km > before.s_km + 20  # the late report was further along
    assert after.last_report_at == T0 + 6.5 * DAY


def test_speed_up_from_10_to_40_is_detected_within_two_reports(pole: Scenario) -> None:
    reps = [report(pole, f"a{k}", k, 50 + 10 * k) for k in range(10)]
    s = 50 + 10 * 9
    first_alarm = None
    for k in range(1, 6):
        reps.append(report(pole, f"b{k}", 9 + k, s + 40 * k))
        est = estimate(pole, {"amundsen": reps}, T0 + (9 + k) * DAY)["amundsen"]
        if est.trend == "accelerating":
            first_alarm = k
            break
    assert first_alarm is not None and first_alarm <= 2
    steady_est = estimate(pole, {"amundsen": reps[:10]}, T0 + 9 * DAY)["amundsen"]
    assert steady_est.trend != "accelerating"


def test_long_halt_reads_halted(pole: Scenario) -> None:
    reps = [report(pole, f"h{k}", k, 200.0) for k in range(8)]
    est = estimate(pole, {"amundsen": reps}, T0 + 8 * DAY)["amundsen"]
    assert est.trend == "halted" and est.regime["halted"] > 0.5


def test_reached_event_measures_the_objective(pole: Scenario) -> None:
    reps = steady(pole, 5, speed=30.0, start=900.0)
    at_pole = pole.forces["amundsen"].objective_km["pole"]
    ev = Report(source="test", report_id="pole", force="amundsen",
                observed_at=T0 + 6 * DAY, received_at=T0 + 6 * DAY, event="reached",
                target="pole", grade="A1", uncertainty_km=1.0)
    est = estimate(pole, {"amundsen": reps + [ev]}, T0 + 6 * DAY)["amundsen"]
    m = est.measurements[-1]
    assert m["report"] == "test/pole" and m["z_km"] == pytest.approx(at_pole, abs=0.01)


def test_one_sigma_intervals_cover_the_truth(pole: Scenario) -> None:
    """Truth from a nearly-constant-velocity process with the Kalman filter's own q: the
    smoothed 1-sigma intervals of s and v cover it about 68% of the time. 400 tracks x 2
    quantities; the binomial standard error of a 68% rate over 400 is 2.3%, so +-7% is 3 se."""
    rng = np.random.default_rng(7)
    params = EstimateParams(q_kf=100.0, track_sigma_km=0.0, gate=1e9)
    q, sigma, n_tracks = params.q_kf, 5.0, 400
    hit_s = hit_v = 0
    for k in range(n_tracks):
        t = np.cumsum(rng.uniform(0.3, 1.5, 12))
        s, v = 100.0, rng.uniform(10, 40)
        truth = []
        prev = t[0]
        for tk in t:
            dt = tk - prev
            prev = tk
            cov = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
            w = rng.multivariate_normal([0, 0], cov) if dt > 0 else np.zeros(2)
            s, v = s + v * dt + w[0], v + w[1]
            truth.append((s, v))
        reps = [report(pole, f"c{k}-{j}", tk, truth[j][0] + rng.normal(0, sigma), sigma=sigma)
                for j, tk in enumerate(t)]
        est = estimate(pole, {"amundsen": reps}, T0 + round(t[-1] * DAY), params)["amundsen"]
        h = est.history[len(t) // 2]  # a smoothed point mid-track
        ts, tv = truth[len(t) // 2]
        hit_s += abs(h["s_km"] - ts) <= h["s_sd_km"]
        hit_v += abs(h["v_kmpd"] - tv) <= h["v_sd_kmpd"]
    assert abs(hit_s / n_tracks - 0.683) < 0.07, hit_s / n_tracks
    assert abs(hit_v / n_tracks - 0.683) < 0.07, hit_v / n_tracks


@pytest.fixture(scope="module")
def berlin() -> Scenario:
    return scenario_mod.load("berlin1945")


def test_berlin1945_on_12_april(berlin: Scenario) -> None:
    store = Store(":memory:")
    with open(berlin.reports_path, "rb") as fh:
        ingest_stream(store, Validator(berlin), fh, origin="reports.csv")
    at = parse_time("1945-04-12T12:00:00Z")
    reports = {f: store.reports(f, at) for f in berlin.forces}
    est = estimate(berlin, reports, at)
    us9, bf = est["us9"], est["1bf"]
    assert us9.regime["advancing"] + us9.regime["pursuit"] > 0.5
    assert us9.v_kmpd > 20 and us9.trend in ("steady", "accelerating")
    assert bf.trend == "halted"
    kuestrin = berlin.features["kuestrin"].coords[0]
    from warroom.geo import distance_km

    assert float(distance_km(bf.lat, bf.lon, kuestrin[1], kuestrin[0])) < 20
    # the Third Army's reports far from its axis are flagged, not absorbed
    late = parse_time("1945-05-10T00:00:00Z")
    us3 = estimate(berlin, {f: store.reports(f, late) for f in berlin.forces}, late)["us3"]
    off = {f.detail.split(" is ")[0] for f in us3.flags if f.reason == "off_axis"}
    assert {"Bayreuth", "Linz"} <= off
    assert not math.isnan(us3.s_km)
