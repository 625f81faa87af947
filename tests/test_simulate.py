"""Synthetic races (`warroom simulate`): the folder loads as a scenario, the truth agrees with
the reports, halts behave as the forecast assumes (and the hidden ones as it does not), the
same seed gives the same files, and the Parquet archive reads back."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from warroom import scenario as scenario_mod
from warroom.cli import app
from warroom.geo import Route
from warroom.grades import sigma_km
from warroom.simulate import SimSpec, simulate, write_scenario
from warroom.simulate.generate import crossing_km
from warroom.simulate.world import build_world
from warroom.synthetic import TruthParams, simulate_truth
from warroom.timeutil import parse_time
from warroom.workspace import open_workspace

runner = CliRunner()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    r = runner.invoke(app, ["simulate", "--forces", "20", "--per-race", "4", "--seed", "7",
                            "--days", "40", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["forces"] == 20 and summary["races"] == 5
    return out


def test_the_folder_is_a_scenario_and_its_reports_all_land(folder: Path) -> None:
    sc = scenario_mod.load(folder)
    assert len(sc.forces) == 20 and len(sc.objectives) == 5
    assert {o.feature for o in sc.obstacles} == {"river-a", "river-b", "river-c"}
    assert all(len(f.objectives) == 1 for f in sc.forces.values())
    assert any(f.halt_lines for f in sc.forces.values())
    ws = open_workspace(None, str(folder))
    assert ws.seeded is not None and ws.seeded.clean
    assert ws.store.count_reports() == len(_rows(folder / "reports.csv"))
    assert "line-hidden" not in sc.features  # the hidden line is the truth's alone


def test_the_truth_agrees_with_the_record(folder: Path) -> None:
    sc = scenario_mod.load(folder)
    start = parse_time("2001-03-01T00:00:00Z")
    truth = {r["force"]: r for r in _rows(folder / "truth.csv")}
    reports = _rows(folder / "reports.csv")
    reached = {r["force"]: r for r in reports if r["event"] == "reached"}
    tracks: dict[str, list[tuple[float, float]]] = {}
    for p in _rows(folder / "truth_track.csv"):
        tracks.setdefault(p["force"], []).append(((parse_time(p["t"]) - start) / 86400,
                                                  float(p["s_km"])))
    for fid, t in truth.items():
        goal = float(t["objective_km"])
        assert goal == pytest.approx(sc.forces[fid].objective_km[t["objective"]], abs=0.01)
        tr = np.array(tracks[fid])
        assert np.all(np.diff(tr[:, 0]) >= 0) and np.all(np.diff(tr[:, 1]) >= -1e-9)
        if t["arrival"]:
            # every arrival within the record is reported, at the time the track gets there
            assert reached[fid]["observed_at"] == t["arrival"][:19] + "Z"
            at = np.interp(float(t["arrival_day"]), tr[:, 0], tr[:, 1])
            assert at == pytest.approx(goal, abs=0.01)  # km and days are rounded in the CSV
        else:
            assert fid not in reached and tr[:, 1][tr[:, 0] <= 40].max() < goal
    assert reached, "some force should arrive within 40 days"


def test_reports_carry_grade_dependent_noise_and_the_odd_bad_one(folder: Path) -> None:
    sc = scenario_mod.load(folder)
    grade = {(r["source"], r["report_id"]): r["grade"] for r in _rows(folder / "reports.csv")}
    errs: dict[str, list[float]] = {}
    kinds = set()
    for r in _rows(folder / "truth_reports.csv"):
        kinds.add(r["kind"])
        if r["kind"] == "position":
            g = grade[r["source"], r["report_id"]]
            route = sc.forces[r["force"]].route
            if 1.0 < float(r["true_s_km"]) < route.length_km - 60:  # not clipped at the ends
                err = float(r["reported_s_km"]) - float(r["true_s_km"])
                errs.setdefault(g[0], []).append(err / math.hypot(sigma_km(g), 5.0))
        if r["kind"] == "false":  # 120-250 km off along the route, unless clipped at an end
            rep, length = float(r["reported_s_km"]), sc.forces[r["force"]].route.length_km
            assert abs(rep - float(r["true_s_km"])) >= 119.99 or rep in (0.0, round(length, 3))
    z = np.concatenate([np.array(v) for v in errs.values()])
    assert abs(z.mean()) < 0.15 and 0.85 < z.std() < 1.15  # along-route error ~ N(0, sigma)
    assert {"position", "reached", "crossed"} <= kinds


def test_same_seed_same_files_other_seed_other_files(folder: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    r = runner.invoke(app, ["simulate", "--forces", "20", "--per-race", "4", "--seed", "7",
                            "--days", "40", "--out", str(again)])
    assert r.exit_code == 0, r.output
    for name in ("scenario.toml", "world.geojson", "reports.csv", "truth.csv"):
        assert (again / name).read_bytes() == (folder / name).read_bytes(), name
    other = tmp_path / "other"
    runner.invoke(app, ["simulate", "--forces", "20", "--per-race", "4", "--seed", "8",
                        "--out", str(other)])
    assert (other / "reports.csv").read_bytes() != (folder / "reports.csv").read_bytes()


def test_mis_specified_forces_stop_at_the_hidden_line(tmp_path: Path) -> None:
    spec = SimSpec(forces=30, seed=3, days=40, mis_specified=True, surprise_p=1.0,
                   surprise_days=(math.inf, math.inf))
    sim = simulate(spec)
    write_scenario(sim, tmp_path)
    stopped = [t for t in sim.truth if t["surprise_halt"]]
    assert len(stopped) >= 10
    for t in stopped:  # for good: it never arrives
        assert t["arrival"] is None
    assert "line-hidden" not in (tmp_path / "world.geojson").read_text()
    assert "mis-specified" in (tmp_path / "scenario.toml").read_text()


def test_halts_in_the_truth_follow_the_forecasts_rules() -> None:
    rng = np.random.default_rng(0)
    fast = TruthParams(advancing_kmpd=50, advancing_sigma=1e-6, pace_sigma=0.0,
                       rates=((-1e-9, 1e-9, 0.0), (0.0, -1e-9, 1e-9), (0.0, 1e-9, -1e-9)))
    # ordered halt at 100 km, obeyed, in force from day 0 to day 6: waits there until day 6
    tr = simulate_truth(rng, TruthParams(**{**fast.__dict__, "halts": ((100.0, 1.0, 0.0,
                                                                        6.0),)}), 10)
    assert tr.arrival(100.0) == pytest.approx(2.0) and tr.arrival(100.01) == pytest.approx(6.0,
                                                                                        abs=1e-3)
    # not in force when reached (from day 3): no wait
    tr = simulate_truth(rng, TruthParams(**{**fast.__dict__, "halts": ((100.0, 1.0, 3.0,
                                                                        6.0),)}), 10)
    assert tr.arrival(150.0) == pytest.approx(3.0)
    # an open order obeyed: stays for good
    tr = simulate_truth(rng, TruthParams(**{**fast.__dict__, "halts": ((100.0, 1.0, 0.0,
                                                                        math.inf),)}), 10)
    assert math.isinf(tr.arrival(100.5)) and tr.position(9.0) == pytest.approx(100.0)
    # a surprise halt of exactly 2 days
    tr = simulate_truth(rng, TruthParams(**{**fast.__dict__, "surprise_halts": ((50.0, 1.0, 2.0,
                                                                                 2.0),)}), 10)
    assert tr.arrival(100.0) == pytest.approx(4.0, abs=1e-4)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_cheap_crossings_agree_with_the_forecasts(seed: int) -> None:
    world = build_world(np.random.default_rng(seed), 3, 3)
    feats = {f["properties"]["id"]: f for f in world.features}
    for fs in world.forces:
        route = Route(fs.route)
        for fid in ("river-a", "river-b", "river-c", "line-west", "line-east"):
            line = feats[fid]["geometry"]["coordinates"]
            a, b = crossing_km(route, fs.route, line), route.crossings(line)
            assert len(a) == len(b) and all(abs(x - y) < 1.5 for x, y in zip(a, b, strict=True))


def test_parquet_archive_reads_back_through_ingest(tmp_path: Path) -> None:
    out = tmp_path / "big"
    r = runner.invoke(app, ["simulate", "--forces", "8", "--seed", "4", "--days", "20",
                            "--out", str(out), "--parquet"])
    assert r.exit_code == 0, r.output
    assert (out / "reports.parquet").is_dir() and not (out / "reports.csv").exists()
    db = tmp_path / "store.db"
    r = runner.invoke(app, ["init", "--scenario", str(out), "--db", str(db)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ingest", "--db", str(db), "--parquet", str(out / "reports.parquet"),
                            "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["total"]["accepted"] == len(_rows(out / "truth_reports.csv"))
    r = runner.invoke(app, ["backtest", "--db", str(db), "--every", "5d", "--samples", "100",
                            "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["eta"]["overall"]["n"] > 0


def test_simulate_usage_errors(tmp_path: Path) -> None:
    r = runner.invoke(app, ["simulate", "--out", str(tmp_path / "x"), "--start", "2001-03-01"])
    assert r.exit_code == 2 and "--start" in r.stderr
    r = runner.invoke(app, ["simulate", "--out", str(tmp_path / "y"), "--rivers", "5"])
    assert r.exit_code == 2
