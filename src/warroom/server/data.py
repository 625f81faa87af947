"""Server-side helpers over the store that ``warroom.store`` does not offer (yet).

- :class:`ArrivalValidator`: stamps reports that carry no ``received_at`` with the time they
  arrived at the server (the store's bitemporal rule needs when we *learned* a report; a plain
  file ingest falls back to ``observed_at`` instead).
- Alert acknowledgements, kept in the server's own table ``server_alert_acks`` (``alert_id``
  primary key, ``acked_at`` epoch seconds), created with ``CREATE TABLE IF NOT EXISTS`` in the
  store's SQLite file; the store's numbered migrations may absorb it later with the same DDL.
- Reading the ``briefings`` table: the list of stored briefings and one by slot.

Callers serialise access to the store's single connection (the app holds a lock).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from warroom.ingest.base import Batch
from warroom.ingest.bulk import iso_seconds
from warroom.ingest.validate import Validator, ValidBatch
from warroom.store import Store
from warroom.timeutil import TimeFormatError, parse_time, to_iso

ACK_SCHEMA = ("CREATE TABLE IF NOT EXISTS server_alert_acks ("
              "alert_id TEXT PRIMARY KEY, acked_at INTEGER NOT NULL)")


class ArrivalValidator(Validator):
    """A :class:`Validator` that gives reports without ``received_at`` the time ``arrival``
    (epoch seconds; None = leave them alone). A report observed after ``arrival`` (a clock ahead
    of ours) is left alone too, so it falls back to ``observed_at`` rather than being refused."""

    arrival: int | None = None

    def row(self, f: dict[str, Any]) -> tuple[tuple[Any, ...] | None, list[str]]:
        """As :meth:`Validator.row`, after stamping a missing ``received_at``."""
        if self.arrival is not None and _blank(f.get("received_at")):
            observed: int | None = None
            ov = f.get("observed_at")
            if isinstance(ov, str):
                try:
                    observed = parse_time(ov)
                except TimeFormatError:
                    observed = None
            if observed is None or observed <= self.arrival:
                f = {**f, "received_at": to_iso(self.arrival)}
        return super().row(f)


    def batch(self, b: Batch) -> ValidBatch:
        """As :meth:`Validator.batch`, after stamping each missing ``received_at`` of the batch
        as :meth:`row` stamps one (times the bulk parser cannot read are parsed one by one)."""
        if self.arrival is not None:
            b = self._stamped(b, self.arrival)
        return self._bulk(b)

    @staticmethod
    def _stamped(b: Batch, arrival: int) -> Batch:
        col = dict(zip(b.names, b.columns, strict=True))
        n = len(b)
        received = col.get("received_at")
        blank = [True] * n if received is None else [not t.strip() for t in received]
        if not any(blank):
            return b
        observed_t = col.get("observed_at", [""] * n)
        observed, ok, _ = iso_seconds(observed_t)
        stamp = to_iso(arrival)
        out = list(received) if received is not None else [""] * n
        for i in np.flatnonzero(blank).tolist():
            when: int | None = int(observed[i]) if ok[i] else None
            if when is None and observed_t[i]:
                try:
                    when = parse_time(observed_t[i])
                except TimeFormatError:
                    when = None
            if when is None or when <= arrival:
                out[i] = stamp
        names, columns = list(b.names), list(b.columns)
        if received is None:
            names.append("received_at")
            columns.append(out)
        else:
            columns[names.index("received_at")] = out
        return Batch(names, columns, b.lines, b.raws, b.originals)


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


# -- alert acknowledgements ----------------------------------------------------------------------
def init_acks(store: Store) -> None:
    """Create the acknowledgement table if it is not there."""
    store.conn.execute(ACK_SCHEMA)


def acked_ids(store: Store) -> dict[str, int]:
    """Acknowledged alert ids with the time of acknowledgement."""
    return {r[0]: r[1] for r in store.conn.execute(
        "SELECT alert_id, acked_at FROM server_alert_acks")}


def ack(store: Store, alert_id: str, at: int | None = None) -> int:
    """Acknowledge an alert (idempotent: the first acknowledgement time is kept); its time."""
    when = int(time.time()) if at is None else at
    store.conn.execute("INSERT OR IGNORE INTO server_alert_acks (alert_id, acked_at) "
                       "VALUES (?, ?)", (alert_id, when))
    row = store.conn.execute("SELECT acked_at FROM server_alert_acks WHERE alert_id = ?",
                             (alert_id,)).fetchone()
    return int(row[0])


# -- reports -------------------------------------------------------------------------------------
def time_range(store: Store) -> tuple[int | None, int | None]:
    """Earliest ``observed_at`` and latest ``received_at`` of the stored reports (epoch s)."""
    lo, hi = store.conn.execute(
        "SELECT min(observed_at), max(received_at) FROM reports").fetchone()
    return lo, hi


def reports_version(store: Store) -> int:
    """A number that changes whenever a report lands (reports are only ever added)."""
    return int(store.conn.execute("SELECT coalesce(max(seq), 0) FROM reports").fetchone()[0])


# -- briefings -----------------------------------------------------------------------------------
def list_briefings(store: Store) -> list[dict[str, Any]]:
    """Every stored briefing's slot, as_of, lateness and write time (ISO), by slot."""
    return [{"slot": to_iso(s), "as_of": to_iso(a), "late": bool(late),
             "written_at": to_iso(w)}
            for s, a, late, w in store.conn.execute(
                "SELECT slot, as_of, late, written_at FROM briefings ORDER BY slot")]


def briefing_at(store: Store, slot: int) -> dict[str, Any] | None:
    """The stored briefing of ``slot`` (epoch seconds), or None."""
    row = store.conn.execute("SELECT json FROM briefings WHERE slot = ?", (slot,)).fetchone()
    return None if row is None else json.loads(row[0])
