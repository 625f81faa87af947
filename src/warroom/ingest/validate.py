"""Turn parsed report fields into a store row, or say exactly what is wrong.

Every problem of a row is reported, each naming the field, what was found and what was
expected: ``observed_at: '12 April' is not an ISO 8601 time with a zone``.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from warroom.domain import Event, Scenario
from warroom.gazetteer import Gazetteer
from warroom.grades import normalise_grade
from warroom.ingest.base import Batch
from warroom.ingest.bulk import floats, iso_seconds
from warroom.ingest.columns import as_list, same_texts, shared, stripped
from warroom.ingest.fields import KNOWN
from warroom.store import ROW_FIELDS
from warroom.timeutil import TimeFormatError, parse_time

_EVENTS = frozenset(e.value for e in Event)
_EVENT_NAMES = {e.value: e.value for e in Event} | {e.value.upper(): e.value for e in Event}
_GRADES = {f"{r}{c}": f"{r}{c}" for r in "ABCDEF" for c in "123456"}
_GRADES |= {k.lower(): v for k, v in _GRADES.items()}
# Column text -> stored value in bulk; an empty cell means the field is absent (its default).
_BULK_GRADES = _GRADES | {"": "F6"}
_BULK_EVENTS = _EVENT_NAMES | {"": "position"}


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        v = v.strip()
        return v or None
    if isinstance(v, bool | dict | list):
        return json.dumps(v, sort_keys=True)
    return str(v)


def _number(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError
    return float(v)


# Columns the bulk path needs; a batch without them (e.g. places instead of lat/lon) is
# validated row by row.
_BULK_NEEDS = ("report_id", "source", "force", "observed_at", "lat", "lon")


@dataclass
class ValidBatch:
    """A validated :class:`Batch`: the good rows as columns in ``store.ROW_FIELDS`` order,
    ``index[k]`` the position in the batch of good row ``k``, and ``bad`` the others as
    ``(position, fields, problems)``; both in batch order."""

    columns: list[Sequence[Any]]
    index: Sequence[int]
    bad: list[tuple[int, dict[str, str], list[str]]]


class Validator:
    """Validates report fields against a scenario: known force, target and place names."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.forces = sorted(scenario.forces)
        self.force_set = frozenset(self.forces)
        self.targets = frozenset(scenario.targets())
        self.gazetteer = Gazetteer(scenario.places)
        self._places: dict[str, tuple[float, float] | None] = {}
        self._tcache: dict[Any, int] = {}

    def row(self, f: dict[str, Any]) -> tuple[tuple[Any, ...] | None, list[str]]:
        """``(row, [])`` for a good report (a tuple in ``store.ROW_FIELDS`` order), or
        ``(None, problems)``.

        A fast path accepts the common, plainly good row; anything it is not sure of goes
        through :meth:`full`, which finds and names every problem. Both give the same row.
        """
        try:
            row = self.fast(f)
        except (TypeError, ValueError, AttributeError):
            row = None
        if row is not None:
            return row, []
        return self.full(f)

    def batch(self, b: Batch) -> ValidBatch:
        """Validate a batch of rows given by column (see :class:`Batch`), as :meth:`row` would
        one by one, in bulk: whole columns are parsed and checked at once, and only the rows
        that fail a bulk check (or that the bulk checks do not cover, such as place names) go
        through :meth:`row`, which names their problems. The good rows come out in batch order
        and identical to :meth:`row`'s."""
        if type(self).row is not Validator.row:  # a subclass that adjusts rows: its own way
            return self._row_by_row(b, range(len(b)))
        return self._bulk(b)

    def _bulk(self, b: Batch) -> ValidBatch:
        """:meth:`batch`'s column-wise checks (rows they cannot settle go to :meth:`row`). A
        subclass that adjusts rows calls this after adjusting the batch the same way."""
        n = len(b)
        col = dict(zip(b.names, b.columns, strict=True))
        if not all(k in col for k in _BULK_NEEDS):
            return self._row_by_row(b, range(n))
        slow = np.zeros(n, bool)

        def flag(bad: Any) -> None:
            nonlocal slow
            slow |= np.fromiter(bad, bool, n)

        source = stripped(col["source"])
        rid = stripped(col["report_id"])
        force = stripped(col["force"])
        for ids in (source, rid):
            if not all(ids):
                flag(not v for v in ids)
        if not self.force_set.issuperset(force):
            flag(f not in self.force_set for f in force)
        observed, ok, _ = iso_seconds(col["observed_at"])
        slow |= ~ok
        received = observed
        # (received_at is often the same text as observed_at: then it is the same time)
        if "received_at" in col and not same_texts(col["received_at"], col["observed_at"]):
            received, ok, blank = iso_seconds(col["received_at"])
            received = np.where(blank, observed, received)
            slow |= ~(ok | blank) | (received < observed)
        lat, la, lat_ok = floats(col["lat"])
        lon, lo, lon_ok = floats(col["lon"])
        slow |= ~(lat_ok & lon_ok & (la >= -90.0) & (la <= 90.0)
                  & (lo >= -180.0) & (lo <= 180.0))  # NaN fails every comparison
        none: list[Any] = [None] * n
        unc: list[Any] = none
        if "uncertainty_km" in col:
            texts = as_list(col["uncertainty_km"])
            vals, u, parsed = floats(texts)
            blank = np.fromiter(map(len, texts), np.int64, n) == 0
            slow |= ~(blank | (parsed & (u > 0.0) & (u < np.inf)))
            unc = [v if t else None for t, v in zip(texts, vals, strict=True)]
        grade = (["F6"] * n if "grade" not in col
                 else list(map(_BULK_GRADES.get, shared(col["grade"]))))
        event = (["position"] * n if "event" not in col
                 else list(map(_BULK_EVENTS.get, shared(col["event"]))))
        for vals in (grade, event):
            if None in vals:
                flag(v is None for v in vals)
        target = none if "target" not in col else [t or None for t in stripped(col["target"])]
        if event.count("position") != n:
            targets = self.targets
            flag(e is not None and e != "position"
                 and not ((e == "halted" and t is None) or t in targets)
                 for e, t in zip(event, target, strict=True))
        text = none if "text" not in col else [t or None for t in shared(col["text"])]
        place = none if "place" not in col else [t or None for t in stripped(col["place"])]
        sources = (none if "sources" not in col
                   else [t or None for t in stripped(col["sources"])])
        extra = none
        extra_cols = [(k, as_list(c)) for k, c in col.items() if k not in KNOWN]
        if extra_cols:
            extra = []
            for i in range(n):
                d = {k: c[i] for k, c in extra_cols if c[i]}
                extra.append(json.dumps(d, sort_keys=True, default=str) if d else None)

        good: Sequence[int] = range(n)
        obs = observed.tolist()
        cols: list[Sequence[Any]] = [source, rid, force, obs,
                                     obs if received is observed else received.tolist(),
                                     lat, lon, place, unc, grade, event, target, text, sources,
                                     extra]
        if slow.any():
            good = np.flatnonzero(~slow).tolist()
            cols = [[c[i] for i in good] for c in cols]
        out = ValidBatch(cols, good, [])
        if slow.any():
            out = self._merge(out, self._row_by_row(b, np.flatnonzero(slow).tolist()))
        return out

    def _row_by_row(self, b: Batch, which: Sequence[int]) -> ValidBatch:
        index: list[int] = []
        rows: list[tuple[Any, ...]] = []
        bad: list[tuple[int, dict[str, str], list[str]]] = []
        for i in which:
            f = b.fields(i)
            row, errs = self.row(f)
            if row is None:
                bad.append((i, f, errs))
            else:
                index.append(i)
                rows.append(row)
        cols = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in ROW_FIELDS]
        return ValidBatch(cols, index, bad)

    @staticmethod
    def _merge(a: ValidBatch, b: ValidBatch) -> ValidBatch:
        """The good and bad rows of both, in batch order."""
        bad = sorted(a.bad + b.bad, key=lambda x: x[0])
        if not b.index:
            return ValidBatch(a.columns, a.index, bad)
        rows = sorted([*zip(a.index, zip(*a.columns, strict=True), strict=True),
                       *zip(b.index, zip(*b.columns, strict=True), strict=True)],
                      key=lambda x: x[0])
        cols = [list(c) for c in zip(*(r for _, r in rows), strict=True)]
        return ValidBatch(cols, [i for i, _ in rows], bad)

    def fast(self, f: dict[str, Any]) -> tuple[Any, ...] | None:
        """The row of a plainly good report, or None to defer to :meth:`full`."""
        get = f.get
        source = get("source").strip()
        rid = get("report_id").strip()
        force = get("force").strip()
        if not source or not rid or force not in self.force_set:
            return None
        tc = self._tcache
        ov = get("observed_at")
        observed = tc.get(ov)
        if observed is None:
            observed = self._cache_time(ov)
        rv = get("received_at")
        if rv is None:
            received = observed
        else:
            received = tc.get(rv)
            if received is None:
                received = self._cache_time(rv)
            if received < observed:
                return None
        lat = get("lat")
        lon = get("lon")
        if lat is None or lon is None:
            if lat is not None or lon is not None or get("place") is not None:
                return None
        else:
            if type(lat) is bool or type(lon) is bool:
                return None
            lat = float(lat)
            lon = float(lon)
            if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
                return None
        unc = get("uncertainty_km")
        if unc is not None:
            unc = float(unc)
            if not (0.0 < unc < math.inf):
                return None
        g = get("grade")
        grade = "F6" if g is None else _GRADES.get(g)
        ev = get("event")
        event = "position" if ev is None else _EVENT_NAMES.get(ev)
        if grade is None or event is None:
            return None
        target = get("target")
        if target is not None:
            target = target.strip() or None
        if event == "position":
            if lat is None:
                return None
        elif event != "halted" or target is not None:
            if target not in self.targets:
                return None
        text = get("text")
        if text is not None and (type(text) is not str or text == ""):
            return None
        sources = get("sources")
        if sources is not None:
            sources = sources.strip() or None
        extra = f.keys() - KNOWN
        return self._finish(source, rid, force, observed, received, lat, lon, get("place"), unc,
                            grade, event, target, text, sources,
                            {k: f[k] for k in extra} if extra else None)

    def _cache_time(self, v: Any) -> int:
        t = parse_time(v)  # raises for non-strings and bad times: the full path says why
        if len(self._tcache) > 100_000:
            self._tcache.clear()
        self._tcache[v] = t
        return t

    @staticmethod
    def _finish(source: str, rid: str, force: str, observed: int, received: int,
                lat: float | None, lon: float | None, place: Any, unc: float | None, grade: str,
                event: str, target: str | None, text: str | None, sources: str | None,
                extra: dict[str, Any] | None) -> tuple[Any, ...]:
        place = _text(place)
        extra = {k: v for k, v in extra.items() if v not in (None, "")} if extra else None
        extra_json = json.dumps(extra, sort_keys=True, default=str) if extra else None
        return (source, rid, force, observed, received, lat, lon, place, unc, grade, event,
                target, text, sources, extra_json)

    def full(self, f: dict[str, Any]) -> tuple[tuple[Any, ...] | None, list[str]]:
        """Validate every field; ``(row, [])`` or ``(None, problems)``."""
        errs: list[str] = []
        source = _text(f.get("source"))
        rid = _text(f.get("report_id"))
        force = _text(f.get("force"))
        if not rid:
            errs.append("report_id: missing; expected an id unique per source")
        if not source:
            errs.append("source: missing; expected who sent the report")
        if not force:
            errs.append("force: missing; expected a force id")
        elif force not in self.force_set:
            near = difflib.get_close_matches(force, self.forces, n=2, cutoff=0.5)
            hint = f" (did you mean {' or '.join(near)}?)" if near else ""
            errs.append(f"force: {force!r} is not a force of this scenario{hint}; expected one "
                        f"of {', '.join(self.forces)}")
        observed = self._time(f, "observed_at", errs, required=True)
        received = self._time(f, "received_at", errs, required=False)
        if received is None:
            received = observed
        elif observed is not None and received < observed:
            errs.append(f"received_at: {f.get('received_at')!r} is before observed_at; expected "
                        "a report to be received no earlier than it was observed")
        lat = self._coord(f, "lat", 90.0, errs)
        lon = self._coord(f, "lon", 180.0, errs)
        if (lat is None) != (lon is None) and not any(e.startswith(("lat", "lon")) for e in errs):
            errs.append("lat/lon: only one of them given; expected both, or a place")
        place = _text(f.get("place"))
        if place is not None and lat is None and lon is None:
            hit = self._place(place)
            if hit is None:
                near = self.gazetteer.suggest(place)
                hint = f"; did you mean {', '.join(near)}?" if near else ""
                errs.append(f"place: {place!r} is not in the scenario's gazetteer{hint}")
            else:
                lat, lon = hit
        unc = None
        if f.get("uncertainty_km") not in (None, ""):
            try:
                unc = _number(f["uncertainty_km"])
                if not (math.isfinite(unc) and unc > 0):
                    raise ValueError
            except (TypeError, ValueError):
                errs.append(f"uncertainty_km: {f['uncertainty_km']!r}; expected a positive "
                            "number of km (1-sigma)")
        try:
            grade = normalise_grade(_text(f.get("grade")))
        except ValueError as e:
            errs.append(f"grade: {e}")
            grade = "F6"
        event = (_text(f.get("event")) or "position").lower()
        target = _text(f.get("target"))
        if event not in _EVENTS:
            errs.append(f"event: {event!r}; expected one of {', '.join(sorted(_EVENTS))}")
        elif event in ("reached", "crossed"):
            if not target:
                errs.append(f"target: missing; a {event!r} report names the objective, obstacle "
                            "or line it is about")
            elif target not in self.targets:
                errs.append(f"target: {target!r} is not an objective, obstacle or line of this "
                            f"scenario; expected one of {', '.join(sorted(self.targets))}")
        elif event == "position" and lat is None and place is None and not any(
                e.startswith(("lat", "lon", "place")) for e in errs):
            errs.append("lat/lon: missing; a position report needs lat and lon, or a place")
        if event == "halted" and target and target not in self.targets:
            errs.append(f"target: {target!r} is not an objective, obstacle or line of this "
                        "scenario")
        if errs:
            return None, errs
        text = f.get("text")
        text = text if isinstance(text, str) and text != "" else _text(text)
        extra = {k: v for k, v in f.items() if k not in KNOWN}
        return self._finish(source, rid, force, observed, received, lat, lon, place, unc, grade,
                            event, target, text, _text(f.get("sources")), extra), []

    def _time(self, f: dict[str, Any], name: str, errs: list[str], required: bool) -> int | None:
        v = f.get(name)
        if v is None or (isinstance(v, str) and not v.strip()):
            if required:
                errs.append(f"{name}: missing; expected an ISO 8601 time with a zone")
            return None
        if not isinstance(v, str):
            errs.append(f"{name}: {v!r} is not an ISO 8601 time with a zone")
            return None
        try:
            return parse_time(v)
        except TimeFormatError as e:
            msg = str(e)
            if "no zone" not in msg:
                msg = f"{v!r} is not an ISO 8601 time with a zone"
            errs.append(f"{name}: {msg}")
            return None

    def _coord(self, f: dict[str, Any], name: str, limit: float, errs: list[str]) -> float | None:
        v = f.get(name)
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        try:
            x = _number(v)
        except (TypeError, ValueError):
            errs.append(f"{name}: {v!r} is not a number; expected decimal degrees")
            return None
        if not math.isfinite(x) or abs(x) > limit:
            errs.append(f"{name}: {v!r} is out of range; expected decimal degrees in "
                        f"[-{limit:g}, {limit:g}]")
            return None
        return x

    def _place(self, name: str) -> tuple[float, float] | None:
        if name not in self._places:
            hit = self.gazetteer.lookup(name)
            self._places[name] = None if hit is None else (hit.coords[0][1], hit.coords[0][0])
        return self._places[name]
