"""Small text helpers shared by the renderers: times, numbers, probabilities, lookups.

A briefing (see :mod:`warroom.brief`) is a JSON-ready mapping; times in it are ISO 8601 UTC
strings (``"1945-04-12T12:00:00Z"``) or null, distances km, speeds km/day. Every helper here
accepts ``None`` and returns a dash (or ``None``) rather than raising, so a briefing with
missing pieces still renders.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

Briefing = Mapping[str, Any]
"""A briefing object (version 1), as produced by ``warroom.brief.build_briefing``."""

DASH = "—"


def parse_iso(text: str | None) -> datetime | None:
    """A timezone-aware UTC datetime of an ISO 8601 text, or None (for None or bad text)."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(str(text).strip())  # Python 3.11+ reads a trailing "Z"
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def stamp(text: str | None) -> str:
    """A full UTC time for titles: ``1945-04-12 12:00Z``."""
    dt = parse_iso(text)
    return DASH if dt is None else dt.strftime("%Y-%m-%d %H:%MZ")


def when(text: str | None) -> str:
    """A short UTC time for tables: ``12 Apr 12:00`` (the year is the briefing's)."""
    dt = parse_iso(text)
    return DASH if dt is None else dt.strftime("%d %b %H:%M")


def day(text: str | None) -> str:
    """A UTC date: ``12 Apr``."""
    dt = parse_iso(text)
    return DASH if dt is None else dt.strftime("%d %b")


def after_days(base: str | None, days: float) -> datetime | None:
    """``base`` plus ``days`` (a fraction of days), or None."""
    dt = parse_iso(base)
    return None if dt is None else dt + timedelta(days=float(days))


def is_num(x: Any) -> bool:
    """True for a finite int/float (not bool)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def km(x: Any) -> str:
    """``132 km``; one decimal below 10 km."""
    if not is_num(x):
        return DASH
    return f"{x:.1f} km" if abs(x) < 10 else f"{x:.0f} km"


def num(x: Any, digits: int = 0) -> str:
    """A rounded number or a dash."""
    return f"{x:.{digits}f}" if is_num(x) else DASH


def pct(p: Any) -> str:
    """A probability as a percentage: ``81%``, ``<1%``, ``>99%``, ``0%``, ``100%``."""
    if not is_num(p):
        return DASH
    v = 100.0 * float(p)
    if v <= 0.0:
        return "0%"
    if v >= 100.0:
        return "100%"
    if v < 1.0:
        return "<1%"
    if v > 99.0:
        return ">99%"
    return f"{v:.0f}%"


def speed(v: Any, sd: Any) -> str:
    """``139 ± 22 km/d``."""
    if not is_num(v):
        return DASH
    return f"{v:.0f} ± {sd:.0f} km/d" if is_num(sd) else f"{v:.0f} km/d"


def short_name(name: str) -> str:
    """A name without its trailing parenthesis: ``Torgau (link-up on the Elbe)`` -> ``Torgau``."""
    head = name.split(" (", 1)[0].strip()
    return head or name


def forces(briefing: Briefing) -> list[Mapping[str, Any]]:
    """The briefing's forces (scenario order), skipping malformed entries."""
    return [f for f in briefing.get("forces") or [] if isinstance(f, Mapping) and "id" in f]


def force_names(briefing: Briefing) -> dict[str, str]:
    """Force id -> name."""
    return {str(f["id"]): str(f.get("name") or f["id"]) for f in forces(briefing)}


def objective_names(briefing: Briefing) -> dict[str, str]:
    """Objective id -> name: the raced-for objectives (``races`` order) first, then the rest in
    order of first appearance over the forces."""
    names: dict[str, str] = {}
    for f in forces(briefing):
        for oid, o in (f.get("objectives") or {}).items():
            if oid not in names:
                names[oid] = str((o or {}).get("name") or oid) if isinstance(o, Mapping) \
                    else str(oid)
    order = [str(oid) for oid in briefing.get("races") or {}]
    order += [oid for oid in names if oid not in order]
    return {oid: names.get(oid, oid) for oid in order}


def race_odds(race: Mapping[str, Any], names: Mapping[str, str]) -> list[tuple[str, float]]:
    """The (force id, P first) pairs of a race, most likely first ("nobody" and extension
    keys such as ``decided`` and ``racers`` are left out)."""
    odds = [(k, float(v)) for k, v in race.items() if k in names and is_num(v)]
    return sorted(odds, key=lambda kv: -kv[1])


def is_ours(force: Mapping[str, Any], persp: str | None) -> bool:
    """Whether a briefing force is of our side: its ``ours`` flag, else side == perspective."""
    if isinstance(force.get("ours"), bool):
        return bool(force["ours"])
    return persp is not None and force.get("side") == persp


def plural(n: int, word: str) -> str:
    """``1 report``, ``2 reports``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def eta_quantiles(eta_days: Sequence[Any] | None) -> list[float | None] | None:
    """The 19 quantiles q05..q95 (days after as_of; None = beyond the horizon), or None when
    there is no distribution at all."""
    if not isinstance(eta_days, Sequence) or isinstance(eta_days, str) or len(eta_days) != 19:
        return None
    return [float(x) if is_num(x) else None for x in eta_days]
