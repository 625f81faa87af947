"""Signed telegrams landed in a worker process (warroom.server.landing), and their signatures
checked ahead of landing (telegram.precheck): same outcomes as landing them in-process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from warroom import telegram as tg
from warroom.ingest.validate import Validator
from warroom.keystore import KeyStore
from warroom.server.landing import Landing, LandingError
from warroom.store import Store
from warroom.telegram import TelegramError

from .conftest import POLE

REPORT = {"force": "scott", "observed_at": "1911-12-18T12:00:00Z", "lat": -85.7, "lon": 161.0}


def _telegram(seq: int, pem: bytes, rid: str, source: str = "fram", **changes: Any) -> bytes:
    t = tg.make(source, seq, [{**REPORT, "report_id": rid}], pem)
    t.update(changes)
    return json.dumps(t).encode()


@pytest.fixture()
def db(tmp_path: Path) -> str:
    return str(tmp_path / "land.db")


@pytest.fixture()
def fram(db: str) -> bytes:
    s = Store(db)
    pem, _ = KeyStore(s).new("fram", None)
    s.close()
    return pem


def _stored(db: str) -> set[str]:
    s = Store(db)
    try:
        return {r for (r,) in s.conn.execute("SELECT report_id FROM reports")}
    finally:
        s.close()


async def _outcomes(landing: Landing, bodies: list[bytes]) -> list[Any]:
    now = int(time.time())
    return await asyncio.gather(*(landing.land(b, now) for b in bodies), return_exceptions=True)


def test_worker_lands_and_refuses_as_in_process(db: str, fram: bytes) -> None:
    """Good telegrams are stored (committed before the answer); forged, replayed and
    unknown-source ones get the same status as in-process, and are quarantined."""
    landing = Landing(db, str(POLE))
    bodies = [_telegram(i + 1, fram, f"w{i}") for i in range(30)]
    forged = json.loads(bodies[7])
    forged["payload"][0]["lat"] = -80.0
    bodies[7] = json.dumps(forged).encode()
    bodies.append(bodies[3])  # a replay of seq 4
    bodies.append(_telegram(99, fram, "x", source="nobody"))
    try:
        out = asyncio.run(_outcomes(landing, bodies))
        assert _stored(db) == {f"w{i}" for i in range(30)} - {"w7"}  # committed by now
    finally:
        landing.close()
    assert isinstance(out[7], TelegramError) and out[7].status == 401
    assert isinstance(out[30], TelegramError) and out[30].status == 409
    assert isinstance(out[31], TelegramError) and out[31].status == 401
    assert "unknown source" in out[31].reason
    assert all(r.accepted == 1 for i, r in enumerate(out[:30]) if i != 7)
    s = Store(db)
    assert s.count_quarantined() == 3
    assert KeyStore(s).get("fram").last_seq == 30
    s.close()


def test_a_dead_worker_fails_what_it_held_and_the_next_telegram_starts_another(
        db: str, fram: bytes) -> None:
    landing = Landing(db, str(POLE))

    async def run() -> tuple[Any, Any, Any]:
        now = int(time.time())
        first = await landing.land(_telegram(1, fram, "a"), now)
        proc = landing._proc
        os.kill(proc.pid, signal.SIGSTOP)  # it holds what comes next...
        held = asyncio.ensure_future(landing.land(_telegram(2, fram, "b"), now))
        await asyncio.sleep(0.3)
        assert not held.done()  # ...unanswered: nothing is acknowledged before its commit
        os.kill(proc.pid, signal.SIGKILL)  # ...and dies with it
        lost = await asyncio.gather(held, return_exceptions=True)
        after = await landing.land(_telegram(3, fram, "c"), now)
        return first, lost[0], after, proc.pid, landing._proc.pid

    try:
        first, lost, after, pid1, pid2 = asyncio.run(run())
    finally:
        landing.close()
    assert first.accepted == 1 and after.accepted == 1
    assert isinstance(lost, LandingError)
    assert pid1 != pid2
    assert {"a", "c"} <= _stored(db) and "b" not in _stored(db)


def test_close_answers_what_was_given_then_refuses(db: str, fram: bytes) -> None:
    landing = Landing(db, str(POLE))

    async def run() -> list[Any]:
        now = int(time.time())
        futs = [asyncio.ensure_future(landing.land(_telegram(i + 1, fram, f"q{i}"), now))
                for i in range(40)]
        await asyncio.sleep(0)  # all handed over
        await asyncio.to_thread(landing.close)
        out = await asyncio.gather(*futs, return_exceptions=True)
        with pytest.raises(LandingError):
            await landing.land(_telegram(99, fram, "late"), now)
        return out

    out = asyncio.run(run())
    assert all(not isinstance(r, BaseException) and r.accepted == 1 for r in out)
    assert _stored(db) >= {f"q{i}" for i in range(40)}
    assert landing._proc is None or not landing._proc.is_alive()


# -- precheck -------------------------------------------------------------------------------------
def test_precheck_only_shortcuts_the_signature_under_the_stored_key(tmp_path: Path) -> None:
    """verify() given precheck's result decides exactly as without it: a precheck made with a
    key that is no longer the stored one (re-keyed station) does not let a telegram through."""
    s = Store(tmp_path / "p.db")
    keys = KeyStore(s)
    old_pem, _ = keys.new("fram", None)
    body = _telegram(1, old_pem, "r1")
    assert tg.precheck(body, KeyStore(s).seen.get) is None  # no key read yet: nothing to try
    keys.get("fram")
    checked = tg.precheck(body, keys.seen.get)
    assert checked is not None and checked.head[:2] == ("fram", 1)
    now = int(time.time())
    v1 = tg.verify(body, keys, now)
    v2 = tg.verify(body, keys, now, checked=checked)
    assert v1 == v2
    # the station is re-keyed: the old signature no longer verifies, prechecked or not
    keys.conn.execute("DELETE FROM telegram_keys WHERE source = 'fram'")
    keys.new("fram", None)
    for pre in (None, checked):
        with pytest.raises(TelegramError) as e:
            tg.verify(body, keys, now, checked=pre)
        assert e.value.status == 401 and "bad signature" in e.value.reason
    # a bad signature is never prechecked
    forged = json.loads(body)
    forged["payload"][0]["lat"] = -80.0
    assert tg.precheck(json.dumps(forged).encode(), lambda _: checked.public_key) is None
    s.close()


def test_accept_many_with_prechecks_matches_without(tmp_path: Path) -> None:
    """The same telegrams, with and without prechecks (some missing, one made with a wrong
    key), give the same outcomes and the same stores."""
    outs = []
    for use_pre in (False, True):
        s = Store(tmp_path / f"m{use_pre}.db")
        keys = KeyStore(s)
        pems = {src: keys.new(src, None)[0] for src in ("a", "b", "c")}
        bodies = [_telegram(i // 3 + 1, pems[src], f"{src}{i}", source=src)
                  for i, src in enumerate(["a", "b", "c"] * 4)]
        bodies[4] = bodies[1]  # a replay inside the batch
        keys.get_many(["a", "b", "c"])
        pre = [tg.precheck(b, keys.seen.get) if use_pre and i % 4 else None
               for i, b in enumerate(bodies)]
        if use_pre:
            wrong = keys.seen["a"]
            pre[5] = tg.precheck(bodies[5], lambda _, k=wrong: k)  # another station's key: None
            assert pre[5] is None
        now = int(time.time())
        items = [(b, now) for b in bodies]
        with s.transaction():
            res = tg.accept_many(tg._Enlisted(s), Validator(_scenario()), items, keys,
                                 checked=pre if use_pre else None)
        outs.append(([type(r).__name__ if isinstance(r, Exception) else r.accepted
                      for r in res],
                     sorted(s.conn.execute("SELECT source, report_id FROM reports")),
                     sorted(s.conn.execute("SELECT source, last_seq FROM telegram_keys"))))
        s.close()
    assert outs[0] == outs[1]
    assert "TelegramError" in outs[0][0]


def _scenario() -> Any:
    from warroom import scenario as scenario_mod

    return scenario_mod.load(POLE)


def test_http_answers_503_when_the_worker_dies_and_lands_the_next(tmp_path: Path) -> None:
    """Through a real server: a telegram whose worker dies before answering is not
    acknowledged (503, nothing claimed); the station's next telegram lands."""
    import threading

    import httpx

    from warroom.server import create_app
    from warroom.workspace import open_workspace

    from .serving import running

    ws = open_workspace(str(tmp_path / "w.db"), str(POLE), create=True)
    pem, _ = KeyStore(ws.store).new("station")
    app = create_app(ws, samples=50, assess_after_ingest=False)
    got: dict[str, Any] = {}
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        landing = app.state.telegrams
        assert isinstance(landing, Landing)  # a file store: telegrams land in the worker
        r = client.post("/reports", content=_telegram(1, pem, "h1", source="station"))
        assert r.status_code == 200 and r.json()["accepted"] == 1
        pid = landing._proc.pid
        os.kill(pid, signal.SIGSTOP)

        def post() -> None:
            got["r"] = client.post("/reports",
                                   content=_telegram(2, pem, "h2", source="station"))

        t = threading.Thread(target=post)
        t.start()
        time.sleep(0.5)
        assert "r" not in got  # held by the stopped worker: not answered
        os.kill(pid, signal.SIGKILL)
        t.join(30)
        assert got["r"].status_code == 503, got["r"].text
        assert "may or may not be stored" in got["r"].json()["detail"]
        r = client.post("/reports", content=_telegram(3, pem, "h3", source="station"))
        assert r.status_code == 200 and r.json()["accepted"] == 1
        assert landing._proc.pid != pid
    assert {"h1", "h3"} <= _stored(ws.store.path)
    ws.store.close()
