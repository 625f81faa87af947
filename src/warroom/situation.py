"""The situation as of a time: the one object the assess and publish stages read.

``build_situation`` is a pure function of the scenario and the reports known as of T (the
bitemporal rule: ``received_at <= T``): estimates of every force, then the forecast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from warroom.domain import Report, Scenario
from warroom.estimate.track import EstimateParams, ForceEstimate, estimate
from warroom.forecast.params import ForecastParams
from warroom.forecast.run import forecast


@dataclass
class Situation:
    scenario: Scenario
    as_of: int
    reports: dict[str, list[Report]]
    estimates: dict[str, ForceEstimate]
    forecast: dict[str, Any]


def build_situation(scenario: Scenario, reports: Mapping[str, Sequence[Report]], as_of: int,
                    fparams: ForecastParams | None = None,
                    eparams: EstimateParams | None = None) -> Situation:
    """Estimates and forecast from the reports received by ``as_of``."""
    known = {f: [r for r in rs if r.received_at <= as_of] for f, rs in reports.items()}
    est = estimate(scenario, known, as_of, eparams)
    fc = forecast(scenario, est, known, as_of, fparams, eparams)
    return Situation(scenario, as_of, known, est, fc)
