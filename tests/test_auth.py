"""Authentication of the HTTP server (tokens, roles, rate limit) and the admin CLI, end to end:
a real uvicorn on an ephemeral loopback port, the CLI as subprocesses."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from warroom import telegram
from warroom.keystore import KeyStore
from warroom.server import create_app
from warroom.server.auth import RateLimiter, TokenStore
from warroom.server.run import check_host
from warroom.timeutil import to_iso
from warroom.workspace import UsageError, Workspace, open_workspace

from .conftest import POLE
from .serving import running

HEADER = "report_id,source,force,observed_at,received_at,lat,lon,place,grade,event,target,text\n"
ROW = "{rid},{src},amundsen,1911-12-01T12:00:00Z,,-86.0,-165.0,,B2,position,,auth test\n"


@dataclass
class Live:
    url: str
    ws: Workspace
    db: Path
    client: httpx.Client
    tokens: dict[str, str]
    ids: dict[str, str]
    pem: bytes


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("auth")
    db = tmp / "w.db"
    ws = open_workspace(str(db), str(POLE), create=True)
    pem, _ = KeyStore(ws.store).new("station")
    ts = TokenStore(ws.store)
    tokens: dict[str, str] = {}
    ids: dict[str, str] = {}
    for name, role, sources in (("reporter", "reporter", None), ("analyst", "analyst", None),
                                ("admin", "admin", None), ("doomed", "analyst", None),
                                ("scoped", "reporter", ["station", "fram"])):
        ids[name], tokens[name] = ts.new(role, sources, label=f"test {name}")
    app = create_app(ws, samples=200, auth=True)
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield Live(url, ws, db, client, tokens, ids, pem)
    ws.store.close()


def test_public_endpoints_need_no_token(live: Live) -> None:
    assert live.client.get("/healthz").status_code == 200
    assert live.client.get("/openapi.json").status_code == 200
    assert live.client.get("/docs").status_code == 200


def test_missing_and_bad_tokens_are_401(live: Live) -> None:
    for path in ("/situation", "/forces", "/alerts", "/briefings"):
        r = live.client.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = live.client.post("/reports", content=HEADER + ROW.format(rid="n1", src="x"))
    assert r.status_code == 401
    bad = "wrt_00000000_" + "A" * 43
    for token in (bad, live.tokens["admin"] + "x", "nonsense", live.tokens["admin"][:-1]):
        r = live.client.get("/forces", headers=bearer(token))
        assert r.status_code == 401, token
        assert token not in r.text
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
    r = live.client.get("/forces", headers={"authorization": f"Basic {live.tokens['admin']}"})
    assert r.status_code == 401


def test_roles(live: Live) -> None:
    rep, ana, adm = (bearer(live.tokens[k]) for k in ("reporter", "analyst", "admin"))
    csv = HEADER + ROW.format(rid="r1", src="auth-rep")
    r = live.client.post("/reports", content=csv, headers=rep)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
    for path in ("/situation", "/forces", "/alerts", "/briefings"):
        r = live.client.get(path, headers=rep)
        assert r.status_code == 403, path
        assert "analyst" in r.json()["detail"] and live.tokens["reporter"] not in r.text
    assert live.client.post("/briefings", headers=rep).status_code == 403

    r = live.client.get("/situation", headers=ana, params={"at": "1911-12-14T12:00:00Z"})
    assert r.status_code == 200
    assert live.client.get("/forces/amundsen", headers=ana).status_code == 200
    r = live.client.post("/reports", content=HEADER + ROW.format(rid="r2", src="auth-ana"),
                         headers=ana)
    assert r.status_code == 403 and "reporter" in r.json()["detail"]
    r = live.client.post("/briefings", headers=ana, params={"at": "1911-12-14T12:00:00Z"})
    assert r.status_code == 200
    assert live.client.post("/alerts/nope/ack", headers=ana).status_code == 404  # allowed

    r = live.client.post("/reports", content=HEADER + ROW.format(rid="r3", src="auth-adm"),
                         headers=adm)
    assert r.status_code == 200 and r.json()["accepted"] == 1
    force = live.client.get("/forces/amundsen", headers=adm).json()
    assert {"auth-rep/r1", "auth-adm/r3"} <= {x["report"] for x in force["report_list"]}
    assert "auth-ana/r2" not in {x["report"] for x in force["report_list"]}


def test_reporter_sources(live: Live) -> None:
    scoped = bearer(live.tokens["scoped"])
    ok = HEADER + ROW.format(rid="s1", src="fram")
    r = live.client.post("/reports", content=ok, headers=scoped)
    assert r.status_code == 200 and r.json()["accepted"] == 1
    mixed = ok + ROW.format(rid="s2", src="elsewhere")
    before = live.client.get("/healthz").json()["reports"]
    r = live.client.post("/reports", content=mixed, headers=scoped)
    assert r.status_code == 403 and "elsewhere" in r.json()["detail"]
    assert live.client.get("/healthz").json()["reports"] == before  # nothing stored
    payload = [{"report_id": "tg-s", "force": "scott", "observed_at": to_iso(int(time.time())),
                "lat": -84.0, "lon": 170.0, "grade": "B2"}]
    t = telegram.make("station", 1, payload, live.pem)
    r = live.client.post("/reports", content=json.dumps(t), headers=scoped)
    assert r.status_code == 200, r.text
    other = {**t, "source": "intruder"}  # refused for the token before the signature is read
    r = live.client.post("/reports", content=json.dumps(other), headers=scoped)
    assert r.status_code == 403 and "intruder" in r.json()["detail"]


def test_revoked_token_is_401(live: Live) -> None:
    h = bearer(live.tokens["doomed"])
    assert live.client.get("/forces", headers=h).status_code == 200
    with_lock = TokenStore(live.ws.store)  # the server thread is idle between requests
    info = with_lock.revoke(live.ids["doomed"])
    assert info.revoked
    assert live.client.get("/forces", headers=h).status_code == 401
    assert live.ids["doomed"] in {t.id for t in with_lock.list() if t.revoked}


def test_no_secret_in_clear_in_the_database(live: Live) -> None:
    blobs = b"".join(p.read_bytes() for p in live.db.parent.glob(live.db.name + "*"))
    assert b"api_tokens" in blobs or live.db.with_name(live.db.name + "-wal").exists()
    for token in live.tokens.values():
        assert token.encode() not in blobs
        assert token.split("_", 2)[2].encode() not in blobs
    rows = live.ws.store.conn.execute("SELECT hash FROM api_tokens").fetchall()
    assert all(len(h) == 64 for (h,) in rows)


def test_rate_limit_gives_429(tmp_path: Path) -> None:
    ws = open_workspace(str(tmp_path / "r.db"), str(POLE), create=True)
    _, token = TokenStore(ws.store).new("analyst")
    _, other = TokenStore(ws.store).new("analyst")
    app = create_app(ws, samples=50, auth=True, rate_per_s=5, burst=10)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        codes = [c.get("/forces", headers=bearer(token)).status_code for _ in range(30)]
        assert codes[:10] == [200] * 10
        assert codes.count(429) >= 15
        r = c.get("/forces", headers=bearer(token))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert c.get("/forces", headers=bearer(other)).status_code == 200  # per token
    ws.store.close()


def test_token_bucket_refills() -> None:
    now = [0.0]
    lim = RateLimiter(2, 3, clock=lambda: now[0])
    assert [lim.take("a") for _ in range(3)] == [0.0] * 3
    assert lim.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert lim.take("a") == 0.0


def test_auth_lifts_loopback_rule() -> None:
    with pytest.raises(UsageError, match="--auth"):
        check_host("0.0.0.0")
    check_host("0.0.0.0", allow_remote=True)


def test_token_store_rules(tmp_path: Path) -> None:
    ws = open_workspace(str(tmp_path / "t.db"), str(POLE), create=True)
    ts = TokenStore(ws.store)
    with pytest.raises(ValueError, match="role"):
        ts.new("boss")
    with pytest.raises(ValueError, match="reporter"):
        ts.new("analyst", ["fram"])
    tid, token = ts.new("reporter", ["fram"], "field")
    info = ts.check(token)
    assert info is not None and info.sources == ("fram",) and info.label == "field"
    assert ts.check(token.upper()) is None and ts.check("") is None
    assert "secret" not in json.dumps([t.as_dict() for t in ts.list()])
    ts.revoke(tid)
    assert ts.check(token) is None
    with pytest.raises(ValueError, match="no token"):
        ts.revoke("ffffffff")
    ws.store.close()


# -- the CLI -------------------------------------------------------------------------------------
def warroom(*args: str, cwd: Path, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k not in ("WARROOM_DB", "WARROOM_TOKEN")}
    return subprocess.run([sys.executable, "-m", "warroom", *args], cwd=cwd, text=True,
                          capture_output=True, env={**e, **(env or {})}, timeout=120)


def test_cli_keys_tokens_send_end_to_end(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    r = warroom("init", "--db", db, "--scenario", str(POLE), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = warroom("keys", "new", "outpost", "--forces", "amundsen,scott", "--out", "outpost.key",
                "--db", db, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    key = tmp_path / "outpost.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key.read_bytes()
    public = r.stdout.strip()
    assert len(public) == 44 and "PRIVATE" not in r.stdout + r.stderr
    r = warroom("keys", "new", "outpost", "--out", "outpost.key", "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and "exists" in r.stderr
    r = warroom("keys", "add", "twin", public, "--db", db, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = warroom("keys", "list", "--json", "--db", db, cwd=tmp_path)
    keys = {k["source"]: k for k in json.loads(r.stdout)}
    assert keys["outpost"]["forces"] == ["amundsen", "scott"] and keys["twin"]["public_key"] \
        == public
    r = warroom("keys", "revoke", "twin", "--db", db, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = warroom("keys", "revoke", "nobody", "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "nobody" in r.stderr

    r = warroom("tokens", "new", "--role", "reporter", "--sources", "outpost", "--db", db,
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    reporter = r.stdout.strip()
    assert reporter not in r.stderr
    r = warroom("tokens", "new", "--role", "analyst", "--label", "desk", "--db", db,
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    analyst = r.stdout.strip()
    r = warroom("tokens", "new", "--role", "king", "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and "role" in r.stderr
    r = warroom("tokens", "list", "--json", "--db", db, cwd=tmp_path)
    listed = json.loads(r.stdout)
    assert {t["role"] for t in listed} == {"reporter", "analyst"}
    assert reporter not in r.stdout and analyst not in r.stdout

    csv = tmp_path / "obs.csv"
    csv.write_text("report_id,source,force,observed_at,lat,lon,grade\n"
                   "o1,,amundsen,1911-12-10T12:00:00Z,-89.0,-160.0,B2\n")
    ws = open_workspace(db, None)
    app = create_app(ws, samples=100, auth=True)
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        send = ("send", str(csv), "--key", str(key), "--source", "outpost", "--url", url)
        r = warroom(*send, "--seq", "5", "--token", reporter, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["accepted"] == 1
        force = c.get("/forces/amundsen", headers=bearer(analyst))
        assert force.status_code == 200
        assert "outpost/o1" in {x["report"] for x in force.json()["report_list"]}
        r = warroom(*send, "--seq", "5", cwd=tmp_path, env={"WARROOM_TOKEN": reporter})
        assert r.returncode == 2 and "409" in r.stderr and "replayed" in r.stderr
        r = warroom(*send, cwd=tmp_path, env={"WARROOM_TOKEN": reporter})  # seq = now in ms
        assert r.returncode == 0, r.stderr
        r = warroom(*send, cwd=tmp_path)
        assert r.returncode == 2 and "401" in r.stderr
        r = warroom(*send, "--token", analyst, cwd=tmp_path)
        assert r.returncode == 2 and "403" in r.stderr and analyst not in r.stderr
        bad = tmp_path / "bad.csv"
        bad.write_text("report_id,source,force,observed_at,lat,lon,grade\n"
                       "o2,,amundsen,1911-12-11T12:00:00Z,-89.0,-160.0,Z9\n")
        r = warroom("send", str(bad), "--key", str(key), "--source", "outpost", "--url", url,
                    "--token", reporter, cwd=tmp_path)
        assert r.returncode == 1, r.stderr
        assert json.loads(r.stdout)["quarantined"] == 1
        r = warroom("send", "missing.csv", "--key", str(key), "--source", "outpost", "--url",
                    url, cwd=tmp_path)
        assert r.returncode == 2 and "no such file" in r.stderr
    ws.store.close()
