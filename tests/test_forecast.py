"""The forecast: determinism, order independence, halt lines, obstacles, what-if, berlin1945."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from warroom import scenario as scenario_mod
from warroom.domain import Report, Scenario
from warroom.estimate.track import WARROOM_IMM, estimate
from warroom.forecast.engine import simulate, simulate_full
from warroom.forecast.params import ForecastParams, OverrideError, parse_overrides
from warroom.forecast.plan import HALT as HALT_LINE
from warroom.forecast.plan import OBJECTIVE, OBSTACLE, ForcePlan, plan
from warroom.forecast.run import forecast
from warroom.ingest.pipeline import ingest_stream
from warroom.ingest.validate import Validator
from warroom.store import Store
from warroom.timeutil import SECONDS_PER_DAY, parse_time

from .conftest import POLE
from .test_estimate import T0, report

DAY = SECONDS_PER_DAY


def run(sc: Scenario, reps: list[Report], at: int, **kw) -> dict:
    by = {}
    for r in reps:
        by.setdefault(r.force, []).append(r)
    est = estimate(sc, by, at)
    return forecast(sc, est, by, at, ForecastParams(**kw))


def race_reports(sc: Scenario) -> list[Report]:
    am = [report(sc, f"a{k}", k, 100 + 30 * k) for k in range(8)]
    sc_ = [report(sc, f"s{k}", k, 50 + 25 * k, force="scott") for k in range(8)]
    return am + sc_


def test_same_seed_same_output_and_seed_matters(pole: Scenario) -> None:
    reps, at = race_reports(pole), T0 + 7 * DAY
    a = run(pole, reps, at, samples=500, seed=3, horizon_days=120.0)
    b = run(pole, reps, at, samples=500, seed=3, horizon_days=120.0)
    c = run(pole, reps, at, samples=500, seed=4, horizon_days=120.0)
    assert a["races"]["pole"]["nobody"] < 0.9  # so that the seed has something to change
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a["races"] != c["races"] or a["forces"] != c["forces"]
    # the contract's shape
    o = a["forces"]["amundsen"]["objectives"]["pole"]
    assert set(o) >= {"km_to_go", "eta", "p_within_horizon", "p_before_timetable", "reached_at"}
    assert set(a["races"]["pole"]) >= {"amundsen", "scott", "nobody"}
    assert sum(v for k, v in a["races"]["pole"].items() if k != "decided") == pytest.approx(1.0)


def copy_with(tmp_path: Path, edit) -> Scenario:
    d = tmp_path / "pole"
    shutil.copytree(POLE, d)
    toml = (d / "scenario.toml").read_text()
    (d / "scenario.toml").write_text(edit(toml))
    return scenario_mod.load(d)


def test_independent_of_the_order_forces_are_listed(pole: Scenario, tmp_path: Path) -> None:
    def swap(toml: str) -> str:
        head, rest = toml.split("[[forces]]", 1)
        first, second_and_more = rest.split("[[forces]]", 1)
        second, tail = second_and_more.split("[[objectives]]", 1)
        return head + "[[forces]]" + second + "[[forces]]" + first + "[[objectives]]" + tail

    swapped = copy_with(tmp_path, swap)
    assert list(swapped.forces) == ["scott", "amundsen"]
    reps, at = race_reports(pole), T0 + 7 * DAY
    a = run(pole, reps, at, samples=400, seed=1)
    b = run(swapped, reps, at, samples=400, seed=1)
    assert a["forces"] == b["forces"]
    assert a["races"]["pole"] == b["races"]["pole"]


HALT = 'supply_base = "framheim"\n'


def with_halt(p: float) -> callable:
    return lambda toml: toml.replace(
        HALT, HALT + f'halt_lines = [{{ line = "plateau-edge", p_obey = {p} }}]\n', 1)


def test_halt_line_obeyed_always_or_never(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    obey = copy_with(tmp_path / "a", with_halt(1.0))
    ignore = copy_with(tmp_path / "b", with_halt(0.0))
    reps = [report(obey, f"a{k}", k, 100 + 80 * k) for k in range(6)]
    at = T0 + 5 * DAY
    kw = {"samples": 800, "seed": 2, "horizon_days": 60.0}
    fa = run(obey, reps, at, **kw)["forces"]["amundsen"]["objectives"]["pole"]
    fb = run(ignore, reps, at, **kw)["forces"]["amundsen"]["objectives"]["pole"]
    assert fa["p_within_horizon"] == 0.0  # the pole lies beyond the plateau-edge line
    assert fb["p_within_horizon"] > 0.25
    # the what-if override turns the obeying force into one that ignores the line
    fc = run(obey, reps, at, **kw, overrides={"amundsen.p_obey": 0.0})
    assert fc["forces"]["amundsen"]["objectives"]["pole"] == fb


def test_a_crossed_obstacle_costs_no_delay(pole: Scenario) -> None:
    """With regime switching off (all rates 0) motion is deterministic, so the arrival times
    differ by exactly the mountains' delay: log-normal with median 24 h, p90 72 h."""
    reps = [report(pole, f"a{k}", k, 300 + 80 * k) for k in range(4)]  # before the mountains
    at = T0 + 3 * DAY
    crossed = Report(source="test", report_id="x", force="amundsen", observed_at=at,
                     received_at=at, event="crossed", target="mountains", grade="A1",
                     lat=reps[-1].lat, lon=reps[-1].lon)
    params = ForecastParams(samples=4000, seed=5, horizon_days=90.0)
    est = estimate(pole, {"amundsen": reps}, at)
    still = np.zeros((3, 3))
    slow = simulate(plan(pole, est, {"amundsen": reps}, at, params), params, still)[0]
    fast = simulate(plan(pole, est, {"amundsen": reps + [crossed]}, at, params), params,
                    still)[0]
    both = np.isfinite(slow[:, 0]) & np.isfinite(fast[:, 0])  # the slowest paces: beyond 90 d
    assert both.mean() > 0.9
    delay_h = (slow[both, 0] - fast[both, 0]) * 24
    assert np.all(delay_h > 0)
    assert np.median(delay_h) == pytest.approx(24.0, rel=0.1)
    assert np.quantile(delay_h, 0.9) == pytest.approx(72.0, rel=0.15)


def test_overrides_are_checked() -> None:
    ok = parse_overrides(["us3.p_obey=0.1", "us3.p_obey.elbe-mulde=0.2", "elbe.delay_p50=6"],
                         {"us3"}, {"elbe"}, {"elbe-mulde"})
    assert ok == {"us3.p_obey": 0.1, "us3.p_obey.elbe-mulde": 0.2, "elbe.delay_p50": 6.0}
    for bad, msg in [("us3.p_obey=2", "probability"), ("us7.p_obey=0.1", "not a force"),
                     ("us3.speed=3", "unknown parameter"), ("us3.p_obey", "KEY=VALUE")]:
        with pytest.raises(OverrideError, match=msg):
            parse_overrides([bad], {"us3"}, {"elbe"}, {"elbe-mulde"})


@pytest.fixture(scope="module")
def berlin() -> tuple[Scenario, dict[str, list[Report]]]:
    sc = scenario_mod.load("berlin1945")
    store = Store(":memory:")
    with open(sc.reports_path, "rb") as fh:
        ingest_stream(store, Validator(sc), fh, origin="reports.csv")
    at = parse_time("1945-04-12T12:00:00Z")
    return sc, {f: store.reports(f, at) for f in sc.forces}


def test_berlin1945_ninth_army_on_12_april(berlin) -> None:
    sc, reps = berlin
    at = parse_time("1945-04-12T12:00:00Z")
    est = estimate(sc, reps, at)

    def fc(p: float) -> dict:
        params = ForecastParams(samples=2000, seed=0, overrides={"us9.p_obey": p})
        return forecast(sc, est, reps, at, params)

    free, obeying = fc(0.0), fc(1.0)
    o = free["forces"]["us9"]["objectives"]["berlin"]
    eta = parse_time(o["eta"]["p50"])
    assert 0 < (eta - at) / DAY < 7  # days away, not weeks
    assert o["p_before_timetable"] is not None and o["timetable_of"] == "ours"
    assert obeying["races"]["berlin"]["us9"] < free["races"]["berlin"]["us9"]
    assert free["races"]["elbe"]["decided"]["winner"] == "us9"


def test_cli_forecast_json_and_table(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "warroom", "forecast", "--scenario", "berlin1945", "--at",
           "1945-04-12T12:00Z", "--samples", "300", "--seed", "7"]
    a = subprocess.run(cmd + ["--json"], capture_output=True, text=True, check=True)
    b = subprocess.run(cmd + ["--json"], capture_output=True, text=True, check=True)
    assert a.stdout == b.stdout
    fc = json.loads(a.stdout)
    assert fc["samples"] == 300 and fc["seed"] == 7 and fc["horizon_days"] == 30
    t = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "leads the race for Berlin: P = " in t and "won the race for Elbe" in t
    bad = subprocess.run(cmd + ["--set", "us9.p_obey=3"], capture_output=True, text=True)
    assert bad.returncode == 2 and "p_obey is a probability" in bad.stderr


def test_samples_beyond_horizon_are_null(pole: Scenario) -> None:
    reps = [report(pole, f"a{k}", k, 100 + 5 * k) for k in range(6)]  # 5 km/day, far to go
    f = run(pole, reps, T0 + 5 * DAY, samples=300, horizon_days=2.0)
    o = f["forces"]["amundsen"]["objectives"]["pole"]
    assert o["eta"]["p50"] is None and o["p_within_horizon"] < 0.5
    assert np.isfinite(f["races"]["pole"]["nobody"])


def _plan(force: str, bars: list[tuple[float, int, float, float, float]], *, v: float = 30.0,
          cov: float = 0.0, regime: tuple[float, float, float] = (0.0, 1.0, 0.0),
          base_km: float = math.nan, supply_free_km: float = math.inf) -> ForcePlan:
    """A hand-made plan: start at km 0 at as_of with speed v (km/day)."""
    bars = sorted(bars)
    objectives = [f"o{int(b[2])}" for b in bars if b[1] == OBJECTIVE]
    return ForcePlan(
        force=force, t0=0.0, x=np.array([0.0, v]), cov=np.eye(2) * cov,
        regime=np.array(regime), objectives=objectives,
        objective_km=[b[0] for b in bars if b[1] == OBJECTIVE], reached={},
        bar_s=np.array([b[0] for b in bars]), bar_kind=np.array([b[1] for b in bars]),
        bar_a=np.array([b[2] for b in bars]), bar_b=np.array([b[3] for b in bars]),
        bar_c=np.array([b[4] for b in bars]), advancing_kmpd=25.0, pursuit_kmpd=60.0,
        base_km=base_km, supply_free_km=supply_free_km, pace_sd=0.5)


def test_motion_matches_the_closed_forms() -> None:
    """No regime switches (rates 0) and an exact start: every sample moves the same way, so
    the arrivals are the model's formulas: constant speed up to the supply range, then
    ``(s - b)^2 = (s1 - b)^2 + 2 v D t``; a halt line obeyed until its order ends."""
    still = np.zeros((3, 3))
    params = ForecastParams(samples=50, horizon_days=60.0, seed=1)
    v, base, free = 30.0, -100.0, 400.0          # full speed up to km 300
    free_run = _plan("a", [(150.0, OBJECTIVE, 0.0, 0.0, 0.0), (500.0, OBJECTIVE, 1.0, 0.0, 0.0)],
                     v=v, base_km=base, supply_free_km=free)
    halted = _plan("b", [(150.0, OBJECTIVE, 0.0, 0.0, 0.0), (100.0, HALT_LINE, 1.0, 0.0, 7.5)], v=v)
    arr, pos = simulate_full([free_run, halted], params, still, (1.0, 12.0))
    t300 = 300.0 / v
    t500 = t300 + ((500.0 - base) ** 2 - (300.0 - base) ** 2) / (2 * v * free)
    assert arr[0][:, 0] == pytest.approx(np.full(50, 150.0 / v), rel=1e-5)
    assert arr[0][:, 1] == pytest.approx(np.full(50, t500), rel=1e-5)
    assert pos[0][:, 0] == pytest.approx(np.full(50, v * 1.0), rel=1e-5)
    s12 = base + math.sqrt((300.0 - base) ** 2 + 2 * v * free * (12.0 - t300))
    assert pos[0][:, 1] == pytest.approx(np.full(50, s12), rel=1e-5)
    # stopped at km 100 until day 7.5, then on at the same speed
    assert arr[1][:, 0] == pytest.approx(np.full(50, 7.5 + 50.0 / v), rel=1e-5)
    assert pos[1][:, 0] == pytest.approx(np.full(50, 30.0), rel=1e-5)


def _mixed_plans() -> list[ForcePlan]:
    bars = [(120.0, OBJECTIVE, 0.0, 0.0, 0.0), (60.0, OBSTACLE, math.log(0.5), 0.8, 0.0),
            (200.0, OBSTACLE, math.log(1.0), 0.5, 0.0), (150.0, HALT_LINE, 0.5, 1.0, 20.0),
            (400.0, OBJECTIVE, 1.0, 0.0, 0.0)]
    return [_plan(f"f{i}", bars, v=10.0 + 7 * i, cov=20.0, regime=(0.2, 0.6, 0.2),
                  base_km=0.0, supply_free_km=250.0) for i in range(4)]


def test_a_forces_samples_do_not_depend_on_company_chunks_workers_or_sample_count() -> None:
    """Counter-based randomness: sample i of a force draws from (seed, force, i, event,
    purpose) only. So its arrivals and positions are the same whether the force is simulated
    alone or with others, in any order, in pipelines of any width, split between threads or
    processes, and with more samples (an engine partitioned by force or by sample relies on
    this)."""
    rates = np.asarray(WARROOM_IMM.rates)
    ps = _mixed_plans()
    params = ForecastParams(samples=3000, horizon_days=40.0, seed=9)
    snaps = (1.0, 3.0)
    alone_arr, alone_pos = simulate_full([ps[2]], params, rates, snaps)
    assert 0.1 < np.isfinite(alone_arr[0]).mean() < 0.9   # events happen, and not all
    runs = [simulate_full(ps[::-1], params, rates, snaps, width=257, workers=3,
                          processes=True),
            simulate_full(ps[::-1], params, rates, snaps, width=1000, workers=2,
                          processes=False),
            simulate_full([ps[0], ps[2]], params, rates, snaps, width=4096, workers=1)]
    for arr, pos in runs:   # ps[2] is second in all
        assert np.array_equal(arr[1], alone_arr[0])
        assert np.array_equal(pos[1], alone_pos[0], equal_nan=True)
    more = simulate_full([ps[2]], dataclasses.replace(params, samples=5000), rates, snaps)
    assert np.array_equal(more[0][0][:3000], alone_arr[0])
    assert np.array_equal(more[1][0][:3000], alone_pos[0], equal_nan=True)
    other_seed = simulate([ps[2]], dataclasses.replace(params, seed=10), rates)
    assert not np.array_equal(other_seed[0], alone_arr[0])


def test_switches_and_obstacles_follow_their_distributions() -> None:
    """The engine's own draws against the model: holding times in a regime are exponential
    with the chain's exit rate; an obstacle's delay is log-normal with its median and p90."""
    rates = np.asarray(WARROOM_IMM.rates)
    # halted at km 0, an objective at km 0.001: reached at the first switch out of halted,
    # unless the first switch comes after the horizon
    p = _plan("h", [(0.001, OBJECTIVE, 0.0, 0.0, 0.0)], v=0.0, regime=(1.0, 0.0, 0.0))
    params = ForecastParams(samples=20000, horizon_days=1000.0, seed=3)
    hold = simulate([p], params, rates)[0][:, 0]
    exit_halted = -rates[0, 0]
    assert np.isfinite(hold).mean() > 0.99
    assert np.mean(hold) == pytest.approx(1 / exit_halted, rel=0.03)
    assert np.median(hold) == pytest.approx(math.log(2) / exit_halted, rel=0.03)
    # delay: median 12 h, p90 36 h, met at km 10 by a force at 100 km/day
    mu, sig = math.log(0.5), math.log(3.0) / 1.2815515655446004
    q = _plan("q", [(10.0, OBSTACLE, mu, sig, 0.0), (20.0, OBJECTIVE, 0.0, 0.0, 0.0)], v=100.0)
    delay = simulate([q], params, np.zeros((3, 3)))[0][:, 0] - 0.2
    assert np.median(delay) * 24 == pytest.approx(12.0, rel=0.03)
    assert np.quantile(delay, 0.9) * 24 == pytest.approx(36.0, rel=0.04)


def test_a_failing_worker_process_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker process that fails raises here, with its traceback, instead of returning
    results it never wrote."""
    import warroom.forecast.engine as engine

    run = engine._Pipeline.run

    def broken_first_part(self: engine._Pipeline) -> None:   # the part a child runs
        if self.next == 0:
            raise ValueError("broken pipeline")
        run(self)

    params = ForecastParams(samples=500, horizon_days=10.0)
    monkeypatch.setattr(engine._Pipeline, "run", broken_first_part)
    with pytest.raises(RuntimeError, match="(?s)worker process failed.*broken pipeline"):
        simulate_full(_mixed_plans(), params, np.asarray(WARROOM_IMM.rates), workers=2,
                      processes=True)
