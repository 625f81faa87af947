"""Shared look of the figures: one colour per force, fonts, PNG output without metadata URLs.

Colours: forces of our side (the briefing's ``perspective``, or the force's ``ours`` flag) get
shades of red, each rival side a family of its own (blues first, then greens, purples,
browns). With no perspective every side gets a non-red family. The assignment follows the
scenario's force order, so a force keeps its colour from one briefing to the next.

Figures are plain :class:`matplotlib.figure.Figure` objects drawn on the Agg canvas (no
pyplot, no global state: safe in threads); only the fonts bundled with matplotlib are used.
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from warroom.domain import Scenario
from warroom.publish.fmt import Briefing, forces, is_ours

OURS = ("#d62728", "#8c1010", "#f46d43", "#c51b7d", "#e7298a")
RIVALS = (
    ("#1f4e9c", "#2b9de0", "#0f8b8d", "#5e60ce", "#74a9cf"),  # blues
    ("#2ca02c", "#1b5e20", "#8bc34a", "#00796b"),  # greens
    ("#6a3d9a", "#9e7cc1", "#3f007d"),  # purples
    ("#8c564b", "#bf812d", "#543005"),  # browns
)
GREY = "#7f7f7f"
RIVER = "#4a90c8"
LINE = "#8b1a1a"
PLAN = "#8b1a1a"
OBJECTIVE = "#b8860b"
FONT = "DejaVu Sans"
MONO = "DejaVu Sans Mono"
Rect = tuple[float, float, float, float]
"""left, bottom, width, height as fractions of the figure."""
FULL: Rect = (0.0, 0.0, 1.0, 1.0)
PNG_METADATA: dict[str, str | None] = {"Software": None}  # drop matplotlib's URL


def perspective(scenario: Scenario | None, briefing: Briefing) -> str | None:
    """Our side: the briefing's perspective, else the scenario's."""
    p = briefing.get("perspective")
    if p is None and scenario is not None:
        p = scenario.perspective
    return None if p is None else str(p)


def force_sides(scenario: Scenario | None, briefing: Briefing) -> dict[str, tuple[str, bool]]:
    """Force id -> (side, ours) in scenario order, then any force only the briefing knows."""
    persp = perspective(scenario, briefing)
    by_id = {str(f["id"]): f for f in forces(briefing)}
    out: dict[str, tuple[str, bool]] = {}
    if scenario is not None:
        for fid, force in scenario.forces.items():
            entry = by_id.get(fid, {"side": force.side})
            out[fid] = (str(entry.get("side", force.side)), is_ours(entry, persp))
    for fid, entry in by_id.items():
        out.setdefault(fid, (str(entry.get("side")), is_ours(entry, persp)))
    return out


def force_colors(scenario: Scenario | None, briefing: Briefing) -> dict[str, str]:
    """Force id -> hex colour: reds for our side, a blue/green/... family per rival side."""
    families: dict[str, tuple[str, ...]] = {}
    used: dict[str, int] = {}
    out: dict[str, str] = {}
    for fid, (side, ours) in force_sides(scenario, briefing).items():
        key = "\0ours" if ours else side
        if key not in families:
            n_rival = sum(1 for k in families if k != "\0ours")
            families[key] = OURS if ours else RIVALS[n_rival % len(RIVALS)]
        fam = families[key]
        i = used.get(key, 0)
        used[key] = i + 1
        out[fid] = fam[i % len(fam)]
    return out


def sub_rect(outer: Rect, inner: Rect) -> Rect:
    """``inner`` (fractions of ``outer``) as fractions of the figure."""
    return (outer[0] + inner[0] * outer[2], outer[1] + inner[1] * outer[3],
            inner[2] * outer[2], inner[3] * outer[3])


def new_figure(width_px: int, height_px: int, dpi: float) -> Figure:
    """A Figure of exactly ``width_px`` x ``height_px`` pixels at ``dpi``, on an Agg canvas."""
    if width_px < 16 or height_px < 16:
        raise ValueError(f"image too small: {width_px}x{height_px} px")
    if dpi <= 0:
        raise ValueError(f"dpi must be positive, not {dpi}")
    # a hair over the exact size so float rounding never loses the last pixel row
    fig = Figure(figsize=((width_px + 0.25) / dpi, (height_px + 0.25) / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.patch.set_facecolor("white")
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (no metadata naming a web site)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, metadata=PNG_METADATA, facecolor="white")
    return buf.getvalue()
