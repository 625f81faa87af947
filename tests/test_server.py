"""The HTTP server, end to end: a real uvicorn on an ephemeral loopback port, driven by httpx."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warroom import telegram
from warroom.keystore import KeyStore
from warroom.server import create_app
from warroom.server.run import check_host, is_loopback
from warroom.timeutil import to_iso
from warroom.workspace import UsageError, Workspace, open_workspace

from .serving import running

POLE = Path(__file__).parent / "data" / "pole"
LIMIT = 64 * 1024
AT = "1911-12-14T12:00:00Z"
HEADER = "report_id,source,force,observed_at,received_at,lat,lon,place,grade,event,target,text\n"


@dataclass
class Live:
    """A running server: its base URL, workspace and a telegram station's private key."""

    url: str
    ws: Workspace
    pem: bytes
    client: httpx.Client


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("server")
    ws = open_workspace(str(tmp / "w.db"), str(POLE), create=True)
    pem, _ = KeyStore(ws.store).new("station")
    app = create_app(ws, max_body_bytes=LIMIT, samples=200)
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield Live(url, ws, pem, client)
    ws.store.close()


def _count(live: Live) -> int:
    return live.client.get("/healthz").json()["reports"]


def test_healthz(live: Live) -> None:
    r = live.client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is True and body["reports"] >= 1 and body["schema"] >= 2


def test_post_csv_counts_duplicates_and_quarantine(live: Live) -> None:
    csv = HEADER + (
        "h1,http-test,amundsen,1911-12-01T12:00:00Z,1911-12-02T12:00:00Z,-86.0,-165.0,,B2,"
        "position,,on the plateau\n"
        "h2,http-test,scott,1911-12-05T12:00:00Z,,-83.0,171.0,,C3,position,,Beardmore\n")
    r = live.client.post("/reports", content=csv, headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["duplicate"], body["conflict"], body["quarantined"]) == \
        (2, 0, 0, 0)
    assert body["errors"] == [] and body["format"] == "csv"
    again = live.client.post("/reports", content=csv).json()
    assert (again["accepted"], again["duplicate"]) == (0, 2)
    # h2 had no received_at: it got the time of arrival, so it is not known back in 1911
    scott = live.client.get("/forces/scott", params={"at": AT}).json()
    assert "http-test/h2" not in {x["report"] for x in scott["report_list"]}
    scott_now = live.client.get("/forces/scott").json()
    h2 = next(x for x in scott_now["report_list"] if x["report"] == "http-test/h2")
    assert h2["received_at"] > "2000"

    bad = HEADER + ("h3,http-test,nansen,1911-12-05T12:00:00Z,,-83.0,171.0,,C3,position,,"
                    "who?\n")
    r = live.client.post("/reports", content=bad)
    assert r.status_code == 200
    body = r.json()
    assert (body["accepted"], body["quarantined"]) == (0, 1)
    assert any("nansen" in m for m in body["errors"])


def test_body_over_limit_is_413_and_stores_nothing(live: Live) -> None:
    before = _count(live)
    row = "x{i},http-big,amundsen,1911-12-01T12:00:00Z,,-86.0,-165.0,,B2,position,,padding\n"
    big = HEADER + "".join(row.format(i=i) for i in range(LIMIT // len(row) + 10))
    assert len(big) > LIMIT
    r = live.client.post("/reports", content=big)
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the streamed size is checked
        data = big.encode()
        for i in range(0, len(data), 4096):
            yield data[i:i + 4096]

    r = live.client.post("/reports", content=chunks())
    assert r.status_code == 413
    assert _count(live) == before


def test_post_cot_event_visible_in_force(live: Live) -> None:
    when = to_iso(int(time.time()) - 60)
    event = (f'<?xml version="1.0"?><event version="2.0" uid="TAK-AMUNDSEN-1" type="a-f-G-U-C" '
             f'how="m-g" time="{when}" start="{when}" stale="{when}">'
             '<point lat="-87.5" lon="-160.0" hae="0" ce="50.0" le="9999999"/>'
             '<detail><contact callsign="amundsen"/></detail></event>')
    r = live.client.post("/reports", content=event, headers={"content-type": "application/xml"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 1 and body["format"] == "cot", body
    force = live.client.get("/forces/amundsen")
    assert force.status_code == 200
    d = force.json()
    rep = next(x for x in d["report_list"] if x["report_id"] == "TAK-AMUNDSEN-1")
    assert rep["source"] == "cot" and rep["grade"] == "B2" and rep["observed_at"] == when
    assert "cot/TAK-AMUNDSEN-1" in {m["report"] for m in d["measurements"]}
    assert {"history", "flags", "measurements", "name", "side"} <= d.keys()


def test_signed_telegram_accepted_replayed_forged(live: Live) -> None:
    obs = to_iso(int(time.time()) - 120)
    payload = [{"report_id": "tg1", "force": "scott", "observed_at": obs, "lat": -84.0,
                "lon": 170.0, "grade": "B2", "text": "by telegram"}]
    before = _count(live)
    t = telegram.make("station", 1, payload, live.pem)
    r = live.client.post("/reports", content=json.dumps(t))
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1 and r.json()["format"] == "telegram"
    r = live.client.post("/reports", content=json.dumps(t))
    assert r.status_code == 409
    assert "seq" in r.json()["detail"]
    forged = telegram.make("station", 2, payload, Ed25519PrivateKey.generate())
    r = live.client.post("/reports", content=json.dumps(forged))
    assert r.status_code == 401
    assert "signature" in r.json()["detail"]
    unsigned = {k: v for k, v in telegram.make("station", 3, payload, live.pem).items()
                if k != "signature"}
    r = live.client.post("/reports", content=json.dumps(unsigned))
    assert r.status_code == 400 and "signature" in r.json()["detail"]
    assert _count(live) == before + 1


def test_concurrent_posts_and_reads(live: Live) -> None:
    before = _count(live)
    results: list[int] = []

    def post(i: int) -> None:
        csv = HEADER + "".join(
            f"c{i}-{j},http-conc,scott,1911-12-0{1 + j % 9}T12:00:00Z,,-83.0,171.0,,C3,"
            "position,,concurrent\n" for j in range(50))
        with httpx.Client(base_url=live.url, timeout=60) as c:
            results.append(c.post("/reports", content=csv).json()["accepted"])
            results.append(c.get("/forces/scott").status_code)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert sorted(results) == [50] * 8 + [200] * 8
    assert _count(live) == before + 400


def test_situation_and_forecast_contract(live: Live) -> None:
    r = live.client.get("/situation", params={"at": AT})
    assert r.status_code == 200
    s = r.json()
    assert s["as_of"] == AT
    assert set(s["forces"]) == {"amundsen", "scott"}
    assert "history" not in s["forces"]["scott"] and "measurements" not in s["forces"]["scott"]
    assert {"as_of", "samples", "seed", "horizon_days", "forces", "races"} <= s["forecast"].keys()
    q = {"at": AT, "samples": 100, "seed": 7, "horizon": 20}
    a = live.client.get("/forecast", params=q)
    b = live.client.get("/forecast", params=q)
    assert a.status_code == 200 and a.json() == b.json()
    fc = a.json()
    assert (fc["samples"], fc["seed"], fc["horizon_days"]) == (100, 7, 20)
    obj = fc["forces"]["scott"]["objectives"]["pole"]
    assert {"km_to_go", "eta", "p_within_horizon", "p_before_timetable", "reached_at"} <= \
        obj.keys()
    assert "pole" in fc["races"]
    assert live.client.get("/forecast", params={"samples": 0}).status_code == 422


def test_forces_list_and_unknown(live: Live) -> None:
    forces = live.client.get("/forces").json()
    assert {f["id"] for f in forces} == {"amundsen", "scott"}
    assert all({"id", "name", "side"} == f.keys() for f in forces)
    r = live.client.get("/forces/nansen")
    assert r.status_code == 404 and "nansen" in r.json()["detail"]


def test_bad_times_are_4xx(live: Live) -> None:
    for path in ("/situation", "/forecast", "/forces/scott", "/map.png"):
        r = live.client.get(path, params={"at": "noon"})
        assert r.status_code == 422, (path, r.status_code)
        assert "noon" in r.json()["detail"]
    r = live.client.get("/situation", params={"at": "1911-12-14T12:00:00"})
    assert r.status_code == 422 and "zone" in r.json()["detail"]
    assert live.client.post("/briefings", params={"at": "noon"}).status_code == 422
    assert live.client.get("/alerts", params={"state": "angry"}).status_code == 422


def test_briefings_alerts_and_map(live: Live) -> None:
    assert live.client.get("/briefings/1911-12-14T1200Z.html").status_code == 404
    r = live.client.post("/briefings", params={"at": AT})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["slot"] == AT and b["version"] == 1
    listed = live.client.get("/briefings").json()
    assert {"slot": AT, "as_of": AT, "late": False} == {k: listed[-1][k] for k in
                                                         ("slot", "as_of", "late")}
    assert live.client.get("/briefings/latest").json() == b
    html = live.client.get("/briefings/1911-12-14T1200Z.html")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    text = html.text
    assert "<html" in text.lower() and 'src="http' not in text and "<link" not in text
    js = live.client.get(f"/briefings/{AT}.json")
    assert js.status_code == 200 and js.json() == b
    md = live.client.get("/briefings/1911-12-14T1200Z.md")
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    pdf = live.client.get("/briefings/1911-12-14T1200Z.pdf")
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"
    assert live.client.get("/briefings/1911-12-14T1200Z.docx").status_code == 422
    assert live.client.get("/briefings/1911-12-14T1200Z").status_code == 422

    alerts = live.client.get("/alerts")
    assert alerts.status_code == 200
    rows = alerts.json()
    assert all(a["acked"] is False for a in rows)
    if rows:
        aid = rows[0]["id"]
        r = live.client.post(f"/alerts/{aid}/ack")
        assert r.status_code == 200 and r.json()["acked"] is True
        again = {a["id"]: a for a in live.client.get("/alerts").json()}
        assert again[aid]["acked"] is True
    assert live.client.post("/alerts/no-such-alert/ack").status_code == 404

    png = live.client.get("/map.png", params={"at": AT})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_openapi(live: Live) -> None:
    r = live.client.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for p in ("/reports", "/situation", "/forces", "/forces/{force_id}", "/forecast", "/alerts",
              "/alerts/{alert_id}/ack", "/briefings", "/briefings/latest",
              "/briefings/{name}", "/map.png", "/healthz"):
        assert p in paths, p
    assert live.client.get("/docs").status_code == 200


def test_loopback_only_unless_allowed() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert is_loopback(host)
        check_host(host)
    for host in ("0.0.0.0", "192.168.1.10", "example.org"):
        assert not is_loopback(host)
        with pytest.raises(UsageError, match="allow_remote"):
            check_host(host)
        check_host(host, allow_remote=True)


def test_openapi_schema_is_valid(live: Live) -> None:
    from openapi_spec_validator import validate

    validate(live.client.get("/openapi.json").json())


_junk = st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode))
_words = st.one_of(st.text(max_size=40), st.sampled_from(
    ["1911-12-14T12:00:00Z", "noon", "1911-12-14", "1911-12-14T12:00:00", "", "Z", "-1",
     "9999-99-99T99:99:99Z", "1911-12-14T12:00:00+25:00", "%00", "../..", "amundsen"]))


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_junk, at=_words, force=_words, slot=_words, fmt=_words, state=_words)
def test_fuzzed_requests_never_get_a_500(live: Live, body: bytes, at: str, force: str,
                                         slot: str, fmt: str, state: str) -> None:
    """Whatever a client sends, the server answers with a status it means (never a 5xx)."""
    c = live.client
    force, slot, fmt = (quote(x, safe="") for x in (force, slot, fmt))
    answers = [
        c.post("/reports", content=body),
        c.get("/situation", params={"at": at}),
        c.get(f"/forces/{force}" if force.strip("/") else "/forces/x", params={"at": at}),
        c.get("/forecast", params={"at": at, "samples": "50", "seed": at}),
        c.get("/alerts", params={"state": state}),
        c.get(f"/briefings/{slot or 'x'}.{fmt or 'x'}"),
    ]
    for r in answers:
        assert r.status_code < 500, (r.request.method, r.request.url, r.status_code, r.text)
