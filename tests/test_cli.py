"""The CLI as a user drives it: subprocesses, exit codes, stderr, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import POLE

GOOD = ("report_id,source,force,observed_at,lat,lon,grade\n"
        "x1,fram,amundsen,1911-11-25T12:00:00Z,-86.0,-168.5,B2\n")
BAD_ROW = "x2,fram,amundsen,25 November,-86.0,-168.5,B2\n"


def run(*args: str, cwd: Path, stdin: str | None = None, env: dict | None = None):
    e = {**os.environ, **(env or {})}
    e.pop("WARROOM_DB", None) if env is None or "WARROOM_DB" not in env else None
    return subprocess.run([sys.executable, "-m", "warroom", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, env=e, timeout=120)


def test_init_ingest_status_quarantine(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    r = run("init", "--db", db, "--scenario", str(POLE), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "4 reports" in r.stdout
    (tmp_path / "new.csv").write_text(GOOD + BAD_ROW)
    r = run("ingest", "new.csv", "--db", db, "--json", cwd=tmp_path)
    assert r.returncode == 1  # a row was quarantined
    counts = json.loads(r.stdout)["total"]
    assert (counts["accepted"], counts["quarantined"]) == (1, 1)
    assert "new.csv line 3, observed_at: '25 November' is not an ISO 8601 time" in r.stderr
    r = run("ingest", "new.csv", "--db", db, "--json", cwd=tmp_path)
    counts = json.loads(r.stdout)["total"]
    assert counts["accepted"] == 0 and counts["duplicate"] == 1
    r = run("status", "--db", db, "--at", "1911-11-26T00:00Z", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    forces = {f["force"]: f for f in json.loads(r.stdout)["forces"]}
    am = forces["amundsen"]
    assert am["last_report"]["report_id"] == "x1" and am["last_report"]["age_h"] == 12.0
    # x1 lies on the route and is used; km to go = the objective's position minus the force's
    assert am["estimate"]["last_report_at"] == "1911-11-25T12:00:00Z"
    assert am["flags"] == []
    pole = am["objectives"]["pole"]
    assert abs(pole["km_to_go"] - (pole["at_km"] - am["position"]["s_km"])) < 0.15
    r = run("quarantine", "--db", db, "--json", cwd=tmp_path)
    (q,) = json.loads(r.stdout)
    assert q["raw"].strip() == BAD_ROW.strip() and q["kind"] == "invalid"


def test_ingest_clean_file_exits_zero_and_stdin_works(tmp_path: Path) -> None:
    r = run("ingest", "-", "--scenario", str(POLE), "--json", cwd=tmp_path, stdin=GOOD)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["total"]["accepted"] == 1


def test_status_as_of_hides_reports_not_yet_received(tmp_path: Path) -> None:
    # the scenario's s2 (Beardmore) was received 1911-12-12: invisible as of 12-11
    r = run("status", "--scenario", str(POLE), "--at", "1911-12-11T00:00:00Z", "--json",
            cwd=tmp_path)
    scott = next(f for f in json.loads(r.stdout)["forces"] if f["force"] == "scott")
    assert scott["last_report"]["report_id"] == "s1"
    r = run("status", "--scenario", str(POLE), "--at", "1911-12-13T00:00:00Z", "--json",
            cwd=tmp_path)
    scott = next(f for f in json.loads(r.stdout)["forces"] if f["force"] == "scott")
    assert scott["last_report"]["report_id"] == "s2"


def test_usage_errors_exit_two_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    r = run("status", "--at", "1911-12-11T00:00:00", "--scenario", str(POLE), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: --at:") and "has no zone" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run("status", cwd=tmp_path)  # no store, no scenario
    assert r.returncode == 2 and "no store at warroom.db" in r.stderr
    r = run("status", "--scenario", "nowhere", cwd=tmp_path)
    assert r.returncode == 2 and "no built-in scenario of that name" in r.stderr
    r = run("ingest", "missing.csv", "--scenario", str(POLE), cwd=tmp_path)
    assert r.returncode == 2 and "missing.csv: no such file" in r.stderr
    r = run("--debug", "status", "--scenario", "nowhere", cwd=tmp_path)
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_warroom_db_environment_variable(tmp_path: Path) -> None:
    env = {"WARROOM_DB": str(tmp_path / "env.db")}
    r = run("init", "--scenario", str(POLE), cwd=tmp_path, env=env)
    assert r.returncode == 0 and (tmp_path / "env.db").exists()
    r = run("status", "--json", "--at", "1911-12-20T00:00:00Z", cwd=tmp_path, env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["scenario"].startswith("Race to the South")


def test_brief_in_every_format(tmp_path: Path) -> None:
    base = ("brief", "--scenario", "berlin1945", "--at", "1945-04-12T12:00Z", "--samples", "300")
    r = run(*base, "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    assert b["version"] == 1 and b["as_of"] == "1945-04-12T12:00:00Z"
    assert any("US Ninth Army" in h for h in b["headline"])
    for fmt, magic in (("html", b"<!DOCTYPE html>"), ("pdf", b"%PDF"), ("md", b"# ")):
        r = run(*base, "--format", fmt, "--out", "out", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        path = Path(tmp_path, r.stdout.strip())
        assert path.name == "briefing-1945-04-12T1200Z." + fmt
        assert path.read_bytes().startswith(magic)
    r = run(*base, "--format", "docx", cwd=tmp_path)
    assert r.returncode == 2 and "--format 'docx'" in r.stderr


def test_replay_writes_every_slot_an_index_and_the_alerts(tmp_path: Path) -> None:
    r = run("replay", "--scenario", str(POLE), "--from", "1911-12-01T00:00Z", "--to",
            "1911-12-03T00:00Z", "--every", "12h", "--out", "out", "--samples", "200",
            "--formats", "json,md", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    jsons = sorted(out.glob("briefing-*.json"))
    assert [p.name for p in jsons] == [f"briefing-1911-12-0{d}T{h}00Z.json"
                                       for d, h in ((1, "00"), (1, "12"), (2, "00"),
                                                    (2, "12"), (3, "00"))]
    first, second = (json.loads(p.read_text()) for p in jsons[:2])
    assert second["previous"] == first["as_of"]
    index = (out / "index.html").read_text()
    assert all(p.stem in index for p in jsons)
    assert 'src="data:image/png;base64,' in index or "src='data:image/png;base64," in index
    assert "://" not in index  # the map is in the page: it opens offline
    assert (out / "alerts.jsonl").exists()


def test_brief_keeps_alerts_in_the_store(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    assert run("init", "--db", db, "--scenario", "berlin1945", cwd=tmp_path).returncode == 0
    for at in ("1945-04-12T06:00Z", "1945-04-12T12:00Z"):
        r = run("brief", "--db", db, "--at", at, "--format", "json", "--samples", "300",
                cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["previous"] == "1945-04-12T06:00:00Z"
    r = run("alerts", "--db", db, "--state", "firing", "--json", cwd=tmp_path)
    alerts = json.loads(r.stdout)
    assert alerts and all(a["state"] == "firing" for a in alerts)
    assert any(a["rule"] == "timetable_threat" and a["force"] == "us9" for a in alerts)


def test_serve_answers_on_loopback_and_refuses_other_hosts(tmp_path: Path) -> None:
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "warroom", "serve", "--scenario", str(POLE),
                             "--db", str(tmp_path / "s.db"), "--port", str(port)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    body = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.1)
        assert body is not None and body["ok"] and body["reports"] == 4
        req = urllib.request.Request(f"http://127.0.0.1:{port}/reports", data=GOOD.encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["accepted"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    r = run("serve", "--scenario", str(POLE), "--host", "0.0.0.0", cwd=tmp_path)
    assert r.returncode == 2 and "loopback" in r.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_with_a_cot_listener_and_a_uid_map(tmp_path: Path) -> None:
    import socket
    import time
    import urllib.request

    port, cot = _free_port(), _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "warroom", "serve", "--scenario", str(POLE),
                             "--db", str(tmp_path / "c.db"), "--port", str(port),
                             "--cot-port", str(cot), "--cot-map", "DEV-7=scott"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    event = (b'<?xml version="1.0"?><event version="2.0" uid="DEV-7" type="a-f-G-U-C" '
             b'how="m-g" time="1911-12-01T12:00:00Z" start="1911-12-01T12:00:00Z" '
             b'stale="1911-12-02T12:00:00Z"><point lat="-83.5" lon="170.0" hae="0" ce="500" '
             b'le="0"/><detail/></event>')
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", cot), timeout=1) as s:
                    s.sendall(event)
                break
            except OSError:
                time.sleep(0.1)
        found = []
        for _ in range(100):
            try:
                url = f"http://127.0.0.1:{port}/forces/scott"  # as of now: it came in now
                with urllib.request.urlopen(url, timeout=5) as r:
                    found = [m["report"] for m in json.loads(r.read())["measurements"]]
                if "cot/DEV-7" in found:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert "cot/DEV-7" in found  # the uid map named the force; no callsign was sent
    finally:
        proc.terminate()
        proc.wait(timeout=10)
