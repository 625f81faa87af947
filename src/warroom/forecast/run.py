"""The forecast stage as one pure function: scenario + estimates + reports -> forecast."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from warroom.domain import Report, Scenario
from warroom.estimate.track import EstimateParams, ForceEstimate
from warroom.forecast.engine import silence_index, simulate_full
from warroom.forecast.params import ForecastParams
from warroom.forecast.plan import plan
from warroom.forecast.summary import summarise

FAN_DAYS = (1.0, 2.0, 3.0)  # where each force may be in 24, 48 and 72 h (fans, halt lines)


def forecast(scenario: Scenario, estimates: dict[str, ForceEstimate],
             reports: Mapping[str, Sequence[Report]], as_of: int,
             params: ForecastParams | None = None,
             estimate_params: EstimateParams | None = None) -> dict[str, Any]:
    """ETA distributions and race odds for every force of the scenario (see
    :mod:`warroom.forecast.summary` for the result)."""
    params = params or ForecastParams()
    rates = np.asarray((estimate_params or EstimateParams()).imm.rates, dtype=float)
    plans = plan(scenario, estimates, reports, as_of, params, rates)
    arrivals, positions = simulate_full(plans, params, rates, FAN_DAYS)
    keep = silence_index(plans, arrivals, params.seed)
    arrivals = [a[i] for a, i in zip(arrivals, keep, strict=True)]
    positions = [p[i] for p, i in zip(positions, keep, strict=True)]
    return summarise(scenario, estimates, plans, arrivals, as_of, params, positions)
