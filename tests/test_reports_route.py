"""``POST /reports`` is served ahead of FastAPI's stack (``warroom.server.reports_route``); it
answers every case exactly as the FastAPI route does: each request below is sent twice to one
real server, once through the fast route and once with it switched off, and the two answers
(status, JSON body, the headers a client acts on) must be the same."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from warroom import telegram
from warroom.keystore import KeyStore
from warroom.server import create_app
from warroom.server.auth import TokenStore
from warroom.server.reports_route import bearer
from warroom.workspace import open_workspace

from .conftest import POLE
from .serving import running

HEADER = "report_id,source,force,observed_at,received_at,lat,lon,place,grade,event,target,text\n"
ROW = "{rid},{src},amundsen,1911-12-01T12:00:00Z,,-86.0,-165.0,,B2,position,,route test\n"
LIMIT = 4096


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, httpx.Client,
                                                                        dict[str, str], bytes]]:
    ws = open_workspace(str(tmp_path_factory.mktemp("route") / "w.db"), str(POLE), create=True)
    pem, _ = KeyStore(ws.store).new("station")
    ts = TokenStore(ws.store)
    tokens = {role: ts.new(role, None, label=role)[1] for role in ("reporter", "analyst")}
    tokens["scoped"] = ts.new("reporter", ["fram"], label="scoped")[1]
    tokens["slow"] = ts.new("reporter", None, label="slow")[1]
    app = create_app(ws, samples=50, auth=True, max_body_bytes=LIMIT, rate_per_s=0.01,
                     burst=60, assess_after_ingest=False)
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield app, client, tokens, pem
    ws.store.close()


def _answer(r: httpx.Response) -> tuple[Any, ...]:
    try:
        body: Any = r.json()
    except ValueError:
        body = r.text
    return (r.status_code, body, r.headers.get("www-authenticate"),
            r.headers.get("retry-after"), r.headers.get("content-type"))


def _both(app: Any, client: httpx.Client, make: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The answer through the fast route, then through FastAPI; ``make(k)`` gives the request
    keyword arguments of the k-th sending (k = 0, 1), so content can differ where the store
    would otherwise see a duplicate."""
    route = app.reports_route
    assert route is not None
    fast = _answer(client.post("/reports", **make(0)))
    app.reports_route = None
    try:
        slow = _answer(client.post("/reports", **make(1)))
    finally:
        app.reports_route = route
    return fast, slow


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_refusals_are_answered_alike(served: Any) -> None:
    app, client, tokens, _ = served
    csv = (HEADER + ROW.format(rid="x", src="s")).encode()
    cases = {
        "no token": {"content": csv},
        "unknown token": {"content": csv, "headers": auth("wrt_00000000_" + "A" * 43)},
        "not bearer": {"content": csv, "headers": {"authorization": f"Basic {tokens['reporter']}"}},
        "analyst": {"content": csv, "headers": auth(tokens["analyst"])},
        "scoped to fram": {"content": csv, "headers": auth(tokens["scoped"])},
        "empty body": {"content": b"  \n", "headers": auth(tokens["reporter"])},
        "over the limit": {"content": b"x" * (LIMIT + 1), "headers": auth(tokens["reporter"])},
        "forged telegram": {"content": json.dumps({
            "source": "station", "seq": 1, "sent_at": "2026-01-01T00:00:00Z", "payload": [],
            "signature": "A" * 86 + "=="}).encode(), "headers": auth(tokens["reporter"])},
        "not a telegram": {"content": b'{"seq": 1, "sent_at": "x"}',
                           "headers": auth(tokens["reporter"])},
    }
    for name, kwargs in cases.items():
        fast, slow = _both(app, client, lambda k, kw=kwargs: kw)
        assert fast == slow, name
        assert fast[0] in (400, 401, 403, 413), (name, fast)


def test_accepted_reports_and_telegrams_are_answered_alike(served: Any) -> None:
    app, client, tokens, pem = served
    fast, slow = _both(app, client, lambda k: {
        "content": HEADER + ROW.format(rid=f"ok{k}", src="route") + "bad,line\n",
        "headers": auth(tokens["reporter"])})
    assert fast == slow and fast[0] == 200
    assert (fast[1]["accepted"], fast[1]["quarantined"]) == (1, 1)
    key = telegram.load_private_key(pem)
    fast, slow = _both(app, client, lambda k: {
        "content": json.dumps(telegram.make("station", 10 + k, [{
            "report_id": f"tg{k}", "force": "amundsen", "observed_at": "1911-12-01T12:00:00Z",
            "lat": -86.0, "lon": -165.0}], key)).encode(),
        "headers": auth(tokens["reporter"])})
    assert fast == slow and fast[0] == 200 and fast[1]["accepted"] == 1
    replay = json.dumps(telegram.make("station", 5, [], key)).encode()  # seq below 11
    fast, slow = _both(app, client, lambda k: {"content": replay,
                                               "headers": auth(tokens["reporter"])})
    assert fast == slow and fast[0] == 409


def test_rate_limit_is_answered_alike(served: Any) -> None:
    app, client, tokens, _ = served
    csv = (HEADER + ROW.format(rid="rl", src="rate")).encode()
    for _ in range(60):  # spend the burst
        client.post("/reports", content=csv, headers=auth(tokens["slow"]))
    fast, slow = _both(app, client, lambda k: {"content": csv,
                                               "headers": auth(tokens["slow"])})
    assert fast == slow and fast[0] == 429 and int(fast[3]) >= 1


def test_bearer_reads_the_header_as_fastapi_does() -> None:
    assert bearer("Bearer abc") == "abc"
    assert bearer("bearer abc") == "abc"
    assert bearer("Basic abc") is None
    assert bearer("Bearer") is None
    assert bearer("") is None and bearer(None) is None


def test_the_route_is_still_documented(served: Any) -> None:
    _, client, _, _ = served
    spec = client.get("/openapi.json").json()
    assert "post" in spec["paths"]["/reports"]
    assert set(spec["paths"]["/reports"]["post"]["requestBody"]["content"]) >= {
        "text/csv", "application/x-ndjson", "application/json"}

