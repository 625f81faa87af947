"""The backtest on a Dask cluster gives the local numbers (same seed, same input): through the
library on a 2-worker LocalCluster, and through the CLI at that cluster's address."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from warroom.backtest.run import BacktestParams, run_backtest
from warroom.cli import app
from warroom.forecast.params import ForecastParams
from warroom.simulate import SimSpec, simulate, write_scenario
from warroom.timeutil import SECONDS_PER_DAY
from warroom.workspace import open_workspace

distributed = pytest.importorskip("dask.distributed")


@pytest.fixture(scope="module")
def cluster(dask_cluster: Any) -> Any:
    return dask_cluster


@pytest.fixture(scope="module")
def races(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimSpec]:
    spec = SimSpec(forces=8, seed=4, days=25)
    out = tmp_path_factory.mktemp("bt") / "races"
    write_scenario(simulate(spec), out)
    return out, spec


def test_dask_backtest_equals_local(cluster: Any, races: tuple[Path, SimSpec]) -> None:
    from warroom.engine.dask_engine import DaskEngine

    folder, spec = races
    ws = open_workspace(None, str(folder))
    reports = ws.store.reports_by_force()
    cuts = [spec.start + k * SECONDS_PER_DAY for k in range(2, 24, 3)]
    params = BacktestParams(ForecastParams(samples=150, seed=7))
    here = run_backtest(ws.scenario, reports, cuts, params)
    with DaskEngine(address=cluster.scheduler_address) as eng:
        there = run_backtest(ws.scenario, reports, cuts, params, engine=eng)
    assert here["eta"]["overall"]["n"] > 0
    assert json.dumps(there, sort_keys=True) == json.dumps(here, sort_keys=True)


def test_cli_backtest_on_an_existing_cluster(cluster: Any, races: tuple[Path, SimSpec]) -> None:
    folder, _ = races
    runner = CliRunner()
    args = ["backtest", "--scenario", str(folder), "--every", "3d", "--samples", "120", "--json"]
    local = runner.invoke(app, args)
    remote = runner.invoke(app, [*args, "--engine", "dask", "--address",
                                 cluster.scheduler_address])
    assert local.exit_code == 0 and remote.exit_code == 0, remote.output
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    assert (a.pop("engine"), b.pop("engine")) == ("local", "dask")
    assert a == b
