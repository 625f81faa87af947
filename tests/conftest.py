"""Shared fixtures: the small South Pole scenario in tests/data/pole; one Dask LocalCluster of
two worker processes for the tests that compare the Dask engine with the local one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from warroom import scenario as scenario_mod
from warroom.domain import Scenario
from warroom.ingest.validate import Validator
from warroom.store import Store

DATA = Path(__file__).parent / "data"
POLE = DATA / "pole"


@pytest.fixture(scope="session")
def pole() -> Scenario:
    return scenario_mod.load(POLE)


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "test.db")
    yield s
    s.close()


@pytest.fixture(scope="session")
def validator(pole: Scenario) -> Validator:
    return Validator(pole)


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Any]:
    """A LocalCluster of two worker processes (one thread each), shared by the session."""
    distributed = pytest.importorskip("dask.distributed")
    c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=None, memory_limit="1GiB")
    yield c
    c.close()
