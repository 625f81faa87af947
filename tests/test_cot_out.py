"""The forecast pushed back out as CoT (how="m-p") to TAK clients connected to the listener."""

from __future__ import annotations

import io
import socket
import time
from pathlib import Path

import defusedxml.ElementTree as DET
import httpx
import pytest

from warroom import scenario as scenario_mod
from warroom.ingest.base import CountingReader
from warroom.ingest.cot_format import CotFormat
from warroom.publish.cot import SIGMA_PER_P10_P90, render_bytes
from warroom.server.app import create_app
from warroom.workspace import open_workspace

from .serving import running

POLE = Path(__file__).parent / "data" / "pole"


def briefing(at: str = "1911-12-10T12:00:00Z") -> tuple[scenario_mod.Scenario, dict]:
    from warroom.brief import build_briefing
    from warroom.forecast.params import ForecastParams
    from warroom.situation import build_situation
    from warroom.timeutil import parse_time

    ws = open_workspace(None, str(POLE))
    sc = ws.scenario
    sit = build_situation(sc, ws.store.reports_by_force(), parse_time(at),
                          ForecastParams(samples=300))
    return sc, build_briefing(sit, {}, [], None, parse_time(at))


def test_events_read_back_through_our_own_cot_parser() -> None:
    """What we send a TAK client, our CoT input reads as the same positions: the route point
    at the p50 km, the spread as uncertainty, graded as a prediction (not GPS)."""
    sc, b = briefing()
    data = render_bytes(sc, b)
    fans = {f["id"]: f["fan"] for f in b["forces"] if f.get("fan")}
    assert fans, "the pole scenario should have forecasts"
    uids = {f"warroom.{fid}.{h}": fid for fid in fans for h in ("24h", "72h")}
    recs = list(CotFormat(uid_forces=uids).records(CountingReader(io.BytesIO(data)),
                                                    "forecast.cot"))
    assert len(recs) == len(uids)
    for r in recs:
        assert r.error is None, r.error
        fid = r.fields["force"]
        label = r.fields["report_id"].rsplit(".", 1)[1]
        q = fans[fid][label]
        lat, lon = sc.forces[fid].route.point_at(q["p50"])
        assert r.fields["lat"] == pytest.approx(lat, abs=1e-6)
        assert r.fields["lon"] == pytest.approx(lon, abs=1e-6)
        assert r.fields["uncertainty_km"] == pytest.approx(
            max(0.001, (q["p90"] - q["p10"]) / SIGMA_PER_P10_P90), abs=1e-4)
        assert r.fields["grade"] == "F6" and "how=m-p" in r.fields["text"]


def test_cot_clients_receive_the_forecast_after_an_ingest(tmp_path: Path) -> None:
    ws = open_workspace(str(tmp_path / "w.db"), str(POLE), create=True)
    app = create_app(ws, samples=200, cot_port=0, cot_forecasts=True, assess_interval_s=0.1)
    with running(app, lifespan="on", timeout_graceful_shutdown=1,
                 before_stop=app.state.hub.close) as base:
        sock = socket.create_connection(("127.0.0.1", app.state.cot.port), timeout=30)
        deadline = time.monotonic() + 10
        while app.state.cot.clients == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        body = ("report_id,source,force,observed_at,lat,lon,grade\n"
                "o1,fram,amundsen,1911-12-10T12:00:00Z,-88.0,165.0,A1\n")
        r = httpx.post(f"{base}/reports", content=body, timeout=30)
        assert r.status_code == 200 and r.json()["accepted"] == 1
        buf = b""
        while buf.count(b"</event>") < 2 and time.monotonic() < deadline + 50:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        sock.close()
        events = [DET.fromstring(e + b"</event>", forbid_dtd=True)
                  for e in (x.split(b"?>", 1)[-1] for x in buf.split(b"</event>"))
                  if e.strip()]
        assert events, buf[:200]
        ev = next(e for e in events if e.get("uid") == "warroom.amundsen.24h")
        assert ev.get("how") == "m-p"
        # the same numbers as the API's forecast as of the event's time
        fc = httpx.get(f"{base}/forecast", params={"at": ev.get("time"), "samples": 200},
                       timeout=60).json()
    q = fc["forces"]["amundsen"]["fan"]["24h"]
    lat, lon = ws.scenario.forces["amundsen"].route.point_at(q["p50"])
    pt = ev.find("point")
    assert float(pt.get("lat")) == pytest.approx(lat, abs=1e-6)
    assert float(pt.get("lon")) == pytest.approx(lon, abs=1e-6)
    assert ev.find("detail/contact").get("callsign").endswith("+24h")


def test_cot_forecasts_needs_a_cot_port() -> None:
    from typer.testing import CliRunner

    from warroom.cli import app

    r = CliRunner().invoke(app, ["serve", "--scenario", str(POLE), "--cot-forecasts"])
    assert r.exit_code == 2 and "--cot-port" in r.output
