"""The forecast partitioned by force: the same numbers as :func:`warroom.forecast.run.forecast`
on any engine.

Each partition (a set of forces with their reports) runs estimate -> plan -> simulate ->
silence on its own: a force's estimate depends only on its own reports, and its samples only on
(seed, force id, sample, event), never on which forces share its batch. The partitions'
arrival and position samples are gathered and summarised once over all forces, which the races
(P(first) compares every racer's samples, sample by sample) need.

The steps of a partition are those of :func:`warroom.forecast.run.forecast`, in the same
order; ``tests/test_dask.py`` checks that the two agree to the last digit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from warroom.archive.buckets import bucket_of
from warroom.domain import Report, Scenario
from warroom.engine.base import Engine
from warroom.estimate.track import EstimateParams, ForceEstimate, estimate
from warroom.forecast.engine import silence_index, simulate_full
from warroom.forecast.params import ForecastParams
from warroom.forecast.plan import ForcePlan, plan
from warroom.forecast.run import FAN_DAYS
from warroom.forecast.summary import summarise


@dataclass
class Partition:
    """A set of forces and their reports (those known as of the forecast time suffice)."""

    forces: list[str]
    reports: dict[str, list[Report]]


@dataclass
class PartResult:
    """One partition's estimates, plans and samples (arrivals ``(samples, objectives)`` and
    positions ``(samples, len(FAN_DAYS))`` per force, in the partition's force order)."""

    estimates: dict[str, ForceEstimate]
    plans: list[ForcePlan]
    arrivals: list[np.ndarray]
    positions: list[np.ndarray]


def partitions(scenario: Scenario, reports: Mapping[str, Sequence[Report]], as_of: int,
               n: int) -> list[Partition]:
    """The scenario's forces in ``min(n, forces)`` partitions of nearly equal size, in order
    of force hash (the Parquet archive's buckets), each with the reports known as of
    ``as_of``."""
    forces = sorted(scenario.forces, key=lambda f: (bucket_of(f), f))
    n = max(1, min(n, len(forces)))
    cuts = [round(i * len(forces) / n) for i in range(n + 1)]
    return [Partition(fs, {f: [r for r in reports.get(f, ()) if r.received_at <= as_of]
                           for f in fs})
            for fs in (forces[a:b] for a, b in zip(cuts, cuts[1:], strict=False))]


def forecast_partition(part: Partition, *, scenario: Scenario, as_of: int,
                       params: ForecastParams, estimate_params: EstimateParams) -> PartResult:
    """Estimate, plan and simulate one partition's forces (run on a worker)."""
    sub = dataclasses.replace(scenario, forces={f: scenario.forces[f] for f in part.forces})
    estimates = estimate(sub, part.reports, as_of, estimate_params)
    rates = np.asarray(estimate_params.imm.rates, dtype=float)
    plans = plan(sub, estimates, part.reports, as_of, params, rates)
    arrivals, positions = simulate_full(plans, params, rates, FAN_DAYS)
    keep = silence_index(plans, arrivals, params.seed)
    return PartResult(estimates, plans,
                      [a[i] for a, i in zip(arrivals, keep, strict=True)],
                      [p[i] for p, i in zip(positions, keep, strict=True)])


def forecast(engine: Engine, scenario: Scenario, reports: Mapping[str, Sequence[Report]],
             as_of: int, params: ForecastParams | None = None,
             estimate_params: EstimateParams | None = None,
             n_partitions: int | None = None) -> dict[str, Any]:
    """The forecast of :func:`warroom.forecast.run.forecast`, partitions run on ``engine``
    (default: one partition per worker, at most one per force)."""
    params = params or ForecastParams()
    eparams = estimate_params or EstimateParams()
    n = n_partitions or min(engine.workers, max(1, len(scenario.forces)))
    parts = partitions(scenario, reports, as_of, n)
    results = engine.map(forecast_partition, parts, scenario=scenario, as_of=as_of,
                         params=params, estimate_params=eparams)
    estimates: dict[str, ForceEstimate] = {}
    by_force: dict[str, tuple[ForcePlan, np.ndarray, np.ndarray]] = {}
    for res in results:
        estimates.update(res.estimates)
        for p, a, pos in zip(res.plans, res.arrivals, res.positions, strict=True):
            by_force[p.force] = (p, a, pos)
    order = [by_force[f] for f in scenario.forces]  # the scenario's order, as plan() gives
    return summarise(scenario, {f: estimates[f] for f in scenario.forces},
                     [o[0] for o in order], [o[1] for o in order], as_of, params,
                     [o[2] for o in order])
