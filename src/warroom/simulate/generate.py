"""True tracks and the reports about them.

Truth. Each force follows :func:`warroom.synthetic.simulate_truth`: the regime chain the
forecast assumes (halted / advancing / pursuit, :data:`warroom.estimate.track.WARROOM_IMM`),
its own pace (log-normal, ``pace_sigma`` 1), a log-normal wait at each river with the
scenario's own ``delay_hours``, and its halt order (stop with probability ``p_obey`` if it
reaches the line while the order is in force, until the order ends). With ``mis_specified``
it also stops at the hidden line (probability ``surprise_p``, for ``surprise_days`` days),
which the scenario does not mention: a world the model does not expect.

Reports (``observed_at`` every 0.3-1.5 days, uniformly; times UTC):

=========  ======  ============  ===========  ===================================
source     share   grades        delay (h)    notes
=========  ======  ============  ===========  ===================================
hq         30%     A1 A2 B1      1-6          ``reached`` events come from here
liaison    40%     B2 B3 C2      6-18         ``crossed``/``halted`` events too
press      20%     C3 C4 D3      12-36
agent      10%     D4 E4 E5      24-72
=========  ======  ============  ===========  ===================================

A position report is the true position moved along the route by ``N(0, sqrt(sigma^2 + 5^2))``
km and across it by ``N(0, sigma)`` km, ``sigma`` the grade's default error
(:func:`warroom.grades.sigma_km`; the 5 km are "one unit is not the force's lead", as the
estimator assumes); no ``uncertainty_km`` is given, so the grade speaks. Off-axis reports
(``off_axis_share``) are moved 40-90 km across the route; false reports (``false_share``,
grades D4/E5/F6) 120-250 km along it. Every arrival at the objective within the record is
reported (``reached``, from hq); half the river crossings (``crossed``, when the force leaves
the river) and half the halts at a halt line (``halted``) are reported too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from warroom.geo import GEOD, Route
from warroom.grades import sigma_km
from warroom.simulate.world import World, build_world
from warroom.synthetic import Truth, TruthParams, report_times, simulate_truth
from warroom.timeutil import SECONDS_PER_DAY, parse_time

SOURCES = (  # name, share, grades, delay hours (lo, hi)
    ("hq", 0.3, ("A1", "A2", "B1"), (1.0, 6.0)),
    ("liaison", 0.4, ("B2", "B3", "C2"), (6.0, 18.0)),
    ("press", 0.2, ("C3", "C4", "D3"), (12.0, 36.0)),
    ("agent", 0.1, ("D4", "E4", "E5"), (24.0, 72.0)),
)
FALSE_GRADES = ("D4", "E5", "F6")
TRACK_SIGMA_KM = 5.0
START_REGIMES = (0.1, 0.75, 0.15)  # halted, advancing, pursuit at day 0


@dataclass(frozen=True)
class SimSpec:
    """What to simulate. Times: ``start`` is day 0 (UTC epoch seconds); ``days`` the record's
    length. ``per_race`` forces race for each objective; ``rivers`` (0-3) how many rivers
    lie across the routes; ``halt_share`` the share of forces with a halt order;
    ``off_axis_share`` and ``false_share`` the shares of bad position reports;
    ``start_regimes`` the regime probabilities at day 0; ``grades``, if given, the grades of
    all position reports (else each source's own). ``mis_specified`` adds the hidden halts
    (probability ``surprise_p``, lasting ``surprise_days``, ``(inf, inf)`` for good).

    The forecast's own world, where it should be calibrated, is ``rivers=0, halt_share=0,
    off_axis_share=0, false_share=0, start_regimes=(0, 1, 0), grades=("B2",)`` (see
    ``tests/test_backtest.py``); the defaults are a harder, more realistic world."""

    forces: int = 30
    per_race: int = 3
    days: float = 45.0
    seed: int = 0
    start: int = field(default_factory=lambda: parse_time("2001-03-01T00:00:00Z"))
    mis_specified: bool = False
    surprise_p: float = 0.9
    surprise_days: tuple[float, float] = (30.0, 60.0)
    halt_share: float = 0.5
    rivers: int = 3
    off_axis_share: float = 0.03
    false_share: float = 0.02
    start_regimes: tuple[float, float, float] = START_REGIMES  # halted, advancing, pursuit
    grades: tuple[str, ...] = ()  # every position report graded one of these; () by source

    def __post_init__(self) -> None:
        if self.forces < 1:
            raise ValueError("forces: expected at least 1")
        if self.per_race < 1:
            raise ValueError("per_race: expected at least 1")
        if not self.days > 0:
            raise ValueError("days: expected a positive number of days")


@dataclass
class Simulation:
    """A simulated scenario: the world, the reports (CSV rows) and the truth."""

    spec: SimSpec
    world: World
    reports: list[dict[str, Any]]
    truth: list[dict[str, Any]]          # per force and objective: the true arrival
    track: list[dict[str, Any]]          # the piecewise-linear true tracks' vertices
    report_truth: list[dict[str, Any]]   # per report: the true s and what kind it is


def simulate(spec: SimSpec) -> Simulation:
    """The whole simulation; the same spec (seed included) gives the same output."""
    rng = np.random.default_rng(spec.seed)
    world = build_world(rng, spec.forces, spec.per_race, spec.halt_share, spec.days,
                        spec.rivers)
    feats = {f["properties"]["id"]: f for f in world.features}
    delays = {fid: (p50, p90) for fid, _, p50, p90 in world.obstacles}
    sim = Simulation(spec, world, [], [], [], [])
    day = SECONDS_PER_DAY
    for fs in world.forces:
        route = Route(fs.route)
        olon, olat = feats[fs.objective]["geometry"]["coordinates"]
        goal = route.first_within(olat, olon, world.objectives[fs.objective][2])
        assert goal is not None  # the route ends at the objective
        crossings = sorted((s, *delays[fid], fid) for fid in delays
                           for s in crossing_km(route, fs.route,
                                                feats[fid]["geometry"]["coordinates"]))
        halts: tuple[tuple[float, float, float, float], ...] = ()
        halt_s = math.nan
        if fs.halt is not None:
            hits = crossing_km(route, fs.route, feats[fs.halt[0]]["geometry"]["coordinates"])
            if hits:
                halt_s = hits[0]
                halts = ((halt_s, fs.halt[1], fs.halt[2], fs.halt[3]),)
        surprise: tuple[tuple[float, float, float, float], ...] = ()
        if spec.mis_specified:
            hits = crossing_km(route, fs.route, world.hidden)
            if hits:
                surprise = ((hits[0], spec.surprise_p, *spec.surprise_days),)
        tp = TruthParams(start_regime=int(rng.choice(3, p=spec.start_regimes)),
                         obstacles=tuple(c[:3] for c in crossings), halts=halts,
                         surprise_halts=surprise)
        truth = simulate_truth(rng, tp, spec.days)
        arrival = truth.arrival(goal)
        arrived = arrival <= spec.days
        sim.truth.append({
            "force": fs.id, "race": fs.objective, "objective": fs.objective,
            "objective_km": goal, "arrival": spec.start + arrival * day if arrived else None,
            "arrival_day": arrival if arrived else None,
            "halt_line": fs.halt[0] if fs.halt and halts else None,
            "halted_at_line": _waited(truth, halt_s),
            "surprise_halt": bool(surprise) and _waited(truth, surprise[0][0]),
        })
        for t, s in zip(truth.t, truth.s, strict=True):
            sim.track.append({"force": fs.id, "t": spec.start + float(t) * day,
                              "s_km": float(s)})
        _position_reports(sim, rng, fs.id, route, truth, tp)
        _event_reports(sim, rng, fs, route, truth, goal, arrival if arrived else None,
                       crossings, halt_s)
    return sim


def crossing_km(route: Route, coords: Sequence[Sequence[float]],
                line: Sequence[Sequence[float]]) -> list[float]:
    """Sorted km along ``route`` (built from ``coords``) where it crosses ``line``.

    The polylines are intersected in the lon/lat plane, then each crossing point is projected
    onto the route. Within about a kilometre of :meth:`warroom.geo.Route.crossings` (the
    forecast's) on this theatre's short segments, and a hundred times cheaper: that one
    compares every kilometre of both lines."""
    p = np.asarray(coords, dtype=float)
    q = np.asarray(line, dtype=float)
    a, b = p[:-1, None, :], p[1:, None, :]
    c, d = q[None, :-1, :], q[None, 1:, :]
    r, u = b - a, d - c
    den = r[..., 0] * u[..., 1] - r[..., 1] * u[..., 0]
    w = c - a
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (w[..., 0] * u[..., 1] - w[..., 1] * u[..., 0]) / den
        v = (w[..., 0] * r[..., 1] - w[..., 1] * r[..., 0]) / den
    hit = (den != 0) & (t >= 0) & (t <= 1) & (v >= 0) & (v <= 1)
    i, j = np.nonzero(hit)
    if i.size == 0:
        return []
    pts = a[i, 0, :] + t[i, j][:, None] * r[i, 0, :]
    s, _ = route.project_many(pts[:, 1], pts[:, 0])
    return sorted(float(x) for x in s)


def _waited(truth: Truth, s: float) -> bool:
    """Whether the track stood still at ``s`` (a wait there)."""
    if not math.isfinite(s):
        return False
    at = np.flatnonzero(np.abs(truth.s - s) < 1e-9)
    return at.size >= 2 and float(truth.t[at[-1]] - truth.t[at[0]]) > 1e-6


def _offset(route: Route, s: np.ndarray, across_km: np.ndarray) -> tuple[np.ndarray, ...]:
    """(lat, lon) of points ``across_km`` to the right of the route at ``s`` km."""
    lat, lon = route.point_at(s)
    la0, lo0 = route.point_at(np.clip(s - 0.5, 0, route.length_km))
    la1, lo1 = route.point_at(np.clip(s + 0.5, 0, route.length_km))
    az, _, _ = GEOD.inv(lo0, la0, lo1, la1)
    lon2, lat2, _ = GEOD.fwd(lon, lat, np.asarray(az) + 90.0, across_km * 1000.0)
    return np.asarray(lat2), np.asarray(lon2)


def _position_reports(sim: Simulation, rng: np.random.Generator, force: str, route: Route,
                      truth: Truth, tp: TruthParams) -> None:
    spec = sim.spec
    times = report_times(rng, tp, spec.days)
    n = times.size
    src = rng.choice(len(SOURCES), size=n, p=[s[1] for s in SOURCES])
    table = [spec.grades or s[2] for s in SOURCES]
    grades = [table[k][int(rng.integers(len(table[k])))] for k in src]
    delay_h = np.array([rng.uniform(*SOURCES[k][3]) for k in src])
    kind = np.full(n, "position", dtype=object)
    u = rng.uniform(size=n)
    kind[u < spec.false_share + spec.off_axis_share] = "off_axis"
    kind[u < spec.false_share] = "false"
    for j in np.flatnonzero(kind == "false"):
        grades[j] = FALSE_GRADES[int(rng.integers(3))]
    sig = np.array([sigma_km(g) for g in grades])
    along = rng.normal(0.0, np.sqrt(sig**2 + TRACK_SIGMA_KM**2))
    across = rng.normal(0.0, sig)
    off = kind == "off_axis"
    across[off] = rng.choice([-1.0, 1.0], off.sum()) * rng.uniform(40, 90, off.sum())
    bad = kind == "false"
    along[bad] = rng.choice([-1.0, 1.0], bad.sum()) * rng.uniform(120, 250, bad.sum())
    s_true = truth.position(times)
    s_rep = np.clip(s_true + along, 0.0, route.length_km)
    lat, lon = _offset(route, s_rep, across)
    day = SECONDS_PER_DAY
    for j in range(n):
        obs = spec.start + round(times[j] * day)
        rid = f"{force}-{j:04d}"
        source = SOURCES[src[j]][0] if kind[j] != "false" else "agent"
        sim.reports.append({
            "report_id": rid, "source": source, "force": force, "observed_at": obs,
            "received_at": obs + round(delay_h[j] * 3600), "lat": float(lat[j]),
            "lon": float(lon[j]), "grade": grades[j], "event": "position", "target": None,
            "text": None})
        sim.report_truth.append({"source": source, "report_id": rid, "force": force,
                                 "kind": str(kind[j]), "true_s_km": float(s_true[j]),
                                 "reported_s_km": float(s_rep[j]),
                                 "across_km": float(across[j])})


def _event_reports(sim: Simulation, rng: np.random.Generator, fs: Any, route: Route,
                   truth: Truth, goal: float, arrival: float | None,
                   crossings: list[tuple[float, float, float, str]], halt_s: float) -> None:
    spec = sim.spec
    day = SECONDS_PER_DAY
    events: list[tuple[str, str, float, float, str, str, tuple[float, float]]] = []
    if arrival is not None:
        events.append(("reached", fs.objective, arrival, goal, "hq", "A1", (1.0, 6.0)))
    for s, _, _, river in crossings:
        left = truth.arrival(s + 1e-6)  # leaving the river: the first time past it
        if left <= spec.days and rng.uniform() < 0.5:
            events.append(("crossed", river, left, s + 0.5, "liaison", "B2", (6.0, 18.0)))
    if _waited(truth, halt_s) and rng.uniform() < 0.5:
        at = truth.arrival(halt_s) + 0.25
        if at <= spec.days:
            events.append(("halted", fs.halt[0], at, halt_s, "liaison", "B2", (6.0, 18.0)))
    for k, (event, target, t, s, source, grade, (lo, hi)) in enumerate(events):
        lat, lon = route.point_at(min(s, route.length_km))
        obs = spec.start + round(t * day)
        rid = f"{fs.id}-{event}-{k}"
        sim.reports.append({
            "report_id": rid, "source": source, "force": fs.id, "observed_at": obs,
            "received_at": obs + round(rng.uniform(lo, hi) * 3600), "lat": float(lat),
            "lon": float(lon), "grade": grade, "event": event, "target": target,
            "text": f"{event} {target}"})
        sim.report_truth.append({"source": source, "report_id": rid, "force": fs.id,
                                 "kind": event, "true_s_km": float(s),
                                 "reported_s_km": float(s), "across_km": 0.0})

