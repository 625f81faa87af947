"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright against a
live server on berlin1945 (`make test` installs Chromium; `WARROOM_REQUIRE_BROWSER=1`, set by
`.ci/run`, turns a missing browser into a failure instead of a skip).

Screenshots land in ``test-artifacts/`` (1280x800 light, 1920x1080 dark)."""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from warroom import scenario as scenario_mod
from warroom.server.app import create_app
from warroom.server.auth import TokenStore
from warroom.timeutil import parse_time, to_iso
from warroom.workspace import open_workspace

from .serving import running

pw = pytest.importorskip("playwright.sync_api")

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]
AT_12_APRIL = "1945-04-12T12:00:00Z"
GEOD = Geod(ellps="WGS84")


def chromium() -> str:
    path = os.environ.get("WARROOM_CHROMIUM") or shutil.which("chromium")
    if path is None:
        msg = "Debian's chromium is not installed (make test installs it: make sysdeps)"
        if os.environ.get("WARROOM_REQUIRE_BROWSER"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    exe = chromium()
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("dash") / "berlin.db"
    ws = open_workspace(str(db), "berlin1945", create=True)
    app = create_app(ws, samples=400, assess_interval_s=0.2)
    with running(app, lifespan="on", timeout_graceful_shutdown=1,
                 before_stop=app.state.hub.close) as base:
        yield base
    ws.store.close()


class Page:
    """A page with its console watched: errors and uncaught exceptions are collected."""

    def __init__(self, browser: Any, base: str, width: int = 1280, height: int = 800,
                 scheme: str = "light") -> None:
        self.ctx = browser.new_context(viewport={"width": width, "height": height},
                                       color_scheme=scheme)
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.base = base

    def open(self, hash_: str = "") -> Any:
        self.page.goto(f"{self.base}/{hash_}")
        self.ready()
        return self.page

    def ready(self, as_of: str | None = None) -> None:
        sel = "body[data-state=ready]" + (f'[data-as-of="{as_of}"]' if as_of else "")
        self.page.wait_for_selector(sel, state="attached", timeout=60_000)

    def close(self) -> None:
        self.ctx.close()
        assert self.errors == [], f"console errors: {self.errors}"


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def magdeburg() -> tuple[float, float]:
    sc = scenario_mod.load("berlin1945")
    lon, lat = sc.features["magdeburg"].coords[0][:2]
    return lat, lon


# -- the page as an analyst opens it ---------------------------------------------------------------
def test_five_forces_on_the_map_and_in_the_race_panel(browser: Any, server: str) -> None:
    p = Page(browser, server)
    page = p.open()
    # a historical record opens at its end, not at today's date
    assert page.locator("#mode").inner_text() == "as of then"
    assert page.locator("path.force-pos").count() == 5
    assert page.locator("tr.force-row").count() == 5
    names = {f.name for f in scenario_mod.load("berlin1945").forces.values()}
    race = page.locator("#races").inner_text()
    assert all(n in race for n in names), race
    # rivers, halt lines, routes and objectives are drawn from the bundled Leaflet (no tiles)
    assert page.locator("path.river").count() >= 5
    assert page.locator("path.halt-line").count() >= 1
    assert page.locator("path.route").count() == 5
    assert page.locator(".leaflet-tile").count() == 0
    assert page.locator("svg.eta").count() >= 2
    p.close()


def test_time_slider_shows_what_was_known_then(browser: Any, server: str) -> None:
    p = Page(browser, server)
    page = p.open()
    hour = parse_time(AT_12_APRIL)
    page.evaluate("""h => { const s = document.getElementById('slider'); s.value = h;
                       s.dispatchEvent(new Event('change')); }""", hour // 3600)
    p.ready(AT_12_APRIL)
    row = page.locator('tr.force-row[data-force="us9"]')
    lat, lon = float(row.get_attribute("data-lat")), float(row.get_attribute("data-lon"))
    mlat, mlon = magdeburg()
    km = GEOD.inv(lon, lat, mlon, mlat)[2] / 1000
    assert km < 30, f"Ninth Army {km:.0f} km from Magdeburg on 12 April"
    # the bitemporal rule: the 1st Ukrainian Front had not been reported by then
    assert page.locator('tr.force-row[data-force="1uf"]').get_attribute("data-lat") == ""
    assert page.locator("path.force-pos").count() == 4
    # the page agrees with the API as of the same time
    api = httpx.get(f"{server}/situation", params={"at": AT_12_APRIL}, timeout=60).json()
    s_api = api["forces"]["us9"]["s_km"]
    assert abs(float(row.get_attribute("data-s-km")) - s_api) < 0.11
    # and the address keeps the time, so the view can be shared
    assert AT_12_APRIL in page.url
    p.close()


def test_play_steps_at_the_briefing_interval(browser: Any, server: str) -> None:
    p = Page(browser, server)
    page = p.open(f"#at={AT_12_APRIL}")
    p.ready(AT_12_APRIL)
    page.click("#step-fwd")
    p.ready("1945-04-12T18:00:00Z")
    page.click("#play")
    p.ready("1945-04-13T00:00:00Z")
    page.click("#play")  # pause
    p.close()


def test_what_if_moves_the_race_odds_as_the_forecast_does(browser: Any, server: str) -> None:
    p = Page(browser, server)
    page = p.open(f"#at={AT_12_APRIL}")
    p.ready(AT_12_APRIL)
    cell = page.locator('td.p-first[data-force="us9"][data-objective="berlin"]')
    before = float(cell.get_attribute("data-p"))
    page.select_option("#wi-force", "us9")
    page.select_option("#wi-line", "elbe-mulde")
    page.evaluate("""() => { const r = document.getElementById('wi-p'); r.value = '1';
                       r.dispatchEvent(new Event('input')); }""")
    page.click("#whatif button[type=submit]")
    page.wait_for_selector("#whatif-badge:not([hidden])")
    p.ready(AT_12_APRIL)
    after = float(cell.get_attribute("data-p"))
    fc = httpx.get(f"{server}/forecast", params={
        "at": AT_12_APRIL, "samples": 400, "set": "us9.p_obey.elbe-mulde=1"}, timeout=60).json()
    assert after == pytest.approx(fc["races"]["berlin"]["us9"], abs=1e-9)
    assert after < before  # a Ninth Army that always obeys the halt rarely takes Berlin
    page.click("#wi-reset")
    page.wait_for_selector("#whatif-badge[hidden]", state="attached")
    p.ready(AT_12_APRIL)
    assert float(cell.get_attribute("data-p")) == pytest.approx(before)
    p.close()


def test_bad_what_if_is_refused_clearly() -> None:
    """The endpoint the what-if calls names what is wrong (no browser needed)."""
    from fastapi.testclient import TestClient

    ws = open_workspace(None, "berlin1945")
    with TestClient(create_app(ws, samples=50, assess_after_ingest=False)) as c:
        r = c.get("/dashboard/state", params={"at": AT_12_APRIL, "set": "nobody.p_obey=0.1"})
        assert r.status_code == 422 and "nobody" in r.json()["detail"]
        r = c.get("/forecast", params={"at": AT_12_APRIL, "set": "us9.p_obey=lots"})
        assert r.status_code == 422 and "lots" in r.json()["detail"]


def test_briefing_appears_live_and_opens_in_place(browser: Any, server: str) -> None:
    p = Page(browser, server)
    page = p.open()
    page.click("#live")
    p.ready()
    page.wait_for_selector("#conn.on", state="attached")
    r = httpx.post(f"{server}/briefings", params={"at": AT_12_APRIL}, timeout=60)
    assert r.status_code == 200
    item = page.locator(f'#briefings li[data-slot="{AT_12_APRIL}"] a')
    item.wait_for(timeout=30_000)
    item.click()
    frame = page.frame_locator("#briefing-frame")
    frame.locator("text=US Ninth Army").first.wait_for(timeout=30_000)
    assert page.locator("#briefing-dialog[open]").count() == 1
    page.click("#briefing-close")
    p.close()


def test_ingested_report_raises_an_alert_without_reload_and_ack(browser: Any,
                                                                 server: str) -> None:
    p = Page(browser, server)
    page = p.open()
    page.click("#live")
    p.ready()
    page.wait_for_selector("#conn.on", state="attached")
    assert page.locator('li.alert[data-id="arrived:us9:berlin"]').count() == 0
    page.evaluate("window.__noReload = true")  # gone if the page reloads
    body = ("report_id,source,force,observed_at,place,event,target,grade\n"
            "dash-1,liaison,us9,1945-05-02T12:00:00Z,Berlin,reached,berlin,A1\n")
    r = httpx.post(f"{server}/reports", content=body, headers={"Content-Type": "text/csv"},
                   timeout=60)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    alert = page.locator('li.alert[data-id="arrived:us9:berlin"]')
    alert.wait_for(timeout=60_000)
    assert page.evaluate("window.__noReload") is True
    assert "firing" in alert.get_attribute("class")
    # firing alerts come first
    states = [s for s in page.locator("li.alert").evaluate_all(
        "els => els.map(e => e.dataset.state)")]
    assert states == sorted(states, key=lambda s: {"firing": 0, "pending": 1}.get(s, 2))
    alert.locator("button.ack").click()
    alert.locator("text=acked").wait_for(timeout=30_000)
    stored = {a["id"]: a for a in httpx.get(f"{server}/alerts", timeout=30).json()}
    assert stored["arrived:us9:berlin"]["acked"] is True
    # the live map follows: the Ninth Army is now at Berlin
    page.wait_for_function("""() => { const r = document.querySelector(
        'tr.force-row[data-force="us9"]'); return r && r.textContent.includes('Berlin'); }""",
                           timeout=60_000)
    p.close()


@pytest.mark.parametrize(("width", "height", "scheme"), [(1280, 800, "light"),
                                                          (1920, 1080, "dark")])
def test_fits_the_screen_in_both_themes_and_screenshot(browser: Any, server: str, width: int,
                                                       height: int, scheme: str) -> None:
    p = Page(browser, server, width, height, scheme)
    page = p.open(f"#at={AT_12_APRIL}")
    p.ready(AT_12_APRIL)
    assert page.evaluate("document.documentElement.dataset.theme") == scheme
    # no horizontal scrolling; the map takes a real share of the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    box = page.locator("#map").bounding_box()
    assert box["width"] >= 0.5 * width and box["height"] >= 0.75 * height
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.click("#theme")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != bg
    page.click("#theme")  # back, for the screenshot
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"dashboard-{width}x{height}-{scheme}.png"
    page.screenshot(path=str(shot))
    assert png_size(shot) == (width, height) and shot.stat().st_size > 30_000
    p.close()


def test_auth_asks_for_a_token_then_works(browser: Any, tmp_path: Path) -> None:
    ws = open_workspace(str(tmp_path / "auth.db"), "berlin1945", create=True)
    _, analyst = TokenStore(ws.store).new("analyst")
    app = create_app(ws, samples=100, auth=True, assess_after_ingest=False)
    with running(app, lifespan="on", timeout_graceful_shutdown=1,
                 before_stop=app.state.hub.close) as base:
        ctx = browser.new_context()
        page = ctx.new_page()
        page.goto(f"{base}/")
        page.wait_for_selector("#token-box:not([hidden])")
        assert "needs an API token" in page.locator("#token-msg").inner_text()
        page.goto(f"{base}/#token={analyst}")
        page.reload()
        page.wait_for_selector("body[data-state=ready]", state="attached", timeout=60_000)
        assert page.locator("path.force-pos").count() == 5
        assert analyst not in page.url  # the token leaves the address bar
        ctx.close()


# -- the data behind the page (no browser) -------------------------------------------------------
def test_scenario_endpoint_carries_all_geometry() -> None:
    from fastapi.testclient import TestClient

    ws = open_workspace(None, "berlin1945")
    sc = ws.scenario
    with TestClient(create_app(ws, samples=50, assess_after_ingest=False)) as c:
        g = c.get("/dashboard/scenario").json()
        index = c.get("/")
        js = c.get("/static/vendor/leaflet/leaflet.js")
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    assert js.status_code == 200 and "Leaflet" in js.text[:500]
    assert [f["id"] for f in g["forces"]] == list(sc.forces)
    assert {o["id"] for o in g["objectives"]} == set(sc.objectives)
    assert {ln["id"] for ln in g["lines"]} == set(sc.lines)
    f = sc.forces["us9"]
    first = g["forces"][0]["route"][0]
    assert first == [pytest.approx(f.route.lat[0], abs=1e-5), pytest.approx(f.route.lon[0],
                                                                             abs=1e-5)]
    rows = ws.store.reports_by_force()
    obs = min(r.observed_at for rs in rows.values() for r in rs)
    rec = max(r.received_at for rs in rows.values() for r in rs)
    assert g["time_range"] == {"first": to_iso(obs), "last": to_iso(rec)}
    json.dumps(g)  # plain JSON all through


ROUTE = scenario_mod.load("berlin1945").forces["us9"].route


@settings(max_examples=60, deadline=None)
@given(st.floats(-50, 900), st.floats(-50, 900))
def test_fan_stretch_follows_the_route_between_its_ends(a: float, b: float) -> None:
    from warroom.server.dashboard import route_stretch

    pts = route_stretch(ROUTE, a, b)
    lo, hi = sorted((min(max(a, 0.0), ROUTE.length_km), min(max(b, 0.0), ROUTE.length_km)))
    s, off = ROUTE.project_many([p[0] for p in pts], [p[1] for p in pts])
    assert (abs(off) < 0.05).all()  # on the route (km)
    assert (s >= lo - 0.05).all() and (s <= hi + 0.05).all()
    assert (s[1:] >= s[:-1] - 0.05).all()  # in route order
    end0, end1 = ROUTE.point_at(lo), ROUTE.point_at(hi)
    assert pts[0] == [pytest.approx(end0[0], abs=1e-5), pytest.approx(end0[1], abs=1e-5)]
    assert pts[-1] == [pytest.approx(end1[0], abs=1e-5), pytest.approx(end1[1], abs=1e-5)]
