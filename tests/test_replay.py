"""Replaying berlin1945: the alerts the record should raise, and replay honesty."""

from __future__ import annotations

import json

import pytest

from warroom.assess.config import alert_config
from warroom.brief import due_slots
from warroom.forecast.params import ForecastParams
from warroom.replay import replay
from warroom.timeutil import parse_time
from warroom.workspace import open_workspace

H = 3600


@pytest.fixture(scope="module")
def berlin():
    ws = open_workspace(None, "berlin1945")  # in memory, seeded with the scenario's reports
    return ws.scenario, ws.store.reports_by_force()


def slots(to: str) -> list[int]:
    return [s for s, _ in due_slots(None, parse_time(to),
                                    first=parse_time("1945-04-01T00:00:00Z"))]


@pytest.fixture(scope="module")
def history(berlin):
    sc, by = berlin
    steps = list(replay(sc, by, slots("1945-05-03T00:00:00Z"),
                        ForecastParams(samples=300, seed=0), cfg=alert_config(sc)))
    return steps


def fired(history, rule: str, force: str | None = None, target: str | None = None):
    return [(s.slot, t.alert) for s in history for t in s.transitions
            if t.to == "firing" and t.alert.rule == rule
            and (force is None or t.alert.force == force)
            and (target is None or t.alert.target == target)]


def test_ninth_army_threat_flagged_by_noon_on_12_april(history) -> None:
    by_noon = parse_time("1945-04-12T12:00:00Z")
    hits = [(t, a) for rule in ("timetable_threat", "accelerating")
            for t, a in fired(history, rule, "us9") if t <= by_noon]
    assert hits, "no timetable_threat or accelerating alert for the US Ninth Army"
    assert any("US Ninth Army" in a.message for _, a in hits)


def test_berlin_arrival_fires_by_2_may(history) -> None:
    hits = fired(history, "arrived", target="berlin")
    assert hits and hits[0][0] <= parse_time("1945-05-02T00:00:00Z")
    assert "the race for Berlin is decided" in hits[0][1].message


def test_no_acceleration_alert_on_a_single_recent_report(history, berlin) -> None:
    sc, by = berlin
    for slot, a in fired(history, "accelerating"):
        recent = [r for r in by[a.force]
                  if slot - 48 * H <= r.observed_at <= slot and r.received_at <= slot]
        assert len(recent) >= 2, (a.force, slot, a.message)


def test_replay_honesty_later_reports_change_nothing_before_they_arrive(berlin) -> None:
    sc, by = berlin
    cut = parse_time("1945-04-12T12:00:00Z")
    early = {f: [r for r in rs if r.received_at <= cut] for f, rs in by.items()}
    assert sum(map(len, early.values())) < sum(map(len, by.values()))
    params = ForecastParams(samples=200, seed=3)
    ss = slots("1945-04-12T12:00:00Z")
    full = list(replay(sc, by, ss, params, cfg=alert_config(sc)))
    part = list(replay(sc, early, ss, params, cfg=alert_config(sc)))
    a = json.dumps(full[-1].briefing, sort_keys=True).encode()
    b = json.dumps(part[-1].briefing, sort_keys=True).encode()
    assert a == b
