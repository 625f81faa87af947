"""The model: sides, forces, reports, objectives, obstacles, lines, timetable, scenario.

Plain typed dataclasses. Times are UTC epoch seconds (see :mod:`warroom.timeutil`), distances km.
Geometry lives in :class:`warroom.geo.Route` and in the scenario's GeoJSON features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from warroom.geo import Route


class Event(StrEnum):
    """What a report says happened."""

    POSITION = "position"
    REACHED = "reached"
    CROSSED = "crossed"
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class Side:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class HaltOrder:
    """An order to stop at a line, obeyed with probability ``p_obey`` between ``start`` and ``end``
    (epoch seconds; None = open)."""

    line: str
    p_obey: float
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True, slots=True)
class Force:
    """A moving force with its axis of advance.

    ``objectives`` are the objective ids it races for: those listed in scenario.toml, or else
    every objective its route reaches.
    """

    id: str
    name: str
    side: str
    route_id: str
    route: Route
    supply_base: str | None = None
    halt_lines: tuple[HaltOrder, ...] = ()
    objectives: tuple[str, ...] = ()
    objective_km: dict[str, float] = field(default_factory=dict)  # s where each is reached


@dataclass(frozen=True, slots=True)
class Feature:
    """A GeoJSON feature of the world: ``coords`` are (lon, lat) pairs (a Point has one)."""

    id: str
    kind: str
    geometry: str  # "Point" | "LineString"
    coords: tuple[tuple[float, float], ...]
    name: str | None = None
    alt_names: tuple[str, ...] = ()
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.id


@dataclass(frozen=True, slots=True)
class Objective:
    """A point (reached within ``radius_km``) or a line (reached when crossed)."""

    id: str
    name: str
    feature: str
    radius_km: float = 0.0


@dataclass(frozen=True, slots=True)
class Obstacle:
    """A line the route crosses at a cost: a delay with median ``p50_h`` and 90th percentile
    ``p90_h`` hours."""

    feature: str
    name: str
    p50_h: float
    p90_h: float


@dataclass(frozen=True, slots=True)
class Line:
    """A demarcation or halt line."""

    feature: str
    name: str


@dataclass(frozen=True, slots=True)
class TimetableEntry:
    """Our plan: ``force`` at ``objective`` by ``planned`` (epoch seconds)."""

    force: str
    objective: str
    planned: int


@dataclass(frozen=True, slots=True)
class Report:
    """One field report, as stored.

    Exactly one of: a position (``lat``/``lon``, possibly resolved from ``place``), or an event
    (``reached``/``crossed``/``halted`` with a ``target``), which may also carry a position.
    ``uncertainty_km`` is a 1-sigma error; None means "derive from the grade".
    """

    source: str
    report_id: str
    force: str
    observed_at: int
    received_at: int
    lat: float | None = None
    lon: float | None = None
    place: str | None = None
    uncertainty_km: float | None = None
    grade: str = "F6"
    event: str = "position"
    target: str | None = None
    text: str | None = None
    sources: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.report_id)


@dataclass(slots=True)
class Scenario:
    """A race: sides, forces on their routes, objectives, obstacles, lines, timetable, world."""

    name: str
    path: Path | None
    perspective: str | None
    sides: dict[str, Side]
    forces: dict[str, Force]
    objectives: dict[str, Objective]
    obstacles: list[Obstacle]
    lines: dict[str, Line]
    timetable: list[TimetableEntry]
    features: dict[str, Feature]
    reports_path: Path | None = None

    @property
    def places(self) -> list[Feature]:
        return [f for f in self.features.values() if f.kind == "place" and f.geometry == "Point"]

    def targets(self) -> set[str]:
        """Ids a ``reached``/``crossed`` report may name: objectives, obstacle and line features."""
        return set(self.objectives) | {o.feature for o in self.obstacles} | set(self.lines)
