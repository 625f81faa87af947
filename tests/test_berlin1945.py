"""The built-in scenario: clean, sourced, on its axes, and telling the story the record tells."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from warroom import scenario as scenario_mod
from warroom.geo import distance_km
from warroom.ingest.pipeline import ingest_stream
from warroom.ingest.validate import Validator
from warroom.store import Store


@pytest.fixture(scope="module")
def berlin():
    return scenario_mod.load("berlin1945")


def rows(sc) -> list[dict[str, str]]:
    with open(sc.reports_path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_loads_clean_and_every_report_lands(berlin) -> None:
    store = Store(":memory:")
    with open(berlin.reports_path, "rb") as fh:
        res = ingest_stream(store, Validator(berlin), fh, origin="reports.csv")
    assert res.quarantined == 0 and res.conflict == 0
    assert res.accepted == len(rows(berlin)) == store.count_reports()
    assert set(berlin.forces) == {"us9", "us1", "us3", "1bf", "1uf"}
    assert berlin.perspective == "soviet"


def test_every_report_has_a_force_a_source_and_a_grade(berlin) -> None:
    for r in rows(berlin):
        assert r["force"] in berlin.forces, r
        assert r["sources"].strip(), r["report_id"]
        assert r["grade"][0] in "ABCDEF" and r["grade"][1] in "123456"


def test_every_route_reaches_its_objectives(berlin) -> None:
    for f in berlin.forces.values():
        assert f.objectives, f.id
        for oid in f.objectives:
            assert 0 < f.objective_km[oid] <= f.route.length_km
    assert "berlin" in berlin.forces["us9"].objectives
    assert "elbe" in berlin.forces["us9"].objectives


def test_ninth_army_on_the_elbe_on_11_april_is_on_its_axis(berlin) -> None:
    (r,) = [r for r in rows(berlin) if r["force"] == "us9" and r["observed_at"][:10] ==
            "1945-04-11"]
    _, xt = berlin.forces["us9"].route.project(float(r["lat"]), float(r["lon"]))
    assert xt < 5.0


def test_status_on_12_april_tells_the_record(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "warroom", "status", "--scenario",
                          "berlin1945", "--at", "1945-04-12T12:00Z", "--json"],
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    forces = {f["force"]: f for f in json.loads(out)["forces"]}
    assert len(forces) == 5
    us9, bf = forces["us9"], forces["1bf"]
    magdeburg = (52.1313, 11.6319)
    pos = us9["position"]
    assert float(distance_km(pos["lat"], pos["lon"], *magdeburg)) < 30
    berlin = us9["objectives"]["berlin"]
    # about 128 km from Berlin's centre as the crow flies; along its road (Genthin,
    # Brandenburg, Potsdam) about 130-150 km to the city's edge
    assert abs(berlin["km_direct"] - 128) < 10
    assert 110 < berlin["km_to_go"] < 150
    kuestrin = (52.5871, 14.6495)
    assert float(distance_km(bf["position"]["lat"], bf["position"]["lon"], *kuestrin)) < 15
    assert bf["estimate"]["trend"] == "halted"
    # the Third Army, of the popular tale, is far from Berlin
    assert forces["us3"]["objectives"]["berlin"]["km_direct"] > 150
