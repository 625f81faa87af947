"""Replay: walk a scenario's history slot by slot under the bitemporal rule.

At each slot T the situation is built from the reports received by T only, the alert rules
are evaluated against the previous briefing, the lifecycle advances, and a
briefing is built with the previous one. What a briefing says as of T therefore cannot
depend on anything received after T (the test of replay honesty).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from warroom.assess.config import AlertConfig
from warroom.assess.lifecycle import Alert, Transition, advance
from warroom.assess.rules import evaluate
from warroom.assess.sinks import Sink
from warroom.brief import build_briefing
from warroom.domain import Report, Scenario
from warroom.estimate.track import EstimateParams
from warroom.forecast.params import ForecastParams
from warroom.situation import build_situation


@dataclass
class Step:
    slot: int
    briefing: dict[str, Any]
    transitions: list[Transition]
    alerts: dict[str, Alert]


def replay(scenario: Scenario, reports: Mapping[str, Sequence[Report]],
           slots: Sequence[int], fparams: ForecastParams | None = None,
           eparams: EstimateParams | None = None, cfg: AlertConfig | None = None,
           sinks: Sequence[Sink] = ()) -> Iterator[Step]:
    """One step per slot, in time order."""
    cfg = cfg or AlertConfig()
    alerts: dict[str, Alert] = {}
    previous: dict[str, Any] | None = None
    for slot in slots:
        sit = build_situation(scenario, reports, slot, fparams, eparams)
        alerts, transitions = advance(alerts, evaluate(sit, previous, cfg), slot, cfg)
        for t in transitions:
            for sink in sinks:
                sink.send(t)
        b = build_briefing(sit, alerts, transitions, previous, slot)
        yield Step(slot, b, transitions, alerts)
        previous = b
