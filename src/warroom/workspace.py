"""A store together with its scenario: how every command and the server open their data.

Which store:
- ``--db PATH`` (or the ``WARROOM_DB`` environment variable) names a SQLite file;
- without either, ``--scenario`` alone works in a throw-away in-memory store seeded with the
  scenario's reports.csv, so nothing needs ``init`` to try a scenario;
- otherwise ``warroom.db`` in the current folder.

Which scenario: ``--scenario`` if given, else the one recorded in the store by ``init``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from warroom import scenario as scenario_mod
from warroom.domain import Scenario
from warroom.ingest.pipeline import IngestResult, ingest_stream
from warroom.ingest.validate import Validator
from warroom.store import Store

DEFAULT_DB = "warroom.db"


class UsageError(Exception):
    """A usage or configuration problem (exit code 2)."""


@dataclass
class Workspace:
    store: Store
    scenario: Scenario
    seeded: IngestResult | None = None

    def validator(self) -> Validator:
        return Validator(self.scenario)


def scenario_ref(folder: Path) -> str:
    """How a scenario is recorded in a store: a built-in name, or an absolute folder path."""
    b = scenario_mod.builtin_dir()
    try:
        if folder.resolve().parent == b.resolve():
            return folder.name
    except OSError:
        pass
    return str(folder.resolve())


def open_workspace(db: str | None, scenario: str | None, create: bool = False) -> Workspace:
    """Open (or create) the store and load its scenario; seeds the scenario's reports once."""
    path = db or os.environ.get("WARROOM_DB")
    if path is None and scenario is not None and not create:
        path = ":memory:"
    path = path or DEFAULT_DB
    if path != ":memory:" and not Path(path).exists() and scenario is None:
        raise UsageError(f"no store at {path}: run `warroom init --scenario DIR|NAME` first, "
                         "or pass --scenario to work without one")
    store = Store(path)
    recorded = store.get_meta("scenario")
    ref = scenario or recorded
    if ref is None:
        store.close()
        raise UsageError(f"the store {path} has no scenario: pass --scenario DIR|NAME")
    sc = scenario_mod.load(ref)
    ws = Workspace(store, sc)
    key = scenario_ref(sc.path) if sc.path else ref
    if recorded is None or scenario is not None and recorded != key:
        store.set_meta("scenario", key)
    if store.get_meta(f"seeded:{key}") is None:
        ws.seeded = seed(ws)
        store.set_meta(f"seeded:{key}", "1")
    return ws


def seed(ws: Workspace) -> IngestResult | None:
    """Ingest the scenario's own reports.csv (idempotent)."""
    path = ws.scenario.reports_path
    if path is None:
        return None
    with open(path, "rb") as fh:
        return ingest_stream(ws.store, ws.validator(), fh, origin=path.name, filename=path.name)
