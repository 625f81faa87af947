"""Loading scenario folders: a clean load, and every problem named at once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from warroom import scenario as scenario_mod
from warroom.scenario import ScenarioError

from .conftest import POLE


def copy_pole(tmp_path: Path) -> Path:
    dst = tmp_path / "pole"
    shutil.copytree(POLE, dst)
    return dst


def test_pole_loads_with_objectives_in_route_order(pole) -> None:
    assert set(pole.forces) == {"amundsen", "scott"}
    am = pole.forces["amundsen"]
    assert am.objectives == ("pole",)  # not listed: every objective the route reaches
    # reached on entering the 5 km radius, so 5 km before the route's end at the pole
    assert am.objective_km["pole"] == pytest.approx(am.route.length_km - 5.0, abs=0.01)
    assert pole.perspective == "britain"
    assert pole.timetable[0].force == "scott"
    assert "mountains" in pole.targets() and "plateau-edge" in pole.targets()


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    d = copy_pole(tmp_path)
    toml = (d / "scenario.toml").read_text()
    toml = toml.replace('route = "amundsen-route"', 'route = "no-such-route"')
    toml = toml.replace('side = "britain"', 'side = "france"')
    toml = toml.replace('planned = "1912-01-15T00:00:00Z"', 'planned = "15 January 1912"')
    (d / "scenario.toml").write_text(toml)
    with pytest.raises(ScenarioError) as e:
        scenario_mod.load(d)
    text = str(e.value)
    assert "forces[0] ('amundsen'), route: 'no-such-route' is not a feature" in text
    assert "forces[1] ('scott'), side: 'france' is not a side" in text
    assert len(e.value.problems) >= 2


def test_objective_the_route_never_reaches(tmp_path: Path) -> None:
    d = copy_pole(tmp_path)
    world = json.loads((d / "world.geojson").read_text())
    for f in world["features"]:
        if f["properties"]["id"] == "scott-route":  # stop 300 km short of the pole
            f["geometry"]["coordinates"] = f["geometry"]["coordinates"][:4]
    (d / "world.geojson").write_text(json.dumps(world))
    with pytest.raises(ScenarioError) as e:
        scenario_mod.load(d)
    msg = str(e.value)
    assert "forces[1] ('scott'), objectives: route 'scott-route' never reaches objective 'pole'" \
        in msg
    assert "radius_km is 5" in msg


def test_bad_time_and_unknown_key_name_the_field(tmp_path: Path) -> None:
    d = copy_pole(tmp_path)
    toml = (d / "scenario.toml").read_text()
    toml = toml.replace('planned = "1912-01-15T00:00:00Z"', 'planned = "1912-01-15T00:00:00"')
    toml = toml.replace('supply_base = "framheim"', 'supplybase = "framheim"')
    (d / "scenario.toml").write_text(toml)
    with pytest.raises(ScenarioError) as e:
        scenario_mod.load(d)
    msg = str(e.value)
    assert "timetable[0], planned:" in msg and "has no zone" in msg
    assert "forces[0] ('amundsen'), supplybase: unknown key" in msg


def test_geojson_problems(tmp_path: Path) -> None:
    d = copy_pole(tmp_path)
    world = json.loads((d / "world.geojson").read_text())
    world["features"].append({"type": "Feature", "properties": {"id": "pole", "kind": "place"},
                              "geometry": {"type": "Point", "coordinates": [0, -90]}})
    world["features"].append({"type": "Feature", "properties": {"id": "x", "kind": "lake"},
                              "geometry": {"type": "Point", "coordinates": [0, 0]}})
    world["features"].append({"type": "Feature", "properties": {"id": "y", "kind": "place"},
                              "geometry": {"type": "Point", "coordinates": [0, 95]}})
    (d / "world.geojson").write_text(json.dumps(world))
    with pytest.raises(ScenarioError) as e:
        scenario_mod.load(d)
    msg = str(e.value)
    assert "world.geojson feature 'pole': duplicate id" in msg
    assert "world.geojson feature 'x': properties.kind is 'lake'" in msg
    assert "world.geojson feature 'y': position [0.0, 95.0] is off the globe" in msg


def test_unknown_scenario_name_lists_builtins() -> None:
    with pytest.raises(ScenarioError) as e:
        scenario_mod.load("no-such-scenario")
    assert "no built-in scenario of that name" in str(e.value)
