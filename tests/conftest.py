"""Shared fixtures: the small South Pole scenario in tests/data/pole."""

from __future__ import annotations

from pathlib import Path

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
