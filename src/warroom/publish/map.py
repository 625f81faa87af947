"""The situation map: routes, rivers, lines, objectives, tracks, positions and forecast fans.

Offline: no tiles, no web fonts, only the scenario's own geometry. The projection is
equirectangular (x = longitude, y = latitude) with the axes' aspect set to 1/cos(mid-latitude),
so distances look right around the middle of the map. The frame covers every route vertex and
every point objective, padded 5 %, then widened to fill the axes.

Briefing fields used, per force (``briefing["forces"][i]``; any may be null)::

    "id", "name", "side", "ours"
    "position": {"lat", "lon", "place", "s_km", "s_sd_km"}   # dot + circle of radius s_sd_km
    "track": [[time, s_km], ...]                             # smoothed history, thick line
    "fan": {"24h": {"p10", "p50", "p90"}, "72h": {...}}      # km along the route: bands
    "objectives": {id: {"reached_at", ...}}                  # "reached" notes on objectives
    "last_report": {"place", ...}

plus ``"scenario"``, ``"as_of"``, ``"late"`` and ``"perspective"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse, Patch
from matplotlib.ticker import FuncFormatter

from warroom.domain import Feature, Scenario
from warroom.geo import EARTH_RADIUS_KM, Route
from warroom.publish import style
from warroom.publish.fmt import Briefing, forces, is_num, is_ours, parse_iso, short_name, stamp
from warroom.publish.labels import HALO, Labeler
from warroom.publish.style import FULL, Rect, sub_rect

KM_PER_DEG = EARTH_RADIUS_KM * math.pi / 180.0
MAX_PLACE_LABELS = 18
NEAR_ROUTE_KM = 4.0
AXES_RECT = (0.055, 0.05, 0.925, 0.88)  # left, bottom, width, height (figure fraction)


@dataclass(frozen=True)
class Frame:
    """The plotted box in degrees, the longitude the map is centred on, and cos(mid-lat)."""

    lon0: float
    lon1: float
    lat0: float
    lat1: float
    lon_c: float
    k: float

    def wrap(self, lon: Any) -> Any:
        """Longitudes unwrapped to within 180 degrees of the centre (no dateline jumps)."""
        return (np.asarray(lon, dtype=float) - self.lon_c + 180.0) % 360.0 - 180.0 + self.lon_c

    def inside(self, lon: Any, lat: Any) -> Any:
        """Whether points (already wrapped) lie in the box."""
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        return (lon >= self.lon0) & (lon <= self.lon1) & (lat >= self.lat0) & (lat <= self.lat1)


def _point_objectives(scenario: Scenario) -> list[tuple[str, Feature, float]]:
    """(objective name, point feature, radius km) of the point objectives."""
    out = []
    for obj in scenario.objectives.values():
        feat = scenario.features.get(obj.feature)
        if feat is not None and feat.geometry == "Point" and feat.coords:
            out.append((obj.name, feat, float(obj.radius_km)))
    return out


def frame_for(scenario: Scenario, aspect_px: float) -> Frame:
    """The box around all routes' vertices and point objectives, padded 5 %, widened to the
    axes' pixel aspect ``aspect_px`` (width / height)."""
    lons: list[np.ndarray] = [f.route.lon for f in scenario.forces.values()]
    lats: list[np.ndarray] = [f.route.lat for f in scenario.forces.values()]
    for _, feat, radius in _point_objectives(scenario):
        lon, lat = feat.coords[0]
        dlat = radius / KM_PER_DEG
        dlon = dlat / max(math.cos(math.radians(lat)), 0.05)
        lons.append(np.array([lon - dlon, lon + dlon]))
        lats.append(np.array([lat - dlat, lat + dlat]))
    if not lons:  # no routes: whatever geometry there is
        pts = [c for f in scenario.features.values() for c in f.coords]
        lons = [np.array([p[0] for p in pts] or [-180.0, 180.0])]
        lats = [np.array([p[1] for p in pts] or [-90.0, 90.0])]
    lon = np.concatenate(lons)
    lat = np.concatenate(lats)
    ang = np.radians(lon)
    lon_c = float(np.degrees(np.arctan2(np.sin(ang).mean(), np.cos(ang).mean())))
    lon = (lon - lon_c + 180.0) % 360.0 - 180.0 + lon_c
    lo0, lo1 = float(lon.min()), float(lon.max())
    la0, la1 = float(lat.min()), float(lat.max())
    k = max(math.cos(math.radians((la0 + la1) / 2)), 0.05)
    pad_x = max(lo1 - lo0, 0.1) * 0.05
    pad_y = max(la1 - la0, 0.1) * 0.05
    lo0, lo1, la0, la1 = lo0 - pad_x, lo1 + pad_x, la0 - pad_y, la1 + pad_y
    w, h = (lo1 - lo0) * k, la1 - la0
    if w / h < aspect_px:  # too tall: widen
        extra = (aspect_px * h / k - (lo1 - lo0)) / 2
        lo0, lo1 = lo0 - extra, lo1 + extra
    else:  # too wide: heighten
        extra = (w / aspect_px - h) / 2
        la0, la1 = la0 - extra, la1 + extra
        shift = max(0.0, -90.0 - la0) - max(0.0, la1 - 90.0)  # stay on the globe
        la0, la1 = max(la0 + shift, -90.0), min(la1 + shift, 90.0)
    return Frame(lo0, lo1, la0, la1, lon_c, k)


def _route_xy(route: Route, frame: Frame, s: Any) -> tuple[np.ndarray, np.ndarray]:
    lat, lon = route.point_at(np.atleast_1d(np.asarray(s, dtype=float)))
    return frame.wrap(lon), np.asarray(lat)


def _feature_xy(feat: Feature, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(feat.coords, dtype=float).reshape(-1, 2)
    return frame.wrap(arr[:, 0]), arr[:, 1]


def _label_anchors(x: np.ndarray, y: np.ndarray, frame: Frame,
                   n: int = 12) -> list[tuple[float, float]]:
    """Up to ``n`` vertices of a line inside the box, the middle one first."""
    idx = np.flatnonzero(frame.inside(x, y))
    if idx.size == 0:
        return []
    mid = idx.size // 2
    order = sorted(range(idx.size), key=lambda j: abs(j - mid))
    step = max(1, len(order) // n)
    return [(float(x[idx[j]]), float(y[idx[j]])) for j in order[::step][:n]]


def _km_circle(x: float, y: float, r_km: float, **kw: Any) -> Ellipse:
    dlat = r_km / KM_PER_DEG
    dlon = dlat / max(math.cos(math.radians(y)), 0.05)
    return Ellipse((x, y), 2 * dlon, 2 * dlat, **kw)


def _setup_axes(fig: Figure, scenario: Scenario, briefing: Briefing,
                rect: Rect) -> tuple[Axes, Frame]:
    box = sub_rect(rect, AXES_RECT)
    ax = fig.add_axes(box)
    w_in, h_in = fig.get_size_inches()
    frame = frame_for(scenario, (box[2] * w_in) / (box[3] * h_in))
    ax.set_xlim(frame.lon0, frame.lon1)
    ax.set_ylim(frame.lat0, frame.lat1)
    ax.set_aspect(1.0 / frame.k, adjustable="box")
    ax.set_facecolor("#fbfaf6")
    ax.grid(True, color="#dddddd", lw=0.5, ls=":")
    ax.tick_params(labelsize=6, length=2, colors="#555555")

    def deg(v: float, pos_h: str, neg_h: str) -> str:
        v = (v + 180.0) % 360.0 - 180.0 if pos_h == "E" else v  # unwrapped longitudes
        return f"{abs(v):g}°{pos_h if v >= 0 else neg_h}"

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: deg(v, "E", "W")))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: deg(v, "N", "S")))
    name = str(briefing.get("scenario") or scenario.name)
    title = f"{name} — as of {stamp(briefing.get('as_of'))}"
    if briefing.get("late"):
        title += " (late)"
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    persp = style.perspective(scenario, briefing)
    if persp is not None:
        side = scenario.sides.get(persp)
        ax.set_title(f"our side: {side.name if side else persp}", loc="right", fontsize=7,
                     color="#555555")
    return ax, frame


def _draw_world(ax: Axes, scenario: Scenario, frame: Frame) -> None:
    """Rivers (line objectives emphasised) and demarcation/halt lines."""
    goals = {o.feature for o in scenario.objectives.values()}
    for feat in scenario.features.values():
        if feat.kind == "river" and feat.geometry == "LineString":
            x, y = _feature_xy(feat, frame)
            ax.plot(x, y, color=style.RIVER, lw=2.0 if feat.id in goals else 0.8, zorder=2,
                    solid_capstyle="round")
    for line in scenario.lines.values():
        feat = scenario.features.get(line.feature)
        if feat is not None and feat.geometry == "LineString":
            x, y = _feature_xy(feat, frame)
            ax.plot(x, y, color=style.LINE, lw=1.3, ls=(0, (5, 3)), zorder=3)


def _label_world(scenario: Scenario, frame: Frame, labeler: Labeler) -> None:
    """Labels of the lines, then of the rivers, where there is room."""
    for line in scenario.lines.values():
        feat = scenario.features.get(line.feature)
        if feat is not None and feat.geometry == "LineString":
            labeler.add_any(_label_anchors(*_feature_xy(feat, frame), frame),
                            short_name(line.name), size=6.5, color=style.LINE, style="italic",
                            dx_pt=4, dy_pt=4)
    goals = {o.feature for o in scenario.objectives.values()}
    for feat in scenario.features.values():
        if feat.kind == "river" and feat.geometry == "LineString":
            goal = feat.id in goals
            labeler.add_any(_label_anchors(*_feature_xy(feat, frame), frame),
                            f"{feat.label} (objective)" if goal else feat.label, size=6.5,
                            color=style.RIVER, style="italic",
                            fontweight="bold" if goal else "normal", dx_pt=2, dy_pt=-2,
                            va="top")


def _reached_notes(briefing: Briefing) -> dict[str, list[tuple[str, str]]]:
    """Objective id -> [(force name, reached_at)] earliest first."""
    out: dict[str, list[tuple[str, str]]] = {}
    for f in forces(briefing):
        for oid, o in (f.get("objectives") or {}).items():
            at = (o or {}).get("reached_at")
            if at and parse_iso(at) is not None:
                out.setdefault(oid, []).append((str(f.get("name") or f["id"]), str(at)))
    for notes in out.values():
        notes.sort(key=lambda n: parse_iso(n[1]) or 0)
    return out


def _draw_objectives(ax: Axes, scenario: Scenario, briefing: Briefing, frame: Frame,
                     labeler: Labeler) -> None:
    reached = _reached_notes(briefing)
    for oid, obj in scenario.objectives.items():
        feat = scenario.features.get(obj.feature)
        if feat is None or feat.geometry != "Point" or not feat.coords:
            continue
        x = float(frame.wrap(feat.coords[0][0]))
        y = float(feat.coords[0][1])
        if obj.radius_km > 0:
            ax.add_patch(_km_circle(x, y, obj.radius_km, facecolor=style.OBJECTIVE, alpha=0.15,
                                    edgecolor=style.OBJECTIVE, lw=1.2, zorder=5))
        ax.plot([x], [y], marker="*", ms=11, color=style.OBJECTIVE, mec="black", mew=0.6,
                zorder=12)
        labeler.reserve(x, y, 6)
        text = obj.name
        if oid in reached:
            who, at = reached[oid][0]
            text += f"\nreached: {who}, {stamp(at)[5:]}"
        labeler.add(x, y, text, size=8, fontweight="bold", dx_pt=7, dy_pt=-3, va="top",
                    force=True)


def _draw_routes(ax: Axes, scenario: Scenario, frame: Frame, colors: Mapping[str, str]) -> None:
    for fid, force in scenario.forces.items():
        ax.plot(frame.wrap(force.route.lon), force.route.lat, color=colors.get(fid, style.GREY),
                lw=1.2, alpha=0.9, zorder=6, solid_capstyle="round")


def _num_triplet(seg: Any) -> tuple[float, float, float] | None:
    if not isinstance(seg, Mapping):
        return None
    vals = [seg.get(k) for k in ("p10", "p50", "p90")]
    if not all(is_num(v) for v in vals):
        return None
    lo, mid, hi = (float(v) for v in vals)
    return min(lo, hi), mid, max(lo, hi)


def _draw_fan(ax: Axes, route: Route, frame: Frame, fan: Any, color: str) -> None:
    """p10-p90 of km along the route at +72 h (wide, light) and +24 h, with p50 ticks."""
    if not isinstance(fan, Mapping):
        return
    tick_len = 0.012 * (frame.lat1 - frame.lat0)
    for key, lw, alpha in (("72h", 13.0, 0.2), ("24h", 8.0, 0.42)):
        trip = _num_triplet(fan.get(key))
        if trip is None:
            continue
        lo, mid, hi = trip
        n = int(min(400, max(2, math.ceil((hi - lo) / 2.0) + 1)))
        x, y = _route_xy(route, frame, np.linspace(lo, hi, n))
        if hi - lo < 0.5:
            ax.plot(x[:1], y[:1], marker="o", ms=lw, color=color, alpha=alpha, zorder=7,
                    ls="none")
        else:
            ax.plot(x, y, color=color, lw=lw, alpha=alpha, zorder=7, solid_capstyle="butt")
        (xa, xb), (ya, yb) = _route_xy(route, frame, [mid - 1.0, mid + 1.0])
        xm, ym = _route_xy(route, frame, mid)
        dx, dy = (xb - xa) * frame.k, yb - ya
        norm = math.hypot(dx, dy) or 1.0
        px, py = -dy / norm, dx / norm
        ax.plot([xm[0] - px * tick_len / frame.k, xm[0] + px * tick_len / frame.k],
                [ym[0] - py * tick_len, ym[0] + py * tick_len], color="black", lw=1.2,
                zorder=8, solid_capstyle="butt")


def _draw_track(ax: Axes, route: Route, frame: Frame, track: Any, color: str) -> None:
    if not isinstance(track, Sequence) or isinstance(track, str):
        return
    s = [float(p[1]) for p in track
         if isinstance(p, Sequence) and len(p) >= 2 and is_num(p[1])]
    if not s:
        return
    if len(s) > 1:  # follow the route between reports (every ~2 km), not chords across it
        s = list(np.concatenate([np.linspace(a, b, max(2, int(abs(b - a) / 2) + 2))
                                 for a, b in zip(s[:-1], s[1:], strict=True)]))
    x, y = _route_xy(route, frame, s)
    if len(s) == 1:
        ax.plot(x, y, marker="o", ms=3, color=color, zorder=9, ls="none")
    else:
        ax.plot(x, y, color=color, lw=3.2, zorder=9, solid_capstyle="round",
                solid_joinstyle="round")


def _draw_forces(ax: Axes, scenario: Scenario, briefing: Briefing, frame: Frame,
                 colors: Mapping[str, str], labeler: Labeler) -> None:
    for f in forces(briefing):
        fid = str(f["id"])
        color = colors.get(fid, style.GREY)
        force = scenario.forces.get(fid)
        route = force.route if force is not None else None
        name = str(f.get("name") or fid)
        if route is not None:
            _draw_fan(ax, route, frame, f.get("fan"), color)
            _draw_track(ax, route, frame, f.get("track"), color)
        pos = f.get("position")
        if isinstance(pos, Mapping) and is_num(pos.get("lat")) and is_num(pos.get("lon")):
            x, y = float(frame.wrap(pos["lon"])), float(pos["lat"])
            sd = pos.get("s_sd_km")
            if is_num(sd) and sd > 0:
                ax.add_patch(_km_circle(x, y, float(sd), facecolor=color, alpha=0.22,
                                        edgecolor=color, lw=0.9, zorder=10))
            ax.plot([x], [y], marker="o", ms=6.5, color=color, mec="black", mew=0.8, zorder=11)
            labeler.reserve(x, y, 5)
            labeler.add(x, y, name, size=7.5, color=color, fontweight="bold", dx_pt=6,
                        dy_pt=4, force=True)
        elif route is not None:
            x, y = float(frame.wrap(route.lon[0])), float(route.lat[0])
            ax.plot([x], [y], marker="o", ms=5, mfc="white", mec=color, mew=1.2, zorder=11)
            labeler.add(x, y, f"{name}\n(no reports)", size=7, color=color, style="italic",
                        dx_pt=6, dy_pt=-4, va="top", force=True)


def _near_routes(scenario: Scenario, lon: np.ndarray, lat: np.ndarray, frame: Frame) -> np.ndarray:
    """Whether each place is within NEAR_ROUTE_KM of some route (planar approximation)."""
    near = np.zeros(lon.shape, dtype=bool)
    for force in scenario.forces.values():
        r = force.route
        rx, ry = frame.wrap(r.lon_dense), r.lat_dense
        for a in range(0, lon.size, 256):
            dx = (lon[a:a + 256, None] - rx[None, :]) * np.cos(np.radians(lat[a:a + 256, None]))
            dy = lat[a:a + 256, None] - ry[None, :]
            d = np.sqrt(dx * dx + dy * dy).min(axis=1) * KM_PER_DEG
            near[a:a + 256] |= d <= NEAR_ROUTE_KM
    return near


def _draw_places(ax: Axes, scenario: Scenario, briefing: Briefing, frame: Frame,
                 labeler: Labeler) -> None:
    """Grey dots; labels for objective names, forces' current places, then spread-out places
    near a route, at most MAX_PLACE_LABELS and never overlapping."""
    places = [p for p in scenario.places if p.coords]
    if not places:
        return
    lon = frame.wrap(np.array([p.coords[0][0] for p in places]))
    lat = np.array([p.coords[0][1] for p in places])
    inside = frame.inside(lon, lat)
    ax.plot(lon[inside], lat[inside], ls="none", marker="o", ms=2.2, color="#9a9a9a",
            zorder=4)
    goal_names = {n.casefold() for o in scenario.objectives.values()
                  for n in (o.name, short_name(o.name))}
    current = set()
    for f in forces(briefing):
        for key in ("position", "last_report"):
            entry = f.get(key)
            if isinstance(entry, Mapping) and entry.get("place"):
                current.add(str(entry["place"]).casefold())
    near = _near_routes(scenario, lon, lat, frame)
    # isolation: distance to the nearest other place (spread labels out)
    dx = (lon[:, None] - lon[None, :]) * frame.k
    dy = lat[:, None] - lat[None, :]
    dist = np.sqrt(dx * dx + dy * dy)
    np.fill_diagonal(dist, np.inf)
    isolation = dist.min(axis=1)
    order = []
    for i, p in enumerate(places):
        if not inside[i]:
            continue
        name = p.label.casefold()
        if name in goal_names:
            order.append((0, 0.0, i))
        elif name in current:
            order.append((1, 0.0, i))
        elif near[i]:
            order.append((2, -float(isolation[i]), i))
    order.sort()
    n = 0
    for _, _, i in order:
        if n >= MAX_PLACE_LABELS:
            break
        if labeler.add(float(lon[i]), float(lat[i]), places[i].label, size=6.2,
                       color="#444444", dx_pt=2.5, dy_pt=1.5):
            n += 1


def _scale_bar(ax: Axes, frame: Frame) -> None:
    width_km = (frame.lon1 - frame.lon0) * frame.k * KM_PER_DEG
    target = width_km / 6
    nice = max((v for v in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000)
                if v <= target), default=1)
    x0 = frame.lon0 + 0.03 * (frame.lon1 - frame.lon0)
    y0 = frame.lat0 + 0.035 * (frame.lat1 - frame.lat0)
    dlon = nice / (KM_PER_DEG * max(math.cos(math.radians(y0)), 0.05))
    ax.plot([x0, x0 + dlon], [y0, y0], color="black", lw=2.5, solid_capstyle="butt", zorder=15)
    ax.annotate(f"{nice:g} km", (x0 + dlon / 2, y0), xytext=(0, 3), textcoords="offset points",
                ha="center", va="bottom", fontsize=7, zorder=15, path_effects=HALO)


def _legend(ax: Axes, briefing: Briefing, colors: Mapping[str, str], persp: str | None,
            labeler: Labeler) -> None:
    handles: list[Any] = []
    for f in forces(briefing):
        fid = str(f["id"])
        ours = is_ours(f, persp)
        label = str(f.get("name") or fid) + (" (ours)" if ours else "")
        handles.append(Line2D([], [], color=colors.get(fid, style.GREY), lw=2.5, label=label))
    grey = "#555555"
    handles += [
        Line2D([], [], color=grey, lw=1.2, label="route (axis of advance)"),
        Line2D([], [], color=grey, lw=3.2, label="track (smoothed)"),
        Line2D([], [], color=grey, marker="o", mec="black", ls="none", ms=6,
               label="position, circle = ±1σ along route"),
        Patch(facecolor=grey, alpha=0.42, label="forecast +24 h (p10–p90)"),
        Patch(facecolor=grey, alpha=0.2, label="forecast +72 h (p10–p90)"),
        Line2D([], [], color="black", marker="|", ls="none", ms=8, label="forecast median"),
        Line2D([], [], color=style.OBJECTIVE, marker="*", ls="none", ms=10, mec="black",
               mew=0.5, label="objective (circle = reached within)"),
        Line2D([], [], color=style.RIVER, lw=1.0, label="river"),
        Line2D([], [], color=style.LINE, lw=1.3, ls=(0, (5, 3)), label="demarcation / halt line"),
    ]
    leg = ax.legend(handles=handles, loc="upper left", fontsize=6.3, framealpha=0.92,
                    borderpad=0.6, labelspacing=0.45, handlelength=2.4)
    leg.set_zorder(30)
    box = leg.get_window_extent(ax.figure.canvas.get_renderer())
    labeler.boxes.append((box.x0, box.y0, box.x1, box.y1))  # no labels under the legend


def draw_map(fig: Figure, scenario: Scenario, briefing: Briefing,
             rect: Rect = FULL) -> Axes:
    """Draw the situation map of ``briefing`` on ``fig`` (any size) within ``rect`` (figure
    fraction: left, bottom, width, height); returns the map axes."""
    ax, frame = _setup_axes(fig, scenario, briefing, rect)
    colors = style.force_colors(scenario, briefing)
    labeler = Labeler(ax)
    _legend(ax, briefing, colors, style.perspective(scenario, briefing), labeler)
    _draw_world(ax, scenario, frame)
    _draw_routes(ax, scenario, frame, colors)
    _draw_objectives(ax, scenario, briefing, frame, labeler)
    _draw_forces(ax, scenario, briefing, frame, colors, labeler)
    _label_world(scenario, frame, labeler)
    _draw_places(ax, scenario, briefing, frame, labeler)
    _scale_bar(ax, frame)
    ax.set_xlim(frame.lon0, frame.lon1)
    ax.set_ylim(frame.lat0, frame.lat1)
    return ax


def render_map(scenario: Scenario, briefing: Briefing, width_px: int = 1600,
               height_px: int = 1200, dpi: float = 160) -> bytes:
    """The situation map as PNG bytes of exactly ``width_px`` x ``height_px`` pixels.

    Text sizes are in points, so a smaller image keeps its layout at a proportionally lower
    ``dpi`` (e.g. 400 x 300 at dpi 40).
    """
    fig = style.new_figure(width_px, height_px, dpi)
    draw_map(fig, scenario, briefing)
    return style.png_bytes(fig)
