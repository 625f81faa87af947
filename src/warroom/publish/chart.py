"""The ETA chart: when each force may arrive at each objective, against our plan.

One panel per objective that at least one force races for (rows: those forces, scenario
order); x is the date from ``as_of`` to ``as_of + horizon_days``. Per force, from
``objectives[oid]["eta_days"]`` (19 quantiles q05..q95 in days after ``as_of``; null = beyond
the horizon): a thin bar q05-q95, a thick bar q10-q90 and a tick at the median; a ``▶`` at
the right edge when part of the distribution lies beyond the horizon. A reached objective is a
diamond at ``reached_at`` (at the left edge, labelled, when that was before ``as_of``). Our
timetable (``briefing["timetable"]``) is a dashed vertical line labelled "plan".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

from warroom.domain import Scenario
from warroom.publish import style
from warroom.publish.fmt import (
    Briefing,
    day,
    eta_quantiles,
    force_names,
    forces,
    is_num,
    parse_iso,
    pct,
    race_odds,
    stamp,
    when,
)
from warroom.publish.style import FULL, Rect, sub_rect

Q05, Q10, Q50, Q90, Q95 = 0, 1, 9, 17, 18
PANEL_IN = 0.62  # inches per panel (title, axis) plus ROW_IN per force
ROW_IN = 0.36
MARGIN_IN = 1.05
GAP_IN = 0.5  # between panels
KEY = ("thick bar: 10–90 % · thin: 5–95 % · tick: median · ▶ part beyond the horizon · "
       "◆ reached · dashed: our plan")


def chart_objectives(scenario: Scenario | None, briefing: Briefing) -> list[tuple[str, str]]:
    """(objective id, name) of the objectives at least one force races for: scenario order
    first, then any only the briefing knows."""
    names: dict[str, str] = {}
    for f in forces(briefing):
        for oid, o in (f.get("objectives") or {}).items():
            names.setdefault(oid, str((o or {}).get("name") or oid))
    order = [o for o in (scenario.objectives if scenario is not None else []) if o in names]
    order += [o for o in names if o not in order]
    return [(o, names[o]) for o in order]


def chart_height_px(scenario: Scenario | None, briefing: Briefing, dpi: float) -> int:
    """A height that gives every force row the same room."""
    panels = chart_objectives(scenario, briefing)
    rows = sum(_n_racers(briefing, oid) for oid, _ in panels)
    inches = MARGIN_IN + PANEL_IN * max(1, len(panels)) + ROW_IN * max(1, rows)
    return int(round(inches * dpi))


def _n_racers(briefing: Briefing, oid: str) -> int:
    return sum(1 for f in forces(briefing) if oid in (f.get("objectives") or {}))


def _race_note(briefing: Briefing, oid: str) -> str:
    race = (briefing.get("races") or {}).get(oid)
    if not isinstance(race, Mapping):
        return ""
    names = force_names(briefing)
    decided = race.get("decided")
    if isinstance(decided, Mapping) and decided.get("winner"):
        w = str(decided["winner"])
        return f"decided: {names.get(w, w)} ({when(decided.get('at'))})"
    parts = [f"{names[f]} {pct(p)}" for f, p in race_odds(race, names)[:3]]
    if is_num(race.get("nobody")):
        parts.append(f"nobody {pct(race['nobody'])}")
    return "first: " + " · ".join(parts)


def _from_eta(entry: Mapping[str, Any], x0: float) -> list[float | None] | None:
    """Quantiles from ``eta`` p10/p50/p90 when ``eta_days`` is missing (q05 = q10 and
    q95 = q90: the thin bar then adds nothing), or None without any ETA."""
    eta = entry.get("eta")
    if not isinstance(eta, Mapping) or not any(eta.get(k) for k in ("p10", "p50", "p90")):
        return None

    def days(key: str) -> float | None:
        dt = parse_iso(eta.get(key))
        return None if dt is None else float(mdates.date2num(dt)) - x0

    q: list[float | None] = [None] * 19
    q[Q05] = q[Q10] = days("p10")
    q[Q50] = days("p50")
    q[Q90] = q[Q95] = days("p90")
    return q


def _draw_row(ax: Axes, y: float, entry: Mapping[str, Any], color: str, x0: float,
              x1: float, horizon: float) -> None:
    """One force's arrival distribution (or reached marker, or a note) on row ``y``."""
    reached = parse_iso(entry.get("reached_at"))
    if reached is not None:
        xr = float(mdates.date2num(reached))
        if xr < x0:  # before as_of: pinned just inside the left edge
            xr = x0 + 0.006 * horizon
        ax.plot([xr], [y], marker="D", ms=7, color=color, mec="black", mew=0.7, zorder=6)
        prefix = "◀ " if reached < mdates.num2date(x0) else ""
        ax.annotate(f"{prefix}reached {when(entry.get('reached_at'))}", (xr, y),
                    xytext=(8, 0), textcoords="offset points", va="center", fontsize=7.5,
                    color="#333333")
        return
    q = eta_quantiles(entry.get("eta_days"))
    if q is None:
        q = _from_eta(entry, x0)
    within = entry.get("p_within_horizon")
    if q is None and is_num(within) and within <= 0:
        q = [None] * 19
    if q is None:
        ax.annotate("no estimate", (x0, y), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize=7.5, color=style.GREY, style="italic")
        return

    def x(v: float | None) -> float:
        return x1 if v is None else x0 + min(max(v, 0.0), horizon)

    if q[Q05] is None:
        ax.plot([x1], [y], marker=">", ms=8, color=color, zorder=6, clip_on=False)
        note = "beyond the horizon"
        if is_num(within):
            note += f" ({pct(within)} within)"
        ax.annotate(note, (x1, y), xytext=(-9, 0), textcoords="offset points", ha="right",
                    va="center", fontsize=7.5, color="#333333")
        return
    ax.plot([x(q[Q05]), x(q[Q95])], [y, y], color=color, lw=1.6, zorder=4,
            solid_capstyle="butt")
    if q[Q10] is not None:
        ax.plot([x(q[Q10]), x(q[Q90])], [y, y], color=color, lw=7.5, zorder=5,
                solid_capstyle="butt", alpha=0.9)
    if q[Q50] is not None:
        xm = x(q[Q50])
        ax.plot([xm, xm], [y - 0.3, y + 0.3], color="black", lw=1.6, zorder=6)
        ax.annotate(mdates.num2date(xm).strftime("%d %b %H:%M"), (xm, y - 0.3),
                    xytext=(0, 1), textcoords="offset points", ha="center", va="bottom",
                    fontsize=6.5, color="#222222")
    if q[Q95] is None:
        ax.plot([x1], [y], marker=">", ms=8, color=color, zorder=6, clip_on=False)
        if is_num(within):
            ax.annotate(f"{pct(within)} within", (x1, y), xytext=(-9, 6),
                        textcoords="offset points", ha="right", va="bottom", fontsize=6.5,
                        color="#333333")


def _draw_plans(ax: Axes, briefing: Briefing, oid: str, x0: float, x1: float) -> None:
    names = force_names(briefing)
    plans = [t for t in briefing.get("timetable") or []
             if isinstance(t, Mapping) and t.get("objective") == oid
             and parse_iso(t.get("planned")) is not None]
    for i, t in enumerate(plans):
        xp = mdates.date2num(parse_iso(t["planned"]))
        who = names.get(str(t.get("force")), str(t.get("force")))
        label = "plan" if len(plans) == 1 else f"plan: {who}"
        y_text = 1.0 - 0.001 - 0.16 * i
        if x0 <= xp <= x1:
            ax.axvline(xp, color=style.PLAN, ls=(0, (4, 3)), lw=1.3, zorder=3)
            ax.annotate(label, (xp, y_text), xycoords=("data", "axes fraction"),
                        xytext=(3, -1), textcoords="offset points", va="top", fontsize=7,
                        color=style.PLAN, fontweight="bold")
        else:
            past = xp < x0
            ax.annotate(f"{label} {day(t['planned'])} ({'passed' if past else 'later'})",
                        (x0 if past else x1, y_text), xycoords=("data", "axes fraction"),
                        xytext=(3 if past else -3, -1), textcoords="offset points",
                        ha="left" if past else "right", va="top", fontsize=7,
                        color=style.PLAN)


def draw_eta_chart(fig: Figure, scenario: Scenario | None, briefing: Briefing,
                   rect: Rect = FULL) -> list[Axes]:
    """Draw the ETA chart of ``briefing`` on ``fig`` within ``rect`` (figure fraction: left,
    bottom, width, height); returns the panels' axes."""
    as_of = parse_iso(briefing.get("as_of"))
    h = briefing.get("horizon_days")
    horizon = float(h) if is_num(h) and h > 0 else 30.0
    title = f"Arrival forecasts — as of {stamp(briefing.get('as_of'))}"
    if briefing.get("late"):
        title += " (late)"
    h_in = float(fig.get_size_inches()[1])
    left, bottom, top = rect[0], rect[1], rect[1] + rect[3]
    fig.text(left + 0.02 * rect[2], top - 0.12 / h_in, title, ha="left", va="top", fontsize=11,
             fontweight="bold")
    fig.text(left + 0.02 * rect[2], top - 0.42 / h_in, KEY, fontsize=7, color="#444444",
             va="top")
    panels = chart_objectives(scenario, briefing)
    if as_of is None or not panels:
        ax = fig.add_axes(sub_rect(rect, (0.05, 0.05, 0.9, 0.75)))
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no arrival forecasts to chart", ha="center", va="center",
                fontsize=10, color=style.GREY, transform=ax.transAxes)
        return [ax]
    colors = style.force_colors(scenario, briefing)
    x0 = float(mdates.date2num(as_of))
    x1 = x0 + horizon
    ratios = [_n_racers(briefing, oid) + 0.6 for oid, _ in panels]
    g_top, g_bottom = top - 0.95 / h_in, bottom + 0.55 / h_in
    n = len(panels)
    room_in = max((g_top - g_bottom) * h_in - (n - 1) * GAP_IN, 0.1)
    gs = fig.add_gridspec(n, 1, height_ratios=ratios, left=left + 0.2 * rect[2],
                          right=left + 0.97 * rect[2], top=g_top, bottom=g_bottom,
                          hspace=GAP_IN * n / room_in)
    axes: list[Axes] = []
    for k, (oid, name) in enumerate(panels):
        ax = fig.add_subplot(gs[k], sharex=axes[0] if axes else None)
        axes.append(ax)
        rows = [f for f in forces(briefing) if oid in (f.get("objectives") or {})]
        for i, f in enumerate(rows):
            entry = f["objectives"][oid] or {}
            _draw_row(ax, float(i), entry, colors.get(str(f["id"]), style.GREY), x0, x1,
                      horizon)
        ax.set_ylim(len(rows) - 0.4, -0.75)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([str(f.get("name") or f["id"]) for f in rows], fontsize=8)
        for tick, f in zip(ax.get_yticklabels(), rows, strict=True):
            tick.set_color(colors.get(str(f["id"]), style.GREY))
            tick.set_fontweight("bold")
        ax.set_xlim(x0, x1)
        ax.grid(True, axis="x", color="#dddddd", lw=0.6)
        ax.tick_params(axis="y", length=0)
        ax.tick_params(axis="x", labelsize=7.5)
        ax.set_title(name, loc="left", fontsize=9.5, fontweight="bold")
        ax.set_title(_race_note(briefing, oid), loc="right", fontsize=7.5, color="#333333")
        _draw_plans(ax, briefing, oid, x0, x1)
        if k < len(panels) - 1:
            ax.tick_params(axis="x", labelbottom=False)
    step = max(1, round(horizon / 8))
    first = math.ceil(x0)
    axes[-1].xaxis.set_major_locator(FixedLocator(
        [first + step * i for i in range(int((x1 - first) // step) + 1)]))
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    return axes


def render_eta_chart(scenario: Scenario | None, briefing: Briefing, width_px: int = 1600,
                     height_px: int | None = None, dpi: float = 160) -> bytes:
    """The ETA chart as PNG bytes; ``height_px`` None = as tall as the rows need."""
    if height_px is None:
        height_px = chart_height_px(scenario, briefing, dpi)
    fig = style.new_figure(width_px, height_px, dpi)
    draw_eta_chart(fig, scenario, briefing)
    return style.png_bytes(fig)
