"""The forecast: determinism, order independence, halt lines, obstacles, what-if, berlin1945."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from warroom import scenario as scenario_mod
from warroom.domain import Report, Scenario
from warroom.estimate.track import estimate
from warroom.forecast.engine import simulate
from warroom.forecast.params import ForecastParams, OverrideError, parse_overrides
from warroom.forecast.plan import plan
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
