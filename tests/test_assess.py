"""Alerts: the lifecycle, each rule on purpose-built situations, the sinks, the schedule."""

from __future__ import annotations

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from warroom import scenario as scenario_mod
from warroom.assess.config import AlertConfig
from warroom.assess.lifecycle import Alert, Transition, advance
from warroom.assess.rules import Condition, evaluate
from warroom.assess.sinks import JsonLinesSink, WebhookSink
from warroom.brief import build_briefing, due_slots
from warroom.domain import Report, Scenario
from warroom.forecast.params import ForecastParams
from warroom.situation import build_situation
from warroom.timeutil import SECONDS_PER_DAY, parse_time

from .conftest import POLE
from .test_estimate import T0, report

H = 3600
DAY = SECONDS_PER_DAY
CFG = AlertConfig()


def cond(active: bool, rule: str = "accelerating", force: str = "a", target: str = "-"):
    return Condition(rule, force, target, active, 1.0, "msg" if active else "")


def test_lifecycle_pending_firing_resolved_with_for_and_dedup() -> None:
    alerts: dict[str, Alert] = {}
    alerts, tr = advance(alerts, [cond(True)], 0, CFG)   # accelerating: for 6 h
    assert tr == [] and alerts["accelerating:a:-"].state == "pending"
    alerts, tr = advance(alerts, [cond(True)], 3 * H, CFG)
    assert tr == [] and alerts["accelerating:a:-"].state == "pending"
    alerts, tr = advance(alerts, [cond(True)], 6 * H, CFG)
    assert [t.to for t in tr] == ["firing"] and alerts["accelerating:a:-"].fired_at == 6 * H
    alerts, tr = advance(alerts, [cond(True)], 12 * H, CFG)
    assert tr == []  # still firing: no duplicate
    alerts, tr = advance(alerts, [cond(False)], 18 * H, CFG)
    assert [t.to for t in tr] == ["resolved"] and tr[0].alert.resolved_at == 18 * H
    alerts, tr = advance(alerts, [cond(True)], 24 * H, CFG)  # a new episode starts pending
    assert tr == [] and alerts["accelerating:a:-"].since == 24 * H


def test_one_noisy_evaluation_does_not_fire() -> None:
    alerts, tr1 = advance({}, [cond(True)], 0, CFG)
    alerts, tr2 = advance(alerts, [cond(False)], 6 * H, CFG)
    assert tr1 == tr2 == [] and alerts == {}


def test_eta_earlier_is_suppressed_while_approaching_line_fires() -> None:
    conds = [cond(True, "approaching_line", "a", "line"), cond(True, "eta_earlier", "a", "obj")]
    alerts, tr = advance({}, conds, 0, CFG)
    eta = alerts["eta_earlier:a:obj"]
    assert eta.state == "firing" and eta.suppressed and "approaching_line:a:line" in eta.note
    alerts, _ = advance(alerts, [cond(True, "eta_earlier", "a", "obj")], 6 * H, CFG)
    assert not alerts["eta_earlier:a:obj"].suppressed


def situation(sc: Scenario, reps: list[Report], at: int, samples: int = 400,
              **overrides: float):
    by: dict[str, list[Report]] = {}
    for r in reps:
        by.setdefault(r.force, []).append(r)
    return build_situation(sc, by, at, ForecastParams(samples=samples, seed=1,
                                                      overrides=overrides))


def active(sit, rule: str, previous=None) -> dict[str, Condition]:
    return {c.key: c for c in evaluate(sit, previous, CFG) if c.rule == rule and c.active}


def test_accelerating_needs_two_recent_reports(pole: Scenario) -> None:
    slow = [report(pole, f"a{k}", k, 50 + 10 * k) for k in range(8)]
    fast = slow + [report(pole, f"b{k}", 7 + k, 120 + 45 * k) for k in (1, 2)]
    at = T0 + 9 * DAY
    hit = active(situation(pole, fast, at), "accelerating")
    assert "accelerating:amundsen:-" in hit
    assert "km/day" in hit["accelerating:amundsen:-"].message
    lone = slow + [report(pole, "b1", 8, 165)]  # one report in the last 48 h
    assert "accelerating:amundsen:-" not in active(situation(pole, lone, at + DAY),
                                                   "accelerating")


def test_timetable_threat_for_a_fast_rival(pole: Scenario) -> None:
    # Amundsen (a rival: the perspective is Britain) 200 km from the pole in late November,
    # Scott planned for 15 January: the threat is plain
    reps = [report(pole, f"a{k}", 20 + k, 800 + 40 * k) for k in range(8)]
    at = T0 + 27 * DAY
    hit = active(situation(pole, reps, at), "timetable_threat")
    c = hit["timetable_threat:amundsen:pole"]
    assert c.value >= 0.3 and "before our timetable" in c.message and c.reports


def test_silent_after_the_configured_quiet(pole: Scenario) -> None:
    reps = [report(pole, f"a{k}", k, 50 + 10 * k) for k in range(3)]
    assert "silent:amundsen:-" not in active(situation(pole, reps, T0 + 2 * DAY + 6 * H),
                                             "silent")
    c = active(situation(pole, reps, T0 + 3 * DAY), "silent")["silent:amundsen:-"]
    assert "No report about Amundsen's pole party for 24 h" in c.message


def test_arrived_decides_the_race(pole: Scenario) -> None:
    reps = [report(pole, f"a{k}", k, 1100 + 40 * k) for k in range(4)]
    reps.append(Report(source="test", report_id="pole", force="amundsen",
                       observed_at=T0 + 5 * DAY, received_at=T0 + 5 * DAY, event="reached",
                       target="pole", grade="A1"))
    c = active(situation(pole, reps, T0 + 5 * DAY), "arrived")["arrived:amundsen:pole"]
    assert "the race for South Pole is decided" in c.message


def halt_scenario(tmp_path: Path) -> Scenario:
    d = tmp_path / "pole"
    shutil.copytree(POLE, d)
    toml = (d / "scenario.toml").read_text().replace(
        'supply_base = "framheim"\n', 'supply_base = "framheim"\nhalt_lines = [{ line = '
        '"plateau-edge", p_obey = 0.9, from = "1911-11-01T00:00:00Z" }]\n', 1)
    (d / "scenario.toml").write_text(toml)
    return scenario_mod.load(d)


def test_approaching_and_crossed_line(tmp_path: Path) -> None:
    sc = halt_scenario(tmp_path)
    line_km = sc.forces["amundsen"].route.crossings(sc.features["plateau-edge"].coords)[0]
    near = [report(sc, f"a{k}", k, line_km - 150 + 50 * k) for k in range(3)]
    # no supply line to slow it: 50 km/day, 50 km from the line
    unsupplied = {"*.supply_free_km": float("inf")}
    hit = active(situation(sc, near, T0 + 2 * DAY, **unsupplied), "approaching_line")
    assert "approaching_line:amundsen:plateau-edge" in hit
    beyond = near + [report(sc, "over", 4, line_km + 40)]
    c = active(situation(sc, beyond, T0 + 4 * DAY), "crossed_line")
    assert "crossed_line:amundsen:plateau-edge" in c
    assert "test/over" in c["crossed_line:amundsen:plateau-edge"].message
    assert active(situation(sc, near, T0 + 2 * DAY), "crossed_line") == {}


def test_eta_earlier_against_the_previous_briefing(pole: Scenario) -> None:
    reps = [report(pole, f"a{k}", k, 900 + 40 * k) for k in range(6)]
    unsupplied = {"*.supply_free_km": float("inf")}
    before = situation(pole, reps[:3], T0 + 2 * DAY, **unsupplied)
    prev = build_briefing(before, {}, [], None)
    for f in prev["forces"]:  # pretend the last briefing expected it much later
        for o in f["objectives"].values():
            o["eta"]["p50"] = "1912-03-01T00:00:00Z"
    now = situation(pole, reps, T0 + 5 * DAY, **unsupplied)
    assert now.forecast["forces"]["amundsen"]["objectives"]["pole"]["eta"]["p50"] is not None
    hit = active(now, "eta_earlier", prev)
    assert "eta_earlier:amundsen:pole" in hit
    assert "earlier since the last briefing" in hit["eta_earlier:amundsen:pole"].message


def test_due_slots_catch_up_marks_missed_slots_late() -> None:
    d = parse_time("1945-04-12T00:00:00Z")
    now = d + 13 * H + 5 * 60
    assert due_slots(d, now) == [(d + 6 * H, True), (d + 12 * H, True)]
    assert due_slots(d + 12 * H, d + 12 * H + 60) == []
    assert due_slots(d + 6 * H, d + 12 * H + 60) == [(d + 12 * H, False)]
    assert due_slots(None, now) == [(d + 12 * H, True)]
    assert [s for s, _ in due_slots(None, d + DAY, first=d + 1)] == [
        d + 6 * H, d + 12 * H, d + 18 * H, d + DAY]


def transition(i: int) -> Transition:
    a = Alert(id=f"t:{i}:-", rule="t", force=str(i), target="-", state="firing", since=0,
              message=f"alert {i}", value=1.0, fired_at=0)
    return Transition(0, a, "firing")


class _Hook(BaseHTTPRequestHandler):
    fail_first = 0
    delay_s = 0.0
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(type(self).delay_s)
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        type(self).received.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def hook():
    _Hook.received, _Hook.fail_first, _Hook.delay_s = [], 0, 0.0
    srv = HTTPServer(("127.0.0.1", 0), _Hook)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_port}/hook"
    srv.shutdown()


def test_webhook_delivers_once_and_retries_after_failure(hook: str) -> None:
    _Hook.fail_first = 2
    sink = WebhookSink(hook, attempts=5, base_s=0.05)
    sink.send(transition(1))
    sink.send(transition(2))
    sink.close()
    ids = [b["alert"]["id"] for b in _Hook.received]
    assert ids == ["t:1:-", "t:2:-"]  # each exactly once, in order, despite two 503s
    assert sink.delivered == 2 and sink.failed == 0


def test_webhook_never_blocks_the_caller(hook: str) -> None:
    _Hook.delay_s = 0.5
    sink = WebhookSink(hook, base_s=0.05)
    for i in range(4):
        sink.send(transition(i))
    assert sink.delivered == 0  # send() returned while the receiver was still busy
    sink.close()
    assert sink.delivered == 4


def test_jsonl_sink(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "a.jsonl")
    sink.send(transition(7))
    (line,) = (tmp_path / "a.jsonl").read_text().splitlines()
    assert json.loads(line)["alert"]["message"] == "alert 7"
