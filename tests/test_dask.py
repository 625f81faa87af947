"""The local and Dask engines give the same numbers (same seed, same input), on a real
dask.distributed LocalCluster of two worker processes; the CLI reaches an existing cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from warroom.engine import EngineError, open_engine
from warroom.engine.dask_engine import DaskEngine
from warroom.engine.forecast import forecast as engine_forecast
from warroom.engine.forecast import partitions
from warroom.engine.local import LocalEngine
from warroom.estimate.config import estimate_params
from warroom.estimate.track import estimate
from warroom.forecast.params import ForecastParams
from warroom.forecast.run import forecast as run_forecast
from warroom.timeutil import parse_time
from warroom.workspace import Workspace, open_workspace

from .conftest import POLE

distributed = pytest.importorskip("dask.distributed")


@pytest.fixture(scope="module")
def cluster(dask_cluster: Any) -> Any:
    return dask_cluster


@pytest.fixture(scope="module")
def dask_engine(cluster: Any) -> Iterator[DaskEngine]:
    e = DaskEngine(address=cluster.scheduler_address)
    yield e
    e.close()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from warroom.simulate import SimSpec, simulate, write_scenario

    out = tmp_path_factory.mktemp("syn") / "races"
    write_scenario(simulate(SimSpec(forces=12, per_race=3, days=30.0, seed=5)), out)
    return out


def local(ws: Workspace, at: int, params: ForecastParams) -> dict[str, Any]:
    """The forecast as `warroom forecast` computes it without an engine."""
    reports = ws.store.reports_by_force(as_of=at)
    ep = estimate_params(ws.scenario)
    return run_forecast(ws.scenario, estimate(ws.scenario, reports, at, ep), reports, at,
                        params, ep)


def on(engine: Any, ws: Workspace, at: int, params: ForecastParams,
       n: int | None = None) -> dict[str, Any]:
    reports = ws.store.reports_by_force(as_of=at)
    return engine_forecast(engine, ws.scenario, reports, at, params,
                           estimate_params(ws.scenario), n_partitions=n)


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.mark.parametrize("name,at,overrides", [
    ("berlin1945", "1945-04-12T12:00:00Z", {}),
    ("berlin1945", "1945-04-16T00:00:00Z", {"us3.p_obey": 0.1}),
    (str(POLE), "1911-12-01T00:00:00Z", {}),
])
def test_dask_and_local_agree_exactly(dask_engine: DaskEngine, name: str, at: str,
                                      overrides: dict[str, float]) -> None:
    ws = open_workspace(None, name)
    t = parse_time(at)
    params = ForecastParams(samples=1500, seed=7, overrides=overrides)
    want = local(ws, t, params)
    assert want["races"], "a race: P(first) needs every racer's samples together"
    got = on(dask_engine, ws, t, params, n=len(ws.scenario.forces))
    assert same(got, want)
    # and the agreement is not trivial: another seed moves the numbers
    assert not same(on(dask_engine, ws, t, ForecastParams(samples=1500, seed=8,
                                                          overrides=overrides)), want)


def test_synthetic_races_in_partitions(dask_engine: DaskEngine, synthetic: Path) -> None:
    ws = open_workspace(None, str(synthetic))
    reports = ws.store.reports()
    at = (min(r.observed_at for r in reports) + max(r.observed_at for r in reports)) // 2
    params = ForecastParams(samples=800, seed=11)
    want = local(ws, at, params)
    parts = partitions(ws.scenario, ws.store.reports_by_force(), at, 3)
    assert len(parts) == 3 and sorted(f for p in parts for f in p.forces) \
        == sorted(ws.scenario.forces)
    # races span partitions: at least one race has racers in two of them
    where = {f: i for i, p in enumerate(parts) for f in p.forces}
    racers = {o: {f for f, d in want["forces"].items() if o in d["objectives"]}
              for o in want["races"]}
    assert any(len({where[f] for f in fs}) > 1 for fs in racers.values())
    for n in (1, 3, 12):
        assert same(on(LocalEngine(), ws, at, params, n), want)
    assert same(on(dask_engine, ws, at, params, 3), want)


def test_work_runs_on_the_workers(dask_engine: DaskEngine) -> None:
    assert dask_engine.workers == 2
    pids = set(dask_engine.map(_pid, range(8)))
    assert os.getpid() not in pids and len(pids) >= 1
    # shared arguments arrive whole (a dict is not split into futures)
    assert dask_engine.map(_lookup, ["a", "b"], table={"a": 1, "b": 2}) == [1, 2]


def _pid(_: int) -> int:
    import time

    time.sleep(0.05)
    return os.getpid()


def _lookup(key: str, table: dict[str, int]) -> int:
    return table[key]


def test_engine_errors_are_clear() -> None:
    with pytest.raises(EngineError, match="--engine 'spark'; expected one of local, dask"):
        open_engine("spark")
    with pytest.raises(EngineError, match="--address needs --engine dask"):
        open_engine("local", "tcp://127.0.0.1:1")
    with pytest.raises(EngineError, match="could not reach the Dask scheduler at "
                       "tcp://127.0.0.1:9"):
        DaskEngine(address="tcp://127.0.0.1:9", timeout_s=1.0)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WARROOM_DB"}
    return subprocess.run([sys.executable, "-m", "warroom", *args], cwd=cwd, text=True,
                          capture_output=True, env=env, timeout=300)


def test_cli_forecast_on_an_existing_cluster(cluster: Any, tmp_path: Path) -> None:
    args = ("forecast", "--scenario", "berlin1945", "--at", "1945-04-12T12:00Z", "--samples",
            "1000", "--seed", "3", "--json")
    a = run(*args, cwd=tmp_path)
    b = run(*args, "--engine", "dask", "--address", cluster.scheduler_address, cwd=tmp_path)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert json.loads(a.stdout) == json.loads(b.stdout)
    c = run(*args, "--address", "tcp://127.0.0.1:9", cwd=tmp_path)
    assert c.returncode == 2 and "error: --address needs --engine dask" in c.stderr
