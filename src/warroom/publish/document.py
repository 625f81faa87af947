"""The briefing as a short document of plain blocks, shared by Markdown, HTML and PDF.

:func:`build_document` decides *what* an analyst reads (and in which order); the renderers only
decide *how* it looks. Blocks hold plain text (never markup): each renderer escapes it.

Content, in order: the title (with ``as_of``, "(late)" when written after its slot), the
headline, the map, a force table (last report age/source/grade, where, speed ± sd, trend, top
regime), the races and an objectives table (km to go, ETA p50 (p10–p90), against the plan),
the ETA chart, alerts (fired and resolved since the previous briefing, still active), changes
since the previous briefing, and disregarded reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from warroom.publish.fmt import (
    DASH,
    Briefing,
    day,
    force_names,
    forces,
    is_num,
    is_ours,
    km,
    num,
    objective_names,
    pct,
    race_odds,
    speed,
    stamp,
    when,
)


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str
    muted: bool = False


@dataclass(frozen=True)
class Item:
    """A list item; ``tag`` (e.g. an alert's severity) is shown emphasised before the text."""

    text: str
    tag: str | None = None


@dataclass(frozen=True)
class Bullets:
    items: tuple[Item, ...]
    role: str = "list"  # "headline" lists are shown prominently


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()  # right-aligned columns


@dataclass(frozen=True)
class Figure:
    """A place for an image: ``key`` is "map" or "chart"."""

    key: str
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure


def title(briefing: Briefing) -> str:
    """``<scenario> — briefing as of <as_of>`` (+ " (late)")."""
    text = f"{briefing.get('scenario') or 'Briefing'} — as of {stamp(briefing.get('as_of'))}"
    return text + " (late)" if briefing.get("late") else text


def _subtitle(briefing: Briefing) -> str:
    parts = []
    if briefing.get("late") or (briefing.get("slot") and briefing.get("slot") != briefing.get(
            "as_of")):
        parts.append(f"for the {stamp(briefing.get('slot'))} slot")
    if briefing.get("perspective"):
        parts.append(f"perspective: {briefing['perspective']}")
    parts.append(f"previous briefing: {stamp(briefing['previous'])}" if briefing.get("previous")
                 else "first briefing")
    return " · ".join(parts)


# -- forces -----------------------------------------------------------------------------------

def last_report_text(f: Mapping[str, Any]) -> str:
    """``16h ago · press C3 (reached)`` or ``no reports yet``."""
    lr = f.get("last_report")
    if not isinstance(lr, Mapping):
        return "no reports yet"
    age = lr.get("age") or (f"{lr['age_h']:.0f}h" if is_num(lr.get("age_h")) else None)
    parts = [f"{age} ago" if age else when(lr.get("observed_at"))]
    src = " ".join(str(x) for x in (lr.get("source"), lr.get("grade")) if x)
    if src:
        parts.append(src)
    text = " · ".join(parts)
    event = lr.get("event")
    return f"{text} ({event})" if event and event != "position" else text


def where_text(f: Mapping[str, Any]) -> str:
    """``2.1 km from Schönebeck · km 393 ± 7`` or ``no reports yet`` / ``position unknown``."""
    pos = f.get("position")
    if not isinstance(pos, Mapping):
        return "no reports yet" if not isinstance(f.get("last_report"), Mapping) \
            else "position unknown"
    place = pos.get("place")
    pk = pos.get("place_km")
    if place and is_num(pk) and pk >= 1.0:
        where = f"{km(pk)} from {place}"
    elif place:
        where = f"at {place}"
    else:
        where = f"{num(pos.get('lat'), 2)}, {num(pos.get('lon'), 2)}"
    if is_num(pos.get("s_km")):
        along = f"km {pos['s_km']:.0f}"
        if is_num(pos.get("s_sd_km")):
            along += f" ± {pos['s_sd_km']:.0f}"
        where += f" · {along}"
    return where


def regime_text(regime: Any) -> str:
    """The most likely regime: ``pursuit 95%``."""
    if not isinstance(regime, Mapping):
        return DASH
    vals = [(k, float(v)) for k, v in regime.items() if is_num(v)]
    if not vals:
        return DASH
    k, v = max(vals, key=lambda kv: kv[1])
    return f"{k} {pct(v)}"


def _force_label(f: Mapping[str, Any], briefing: Briefing) -> str:
    name = str(f.get("name") or f["id"])
    persp = briefing.get("perspective")
    return f"{name} (ours)" if is_ours(f, None if persp is None else str(persp)) else name


def force_table(briefing: Briefing) -> Table:
    rows = tuple(
        (_force_label(f, briefing), last_report_text(f), where_text(f),
         speed(f.get("speed_kmpd"), f.get("speed_sd_kmpd")), str(f.get("trend") or DASH),
         regime_text(f.get("regime")))
        for f in forces(briefing))
    return Table(("Force", "Last report", "Where", "Speed", "Trend", "Regime"), rows)


# -- objectives -------------------------------------------------------------------------------

def eta_text(o: Mapping[str, Any]) -> str:
    """``15 Apr 02:24 (13 Apr – beyond)``, ``reached 11 Apr 20:00`` or ``beyond 30 d``."""
    if o.get("reached_at"):
        return f"reached {when(o['reached_at'])}"
    eta = o.get("eta") if isinstance(o.get("eta"), Mapping) else {}
    p10, p50, p90 = eta.get("p10"), eta.get("p50"), eta.get("p90")
    within = o.get("p_within_horizon")
    if p50 is None:
        if p10 is None and not is_num(within) and not o.get("eta_days"):
            return "no estimate"
        return f"beyond horizon ({pct(within)} within)" if is_num(within) else "beyond horizon"
    lo = day(p10) if p10 else "?"
    hi = day(p90) if p90 else "beyond"
    return f"{when(p50)} ({lo} – {hi})"


def plan_text(o: Mapping[str, Any]) -> str:
    """``21 Apr · on time 62%`` (our force), ``21 Apr · ahead of us 46%`` (a rival)."""
    if not o.get("planned"):
        return DASH
    text = day(o["planned"])
    p = o.get("p_before_timetable")
    if is_num(p):
        what = "on time" if o.get("timetable_of") == "own" else "ahead of us"
        text += f" · {what} {pct(p)}"
    return text


def race_items(briefing: Briefing) -> tuple[Item, ...]:
    names = force_names(briefing)
    objs = objective_names(briefing)
    items = []
    for oid, race in (briefing.get("races") or {}).items():
        if not isinstance(race, Mapping):
            continue
        name = objs.get(oid, oid)
        decided = race.get("decided")
        if isinstance(decided, Mapping) and decided.get("winner"):
            w = str(decided["winner"])
            items.append(Item(f"{name}: decided — {names.get(w, w)} reached it "
                              f"{when(decided.get('at'))}"))
            continue
        odds = [f"{names[f]} {pct(p)}" for f, p in race_odds(race, names) if p > 0]
        if is_num(race.get("nobody")):
            odds.append(f"nobody {pct(race['nobody'])}")
        items.append(Item(f"{name}: first to arrive — " + ", ".join(odds or [DASH])))
    return tuple(items)


def objective_table(briefing: Briefing) -> Table:
    rows = []
    for oid, oname in objective_names(briefing).items():
        first = True
        for f in forces(briefing):
            o = (f.get("objectives") or {}).get(oid)
            if not isinstance(o, Mapping):
                continue
            rows.append((oname if first else "", _force_label(f, briefing),
                         "reached" if o.get("reached_at") else km(o.get("km_to_go")),
                         eta_text(o), plan_text(o)))
            first = False
    return Table(("Objective", "Force", "To go", "ETA p50 (p10 – p90)", "vs plan"),
                 tuple(rows), (False, False, True, False, False))


# -- alerts, changes, flags -------------------------------------------------------------------

def alert_item(a: Mapping[str, Any], resolved: bool = False) -> Item:
    text = str(a.get("message") or a.get("id") or "alert")
    extra = []
    if resolved and a.get("resolved_at"):
        extra.append(f"resolved {when(a['resolved_at'])}")
    elif a.get("since"):
        extra.append(f"since {when(a['since'])}")
    if a.get("suppressed"):
        extra.append("suppressed")
    if a.get("note"):
        extra.append(f"note: {a['note']}")
    if extra:
        text += f" ({'; '.join(extra)})"
    sev = a.get("severity")
    return Item(text, str(sev).upper() if sev else None)


def _alerts(briefing: Briefing) -> list[Block]:
    al = briefing.get("alerts") if isinstance(briefing.get("alerts"), Mapping) else {}

    def group(key: str) -> list[Mapping[str, Any]]:
        return [a for a in al.get(key) or [] if isinstance(a, Mapping)]

    fired, resolved, active = group("fired"), group("resolved"), group("active")
    blocks: list[Block] = [Heading("Alerts")]
    if not (fired or resolved or active):
        return blocks + [Paragraph("No alerts.")]
    since = f" since {stamp(briefing['previous'])}" if briefing.get("previous") else ""
    fired_ids = {a.get("id") for a in fired}
    still = [a for a in active if a.get("id") not in fired_ids or a.get("id") is None]
    for head, items, res in ((f"Fired{since}", fired, False),
                             (f"Resolved{since}", resolved, True),
                             ("Still active", still, False)):
        blocks.append(Heading(f"{head} ({len(items)})", 3))
        if items:
            blocks.append(Bullets(tuple(alert_item(a, res) for a in items)))
    return blocks


def _changes(briefing: Briefing) -> list[Block]:
    prev = briefing.get("previous")
    changes = [str(c) for c in briefing.get("changes") or []]
    blocks: list[Block] = [Heading(f"Changes since {stamp(prev)}" if prev else "Changes")]
    if changes:
        return blocks + [Bullets(tuple(Item(c) for c in changes))]
    return blocks + [Paragraph("No changes." if prev else "First briefing: nothing to compare.")]


def _flags(briefing: Briefing) -> list[Block]:
    rows = []
    for f in forces(briefing):
        for flag in f.get("flags") or []:
            if isinstance(flag, Mapping):
                rows.append((str(f.get("name") or f["id"]), str(flag.get("report") or DASH),
                             str(flag.get("reason") or DASH), str(flag.get("detail") or "")))
    blocks: list[Block] = [Heading("Disregarded reports")]
    if not rows:
        return blocks + [Paragraph("None.")]
    return blocks + [Table(("Force", "Report", "Reason", "Detail"), tuple(rows))]


def _footer(briefing: Briefing) -> str:
    bits = [f"briefing v{briefing.get('version', '?')}"]
    if is_num(briefing.get("horizon_days")):
        bits.append(f"horizon {briefing['horizon_days']:g} days")
    if is_num(briefing.get("samples")):
        bits.append(f"{briefing['samples']:g} samples")
    if briefing.get("seed") is not None:
        bits.append(f"seed {briefing['seed']}")
    return " · ".join(bits)


def build_document(briefing: Briefing) -> list[Block]:
    """The briefing as blocks, in reading order."""
    headline: Sequence[Any] = briefing.get("headline") or []
    blocks: list[Block] = [Heading(title(briefing), 1), Paragraph(_subtitle(briefing), True)]
    if headline:
        blocks.append(Bullets(tuple(Item(str(h)) for h in headline), role="headline"))
    blocks.append(Figure("map", "Situation map: routes, tracks, positions (±1σ), 24 h and "
                                "72 h forecast bands"))
    table = force_table(briefing)
    blocks += [Heading("Forces"), table if table.rows else Paragraph("No forces.")]
    blocks.append(Heading("Objectives"))
    races = race_items(briefing)
    if races:
        blocks.append(Bullets(races))
    table = objective_table(briefing)
    blocks.append(table if table.rows else Paragraph("No objectives."))
    blocks.append(Figure("chart", "Arrival forecasts per objective against our plan"))
    blocks += _alerts(briefing) + _changes(briefing) + _flags(briefing)
    blocks.append(Paragraph(_footer(briefing), True))
    return blocks
