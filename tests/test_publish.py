"""Renderers of a briefing: Markdown, HTML, JSON, PDF, the map and the ETA chart.

The briefing used here is built by :func:`make_briefing` on the real berlin1945 scenario and
follows the briefing schema (version 1) field by field: forces with and without reports, a
decided race, an objective reached, alerts empty and full, disregarded reports.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import re
import shutil
import struct
import subprocess
import sys
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from warroom import scenario as scenario_mod
from warroom.domain import Scenario
from warroom.geo import distance_km
from warroom.timeutil import parse_time, to_iso

AS_OF = "1945-04-12T12:00:00Z"
PREVIOUS = "1945-04-12T06:00:00Z"
HORIZON = 30
PNG_SIG = b"\x89PNG\r\n\x1a\n"
# z-scores of the 19 quantiles q05..q95 of a standard normal
Z19 = [-1.6449, -1.2816, -1.0364, -0.8416, -0.6745, -0.5244, -0.3853, -0.2533, -0.1257, 0.0,
       0.1257, 0.2533, 0.3853, 0.5244, 0.6745, 0.8416, 1.0364, 1.2816, 1.6449]
LEVELS = [round(0.05 * k, 2) for k in range(1, 20)]


# -- a plausible briefing on the real scenario ------------------------------------------------

def _eta_days(median: float, sigma: float, p_within: float = 1.0) -> list[float | None]:
    """Lognormal quantiles; those above ``p_within`` (or the horizon) are beyond: null."""
    out: list[float | None] = []
    for q, z in zip(LEVELS, Z19, strict=True):
        d = median * math.exp(sigma * z)
        out.append(None if q > p_within + 1e-9 or d > HORIZON else round(d, 3))
    return out


def _iso_after(days: float | None) -> str | None:
    return None if days is None else to_iso(parse_time(AS_OF) + days * 86400)


def _objective(name: str, km_to_go: float | None, eta_days: list[float | None] | None, *,
               p_within: float | None, planned: str | None = None,
               timetable_of: str | None = None, p_before: float | None = None,
               p_first: float | None = None, reached_at: str | None = None) -> dict[str, Any]:
    if reached_at is not None:
        days = (parse_time(reached_at) - parse_time(AS_OF)) / 86400
        eta_days = [round(days, 3)] * 19
        eta = {k: reached_at for k in ("p10", "p50", "p90")}
        km_to_go = 0.0
    elif eta_days is None:
        eta = {"p10": None, "p50": None, "p90": None}
    else:
        eta = {k: _iso_after(eta_days[i]) for k, i in (("p10", 1), ("p50", 9), ("p90", 17))}
    return {"name": name, "km_to_go": km_to_go, "eta": eta, "eta_days": eta_days,
            "p_within_horizon": p_within, "p_before_timetable": p_before,
            "planned": planned, "timetable_of": timetable_of, "reached_at": reached_at,
            "p_first": p_first}


def _position(sc: Scenario, fid: str, s_km: float, sd: float) -> dict[str, Any]:
    lat, lon = sc.forces[fid].route.point_at(s_km)
    places = sc.places
    d = [float(distance_km(lat, lon, p.coords[0][1], p.coords[0][0])) for p in places]
    i = int(np.argmin(d))
    return {"lat": round(lat, 4), "lon": round(lon, 4), "place": places[i].label,
            "place_km": round(d[i], 1), "s_km": s_km, "s_sd_km": sd}


def _track(start: str, s0: float, s1: float, n: int = 12) -> list[list[Any]]:
    t0, t1 = parse_time(start), parse_time(AS_OF)
    return [[to_iso(t0 + (t1 - t0) * i / (n - 1)), round(s0 + (s1 - s0) * (i / (n - 1)) ** 1.3, 1)]
            for i in range(n)]


def _report(source: str, rid: str, grade: str, observed: str, received: str, place: str,
            event: str = "position") -> dict[str, Any]:
    age_h = (parse_time(AS_OF) - parse_time(observed)) / 3600
    return {"source": source, "report_id": rid, "grade": grade, "observed_at": observed,
            "received_at": received, "age_h": round(age_h, 1), "age": f"{age_h:.0f}h",
            "place": place, "event": event}


def _alert(rule: str, force: str, target: str, severity: str, state: str, message: str,
           value: float, **kw: Any) -> dict[str, Any]:
    a = {"id": f"{rule}:{force}:{target}", "rule": rule, "force": force, "target": target,
         "state": state, "severity": severity, "message": message, "value": value,
         "since": "1945-04-12T06:00:00Z", "fired_at": "1945-04-12T12:00:00Z",
         "resolved_at": None, "reports": ["press/us9-004"], "suppressed": False, "note": None}
    a.update(kw)
    return a


def make_briefing(sc: Scenario, *, alerts: bool = True) -> dict[str, Any]:
    """A briefing as of 12 April 1945 12:00Z (schema version 1)."""
    tt = {(t.force, t.objective): to_iso(t.planned) for t in sc.timetable}
    berlin_plan = tt[("1bf", "berlin")]
    reached_elbe = "1945-04-11T20:00:00Z"
    forces = [
        {"id": "us9", "name": "US Ninth Army", "side": "west", "ours": False,
         "last_report": _report("press", "us9-004", "C3", reached_elbe, "1945-04-12T09:00:00Z",
                                "Barby", "reached"),
         "position": _position(sc, "us9", 400.2, 6.6),
         "speed_kmpd": 139.0, "speed_sd_kmpd": 22.0, "trend": "accelerating",
         "regime": {"halted": 0.0, "advancing": 0.05, "pursuit": 0.95},
         "objectives": {
             "elbe": _objective("Elbe", 0.0, None, p_within=1.0, reached_at=reached_elbe,
                                p_first=1.0, planned=tt[("1bf", "elbe")], timetable_of="ours",
                                p_before=1.0),
             "berlin": _objective("Berlin", 125.4, _eta_days(2.6, 0.5, 0.55), p_within=0.55,
                                  planned=berlin_plan, timetable_of="ours", p_before=0.46,
                                  p_first=0.52),
         },
         "track": _track("1945-03-24T11:00:00Z", 2.8, 400.2),
         "fan": {"24h": {"p10": 400.2, "p50": 430.0, "p90": 505.5},
                 "72h": {"p10": 400.2, "p50": 470.0, "p90": 525.6}},
         "flags": []},
        {"id": "us1", "name": "US First Army", "side": "west", "ours": False,
         "last_report": _report("liaison", "us1-011", "B2", "1945-04-11T18:00:00Z",
                                "1945-04-12T02:00:00Z", "Halle (Saale)"),
         "position": _position(sc, "us1", 470.0, 9.5),
         "speed_kmpd": 48.0, "speed_sd_kmpd": 12.0, "trend": "steady",
         "regime": {"halted": 0.1, "advancing": 0.7, "pursuit": 0.2},
         "objectives": {
             "torgau": _objective("Torgau (link-up on the Elbe)", 87.0, _eta_days(3.5, 0.45),
                                  p_within=1.0),
             "elbe": _objective("Elbe", 96.8, None, p_within=0.0, reached_at=None,
                                p_first=0.0),
             "berlin": _objective("Berlin", 188.6, _eta_days(9.0, 0.6, 0.35), p_within=0.35,
                                  planned=berlin_plan, timetable_of="ours", p_before=0.07,
                                  p_first=0.08),
         },
         "track": _track("1945-03-07T11:00:00Z", 0.0, 470.0),
         "fan": {"24h": {"p10": 480.0, "p50": 515.0, "p90": 545.0},
                 "72h": {"p10": 520.0, "p50": 590.0, "p90": 650.0}},
         "flags": []},
        {"id": "us3", "name": "US Third Army", "side": "west", "ours": False,
         "last_report": _report("liaison", "us3-007", "B3", "1945-04-12T00:00:00Z",
                                "1945-04-12T05:00:00Z", "Jena"),
         "position": _position(sc, "us3", 332.0, 8.1),
         "speed_kmpd": 41.0, "speed_sd_kmpd": 15.0, "trend": "slowing",
         "regime": {"halted": 0.25, "advancing": 0.6, "pursuit": 0.15},
         "objectives": {
             "elbe": _objective("Elbe", 150.0, _eta_days(5.0, 0.5, 0.4), p_within=0.4,
                                p_first=0.0),
             "berlin": _objective("Berlin", 241.8, [None] * 19, p_within=0.02,
                                  planned=berlin_plan, timetable_of="ours", p_before=0.0,
                                  p_first=0.02),
         },
         "track": _track("1945-03-22T11:00:00Z", 0.0, 332.0),
         "fan": {"24h": {"p10": 340.0, "p50": 370.0, "p90": 395.0},
                 "72h": {"p10": 360.0, "p50": 420.0, "p90": 470.0}},
         "flags": [{"report": "liaison/us3-003", "reason": "outlier",
                    "detail": "Gießen is +59 km ahead of the track (4.1 sd)"},
                   {"report": "press/us3-005", "reason": "off axis",
                    "detail": "Plzeň is 180 km off the route"}]},
        {"id": "1bf", "name": "1st Belorussian Front", "side": "soviet", "ours": True,
         "last_report": _report("1bf-hq", "1bf-009", "A1", "1945-04-12T06:00:00Z",
                                "1945-04-12T08:00:00Z", "Küstrin"),
         "position": _position(sc, "1bf", 12.0, 2.5),
         "speed_kmpd": 0.4, "speed_sd_kmpd": 1.1, "trend": "halted",
         "regime": {"halted": 0.86, "advancing": 0.14, "pursuit": 0.0},
         "objectives": {
             "berlin": _objective("Berlin", 75.5, _eta_days(8.0, 0.35), p_within=1.0,
                                  planned=berlin_plan, timetable_of="own", p_before=0.62,
                                  p_first=0.31),
             "elbe": _objective("Elbe", 192.2, _eta_days(18.0, 0.3, 0.8), p_within=0.8,
                                planned=tt[("1bf", "elbe")], timetable_of="own",
                                p_before=0.55, p_first=0.0),
         },
         "track": _track("1945-01-31T09:00:00Z", 0.0, 12.0),
         "fan": {"24h": {"p10": 12.0, "p50": 12.0, "p90": 12.3},
                 "72h": {"p10": 12.0, "p50": 12.5, "p90": 20.0}},
         "flags": []},
        {"id": "1uf", "name": "1st Ukrainian Front", "side": "soviet", "ours": True,
         "last_report": None, "position": None,
         "speed_kmpd": None, "speed_sd_kmpd": None, "trend": "unknown", "regime": None,
         "objectives": {
             "berlin": _objective("Berlin", None, None, p_within=None,
                                  planned=tt[("1uf", "berlin")], timetable_of="own",
                                  p_first=0.0),
         },
         "track": [], "fan": None, "flags": []},
    ]
    fired = [_alert("timetable_threat", "us9", "berlin", "critical", "firing",
                    "US Ninth Army may reach Berlin before our timetable (P = 0.46): "
                    "last report Barby <C3>", 0.46)]
    resolved = [_alert("stale", "us3", "-", "info", "resolved",
                       "US Third Army: no report for 36 h & more", 36.0,
                       resolved_at="1945-04-12T09:00:00Z", suppressed=True,
                       note="liaison restored")]
    active = fired + [_alert("halt_line", "us1", "elbe-mulde", "warning", "firing",
                             "US First Army may cross the Elbe-Mulde line within 48 h", 0.31)]
    return {
        "version": 1,
        "scenario": sc.name,
        "perspective": sc.perspective,
        "as_of": AS_OF, "slot": AS_OF, "late": False, "previous": PREVIOUS,
        "headline": ["US Ninth Army leads the race for Berlin: P = 0.52",
                     "US Ninth Army won the race for Elbe (1945-04-11T20:00Z)"],
        "forces": forces,
        "races": {
            "berlin": {"us9": 0.52, "us1": 0.08, "us3": 0.02, "1bf": 0.31, "1uf": 0.0,
                       "nobody": 0.07},
            "elbe": {"us9": 1.0, "us1": 0.0, "us3": 0.0, "1bf": 0.0, "nobody": 0.0,
                     "decided": {"winner": "us9", "at": reached_elbe}},
        },
        "timetable": [{"force": t.force, "objective": t.objective, "planned": to_iso(t.planned)}
                      for t in sc.timetable],
        "alerts": ({"fired": fired, "resolved": resolved, "active": active} if alerts
                   else {"fired": [], "resolved": [], "active": []}),
        "changes": ["US Ninth Army: reached the Elbe",
                    "US Third Army: speed down from 62 to 41 km/day",
                    "US Third Army: 2 reports disregarded (outlier, off axis)"],
        "horizon_days": HORIZON, "samples": 2000, "seed": 0,
    }


def make_sparse_briefing(sc: Scenario) -> dict[str, Any]:
    """No force has a position, track, fan or estimate; the objectives have no ETA."""
    b = make_briefing(sc, alerts=False)
    b["late"] = True
    b["previous"] = None
    b["changes"] = []
    for f in b["forces"]:
        f.update(position=None, track=None, fan=None, last_report=None, speed_kmpd=None,
                 speed_sd_kmpd=None, regime=None, trend="unknown", flags=[])
        for o in f["objectives"].values():
            o.update(km_to_go=None, eta={"p10": None, "p50": None, "p90": None},
                     eta_days=None, reached_at=None, p_within_horizon=None)
    return b


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def berlin() -> Scenario:
    return scenario_mod.load("berlin1945")


@pytest.fixture(scope="module")
def briefing(berlin: Scenario) -> dict[str, Any]:
    return make_briefing(berlin)


@pytest.fixture(scope="module")
def sparse(berlin: Scenario) -> dict[str, Any]:
    return make_sparse_briefing(berlin)


# -- helpers ----------------------------------------------------------------------------------

def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk."""
    assert png[:8] == PNG_SIG
    length, kind = struct.unpack(">I4s", png[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", png[16:24])


def pixels(png: bytes) -> np.ndarray:
    from matplotlib.image import imread

    return imread(io.BytesIO(png), format="png")[..., :3]


def n_colours(img: np.ndarray) -> int:
    return len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0))


class _Refs(HTMLParser):
    """Collects every src/href attribute and every tag name."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.imgs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "poster", "data"):
                self.refs.append(value or "")
                if tag == "img" and name == "src":
                    self.imgs.append(value or "")


# -- registry ---------------------------------------------------------------------------------

def test_registry_has_every_format_with_a_suffix(berlin: Scenario, briefing: dict) -> None:
    from warroom.publish import FILE_SUFFIX, RENDERERS

    assert set(RENDERERS) == {"md", "html", "json", "pdf", "cot"}
    assert set(FILE_SUFFIX) == set(RENDERERS)
    assert all(s.startswith(".") for s in FILE_SUFFIX.values())
    md = RENDERERS["md"](berlin, briefing)
    js = RENDERERS["json"](berlin, briefing)
    assert isinstance(md, bytes) and b"US Ninth Army" in md
    assert json.loads(js.decode("utf-8")) == briefing


def test_importing_publish_does_not_load_matplotlib() -> None:
    code = "import sys, warroom.publish; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# -- JSON -------------------------------------------------------------------------------------

def test_json_round_trips_sorted_and_utf8(briefing: dict, sparse: dict) -> None:
    from warroom.publish.jsonfmt import render_json

    for b in (briefing, sparse):
        text = render_json(b)
        assert json.loads(text) == b
    text = render_json(briefing)
    assert "Küstrin" in text and "\\u00fc" not in text
    top = [line.split('"')[1] for line in text.splitlines() if line.startswith('  "')]
    assert top == sorted(top)
    bad = copy.deepcopy(briefing)
    bad["forces"][0]["speed_kmpd"] = float("nan")
    with pytest.raises(ValueError):
        render_json(bad)


# -- Markdown ---------------------------------------------------------------------------------

def _row(md: str, name: str, header: str) -> str:
    """The table row of ``name`` in the table under ``## header``."""
    section = md.split(f"## {header}\n", 1)[1].split("\n## ", 1)[0]
    return next(line for line in section.splitlines()
                if line.startswith("|") and name in line)


def test_markdown_has_headline_forces_alerts_and_changes(briefing: dict) -> None:
    from warroom.publish.markdown import render_markdown

    md = render_markdown(briefing)
    assert md.startswith("# Race for Berlin and the Elbe, spring 1945 — as of 1945-04-12 12:00Z")
    assert "(late)" not in md.splitlines()[0]
    for line in briefing["headline"]:
        assert f"- {line}" in md
    for f in briefing["forces"]:
        assert f["name"] in md
    assert "## Alerts" in md and "**CRITICAL**" in md and "**WARNING**" in md
    assert "Fired since 1945-04-12 06:00Z (1)" in md
    assert "Resolved since 1945-04-12 06:00Z (1)" in md
    assert "## Changes since 1945-04-12 06:00Z" in md
    assert "US Ninth Army: reached the Elbe" in md
    assert "liaison/us3-003" in _row(md, "outlier", "Disregarded reports")
    us9 = _row(md, "US Ninth Army", "Forces")
    assert "139 ± 22 km/d" in us9 and "press C3" in us9 and "pursuit 95%" in us9
    # ETA p50 (p10 - p90) against our plan, and the reached objective
    berlin_1bf = _row(md, "1st Belorussian Front", "Objectives")
    assert "(ours)" in berlin_1bf and "on time 62%" in berlin_1bf
    assert "reached 11 Apr 20:00" in md
    assert "decided — US Ninth Army" in md


def test_markdown_force_without_position_says_no_reports(briefing: dict, sparse: dict) -> None:
    from warroom.publish.markdown import render_markdown

    md = render_markdown(briefing)
    row = _row(md, "1st Ukrainian Front", "Forces")
    assert "no reports yet" in row
    md = render_markdown(sparse)
    assert md.splitlines()[0].endswith("(late)")
    for f in sparse["forces"]:
        assert "no reports yet" in _row(md, f["name"], "Forces")
    assert "No alerts." in md
    assert "## Changes\n" in md and "First briefing" in md


def test_markdown_escapes_and_reads_through_rich(briefing: dict) -> None:
    from rich.console import Console
    from rich.markdown import Markdown

    from warroom.publish.markdown import render_markdown

    b = copy.deepcopy(briefing)
    b["forces"][2]["flags"][0]["detail"] = "a | pipe and *stars*"
    md = render_markdown(b)
    console = Console(width=160, record=True, color_system=None, file=io.StringIO())
    console.print(Markdown(md))
    text = console.export_text()
    assert "US Ninth Army leads the race for Berlin: P = 0.52" in text
    assert "last report Barby <C3>" in text  # angle brackets survive as text
    assert "a | pipe and *stars*" in text  # escaped, not a table cell or emphasis
    assert "1st Ukrainian Front (ours)" in text


# -- HTML -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def page(berlin: Scenario, briefing: dict) -> str:
    from warroom.publish.html import render_html

    return render_html(berlin, briefing, map_px=(400, 300), chart_width_px=400, dpi=40)


def test_html_is_self_contained_with_two_pngs(page: str, briefing: dict) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in page and '<meta charset="utf-8">' in page
    assert "<title>Race for Berlin and the Elbe, spring 1945 — as of" in page
    parser = _Refs()
    parser.feed(page)
    assert parser.refs, "no images found"
    assert all(r.startswith(("data:", "#")) for r in parser.refs), parser.refs
    assert not parser.tags & {"script", "link", "iframe", "object", "embed"}
    assert "://" not in page
    assert len(parser.imgs) == 2
    for src in parser.imgs:
        head, data = src.split(",", 1)
        assert head == "data:image/png;base64"
        assert base64.b64decode(data, validate=True)[:8] == PNG_SIG
    for f in briefing["forces"]:
        assert f["name"] in page
    for line in briefing["headline"]:
        assert line in page
    assert "Alerts" in page and "tag-critical" in page


def test_html_escapes_text(berlin: Scenario, briefing: dict) -> None:
    from warroom.publish.html import html_page

    b = copy.deepcopy(briefing)
    b["headline"] = ['<script>alert("x")</script> & more']
    page = html_page(b, {})
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page
    assert "last report Barby &lt;C3&gt;" in page


# -- map --------------------------------------------------------------------------------------

def test_map_has_requested_size_and_is_not_blank(berlin: Scenario, briefing: dict) -> None:
    from warroom.publish.map import render_map

    png = render_map(berlin, briefing, 401, 299, dpi=40)
    assert png_size(png) == (401, 299)
    img = pixels(png)
    assert img.shape[:2] == (299, 401)
    assert img.std() > 0.05
    assert n_colours(img) > 500
    assert b"http" not in png  # no metadata naming a web site


def test_map_draws_every_force_in_its_colour(berlin: Scenario, briefing: dict) -> None:
    from matplotlib.colors import to_rgb

    from warroom.publish.map import render_map
    from warroom.publish.style import force_colors

    w, h = 800, 600
    img = pixels(render_map(berlin, briefing, w, h, dpi=80))
    outside_legend = np.ones((h, w), dtype=bool)
    outside_legend[: int(0.4 * h), : int(0.3 * w)] = False
    colors = force_colors(berlin, briefing)
    assert len(set(colors.values())) == len(berlin.forces)
    for fid, c in colors.items():
        near = np.abs(img - np.array(to_rgb(c))).max(axis=-1) < 0.06
        assert (near & outside_legend).sum() >= 20, fid


def test_colours_ours_red_rivals_blue(berlin: Scenario, briefing: dict) -> None:
    from matplotlib.colors import to_rgb

    from warroom.publish.style import force_colors

    colors = force_colors(berlin, briefing)
    for f in briefing["forces"]:
        r, _, b = to_rgb(colors[f["id"]])
        assert (r > b) == f["ours"], f["id"]
    flipped = copy.deepcopy(briefing)
    flipped["perspective"] = "west"
    for f in flipped["forces"]:
        f["ours"] = f["side"] == "west"
    colors = force_colors(berlin, flipped)
    r, _, b = to_rgb(colors["us9"])
    assert r > b


def test_map_draws_routes_tracks_positions_and_fans(berlin: Scenario, briefing: dict) -> None:
    from matplotlib.colors import same_color
    from matplotlib.patches import Ellipse

    from warroom.publish.map import draw_map
    from warroom.publish.style import force_colors, new_figure

    fig = new_figure(400, 300, 40)
    ax = draw_map(fig, berlin, briefing)
    colors = force_colors(berlin, briefing)
    lines = ax.get_lines()
    for fid, force in berlin.forces.items():
        route_lines = [ln for ln in lines if len(ln.get_xdata()) == len(force.route.lon)
                       and np.allclose(ln.get_xdata(), force.route.lon)
                       and same_color(ln.get_color(), colors[fid])]
        assert route_lines, f"no route line for {fid}"
    # us9: a thick track ending at its position, fan bands wider than the track
    pos = briefing["forces"][0]["position"]
    mine = [ln for ln in lines if same_color(ln.get_color(), colors["us9"])]
    track = [ln for ln in mine if 3.0 <= ln.get_linewidth() < 5]
    assert track and abs(track[0].get_ydata()[-1] - pos["lat"]) < 0.01
    assert sum(ln.get_linewidth() >= 8 for ln in mine) == 2  # 24 h and 72 h fans
    # uncertainty circles: one per force with a position, radius s_sd_km in degrees
    circles = [p for p in ax.patches if isinstance(p, Ellipse)
               and same_color(p.get_edgecolor()[:3], colors["us9"])]
    assert len(circles) == 1
    assert circles[0].height / 2 == pytest.approx(pos["s_sd_km"] / 111.195, rel=1e-3)
    title = ax.get_title(loc="left")
    assert title == "Race for Berlin and the Elbe, spring 1945 — as of 1945-04-12 12:00Z"
    texts = [t.get_text() for t in ax.texts]
    assert "Berlin" in " ".join(texts) and "US Ninth Army" in texts


def test_map_and_chart_survive_forces_without_position(berlin: Scenario, sparse: dict) -> None:
    from warroom.publish.chart import render_eta_chart
    from warroom.publish.map import render_map

    png = render_map(berlin, sparse, 400, 300, dpi=40)
    assert png_size(png) == (400, 300) and pixels(png).std() > 0.05
    png = render_eta_chart(berlin, sparse, 400, dpi=40)
    assert png[:8] == PNG_SIG
    bare = {"version": 1, "as_of": AS_OF, "forces": [{"id": "us9", "name": "US Ninth Army"}]}
    assert render_map(berlin, bare, 200, 150, dpi=20)[:8] == PNG_SIG
    assert render_eta_chart(berlin, bare, 200, 150, dpi=20)[:8] == PNG_SIG
    assert render_eta_chart(None, {}, 200, 150, dpi=20)[:8] == PNG_SIG


# -- ETA chart --------------------------------------------------------------------------------

def test_chart_panels_plans_and_beyond_markers(berlin: Scenario, briefing: dict) -> None:
    import matplotlib.dates as mdates

    from warroom.publish.chart import draw_eta_chart, render_eta_chart
    from warroom.publish.style import new_figure

    png = render_eta_chart(berlin, briefing, 400, dpi=40)
    w, h = png_size(png)
    assert w == 400 and h > 100 and pixels(png).std() > 0.05
    fig = new_figure(400, 300, 40)
    axes = draw_eta_chart(fig, berlin, briefing)
    assert [a.get_title(loc="left") for a in axes] == [
        "Berlin", "Elbe", "Torgau (link-up on the Elbe)"]
    x0 = mdates.date2num(datetime.fromisoformat(AS_OF))
    assert axes[0].get_xlim() == pytest.approx((x0, x0 + HORIZON))
    berlin_ax = axes[0]
    plans = [ln.get_xdata()[0] for ln in berlin_ax.get_lines()
             if ln.get_linestyle() != "None" and len(ln.get_xdata()) == 2
             and ln.get_xdata()[0] == ln.get_xdata()[1] and ln.get_ydata()[1] == 1]
    expected = [mdates.date2num(datetime.fromisoformat(t["planned"]))
                for t in briefing["timetable"] if t["objective"] == "berlin"]
    assert len(expected) == 2  # 1bf and 1uf
    assert sorted(plans) == pytest.approx(sorted(expected))
    labels = [t.get_text() for t in berlin_ax.texts]
    assert any(t.startswith("plan") for t in labels)
    assert any("beyond the horizon" in t for t in labels)  # us3: every quantile null
    beyond = [ln for ln in berlin_ax.get_lines() if ln.get_marker() == ">"]
    assert beyond and all(ln.get_xdata()[0] == pytest.approx(x0 + HORIZON) for ln in beyond)
    elbe_labels = [t.get_text() for t in axes[1].texts]
    assert any(t.startswith("◀ reached 11 Apr 20:00") for t in elbe_labels)


# -- PDF --------------------------------------------------------------------------------------

def test_pdf_opens_and_first_page_is_not_blank(berlin: Scenario, briefing: dict,
                                               tmp_path: Path) -> None:
    from warroom.publish.pdf import render_pdf

    pdf = render_pdf(berlin, briefing)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    pages = re.findall(rb"/Type\s*/Page[^s]", pdf)
    assert len(pages) >= 3
    assert b"http" not in pdf
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed: page 1 not rasterised")
    (tmp_path / "b.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "40", "-f", "1", "-l", "1", "-png",
                    str(tmp_path / "b.pdf"), str(tmp_path / "p")], check=True, timeout=60)
    out = sorted(tmp_path.glob("p*.png"))
    assert len(out) == 1
    img = pixels(out[0].read_bytes())
    assert img.std() > 0.03 and (img < 0.5).any()
