"""Forecast benchmark: the event-driven Monte Carlo engine at scale.

    python benchmarks/forecast.py            # the target size and the scaling curve
    python benchmarks/forecast.py --quick    # smaller sizes

Target: 1,000 forces x 10,000 samples x 3 objectives, 30-day horizon, with obstacles and halt
lines, in <= 2 s on this 2-core machine, memory not growing with the horizon. Each size runs
in its own process so peak memory (RSS) is its own. The peer, on the same plans in the same
run, is a time-stepped engine (hourly steps, the same model, vectorised the same way): what
the event-driven design saves.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from warroom.estimate.track import WARROOM_IMM
from warroom.forecast.engine import simulate
from warroom.forecast.params import ForecastParams
from warroom.forecast.plan import HALT, OBJECTIVE, OBSTACLE, ForcePlan

RATES = np.asarray(WARROOM_IMM.rates)


def plans(n_forces: int, seed: int = 0) -> list[ForcePlan]:
    """Synthetic forces: 3 objectives, 4 river crossings and a halt line on each route."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_forces):
        obj = np.sort(rng.uniform(200, 900, 3))
        riv = np.sort(rng.uniform(50, 800, 4))
        halt = rng.uniform(300, 700)
        bars = ([(s, OBJECTIVE, float(k), 0.0, 0.0) for k, s in enumerate(obj)]
                + [(s, OBSTACLE, np.log(1.0), 0.8, 0.0) for s in riv]
                + [(halt, HALT, 0.6, 2.0, np.inf)])
        bars.sort()
        reg = rng.dirichlet([1, 3, 1])
        out.append(ForcePlan(
            force=f"f{i}", t0=-rng.uniform(0, 1), x=np.array([rng.uniform(0, 100),
                                                              rng.uniform(5, 60)]),
            cov=np.diag([25.0, 50.0]), regime=reg, objectives=["a", "b", "c"],
            objective_km=list(obj), reached={},
            bar_s=np.array([b[0] for b in bars]), bar_kind=np.array([b[1] for b in bars]),
            bar_a=np.array([b[2] for b in bars]), bar_b=np.array([b[3] for b in bars]),
            bar_c=np.array([b[4] for b in bars]), advancing_kmpd=25.0, pursuit_kmpd=60.0,
            base_km=0.0, supply_free_km=300.0))
    return out


def stepped(ps: list[ForcePlan], params: ForecastParams, dt_h: float = 1.0) -> np.ndarray:
    """The peer: the same model advanced in fixed steps (regime switches, delays and halts
    handled per step); memory per sample, time per step."""
    n, dt = params.samples, dt_h / 24
    rng = np.random.default_rng(params.seed)
    m = len(ps) * n
    fi = np.repeat(np.arange(len(ps)), n)
    s = np.stack([p.x for p in ps])[fi, 0].copy()
    v = np.maximum(np.stack([p.x for p in ps])[fi, 1], 0)
    reg = np.ones(m, dtype=int)
    wait = np.zeros(m)
    stopped = np.zeros(m, dtype=bool)
    bar_s = np.stack([p.bar_s for p in ps])
    kind = np.stack([p.bar_kind for p in ps])
    ptr = np.zeros(m, dtype=int)
    arrival = np.full((m, 3), np.inf)
    exit_rate = -np.diag(RATES)
    for step in range(int(params.horizon_days / dt)):
        t = step * dt
        switch = rng.random(m) < exit_rate[reg] * dt
        reg = np.where(switch, (reg + 1 + (rng.random(m) < 0.5)) % 3, reg)
        v = np.where(switch, np.where(reg == 0, 0, np.where(reg == 1, 25, 60)
                                      * np.exp(0.5 * rng.standard_normal(m))), v)
        moving = (wait <= 0) & ~stopped
        s = np.where(moving, s + v * dt * np.minimum(1, 300 / np.maximum(s, 1)), s)
        wait -= dt
        nxt = bar_s[fi, np.minimum(ptr, bar_s.shape[1] - 1)]
        hit = (s >= nxt) & (ptr < bar_s.shape[1])
        if hit.any():
            k = kind[fi[hit], ptr[hit]]
            rows = np.flatnonzero(hit)
            obj = rows[k == OBJECTIVE]
            arrival[obj, np.minimum(ptr[obj], 2)] = np.minimum(arrival[obj, np.minimum(ptr[obj],
                                                                                       2)], t)
            wait[rows[k == OBSTACLE]] = rng.lognormal(0, 0.8, int((k == OBSTACLE).sum()))
            stopped[rows[k == HALT]] |= rng.random(int((k == HALT).sum())) < 0.6
            ptr[hit] += 1
    return arrival


def measure(kind: str, forces: int, samples: int, horizon: float) -> dict[str, float]:
    ps = plans(forces)
    params = ForecastParams(samples=samples, horizon_days=horizon)
    t = time.perf_counter()
    if kind == "event":
        simulate(ps, params, RATES)
    else:
        stepped(ps, params)
    return {"seconds": time.perf_counter() - t,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def sub(kind: str, forces: int, samples: int, horizon: float = 30.0) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(forces),
                          str(samples), str(horizon)], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", nargs=4)
    a = ap.parse_args()
    if a.child:
        k, f, n, h = a.child
        print(json.dumps(measure(k, int(f), int(n), float(h))))
        return
    f, n = (100, 2_000) if a.quick else (1_000, 10_000)
    main_run = sub("event", f, n)
    print(f"event-driven: {f:,} forces x {n:,} samples x 3 objectives, 30 days: "
          f"{main_run['seconds']:.2f} s, peak RSS {main_run['peak_rss_mb']:.0f} MB "
          f"(target <= 2 s: {'met' if main_run['seconds'] <= 2 else 'NOT met'})")
    long_run = sub("event", f, n, 120.0)
    growth = long_run["peak_rss_mb"] / main_run["peak_rss_mb"]
    print(f"same at a 120-day horizon: {long_run['seconds']:.2f} s, peak RSS "
          f"{long_run['peak_rss_mb']:.0f} MB (memory x{growth:.2f})")
    pf, pn = (20, 1_000) if a.quick else (100, 2_000)
    ev, st = sub("event", pf, pn), sub("stepped", pf, pn)
    print(f"peer at {pf} x {pn:,}: event-driven {ev['seconds']:.2f} s vs hourly steps "
          f"{st['seconds']:.2f} s (x{st['seconds'] / ev['seconds']:.0f})")
    print("scaling (forces x samples: seconds, peak RSS MB):")
    sizes = [(10, 1_000), (100, 1_000), (100, 10_000), (1_000, 1_000), (1_000, 10_000),
             (10_000, 1_000), (10_000, 10_000)]
    if a.quick:
        sizes = sizes[:4]
    for fs, ns in sizes:
        r = sub("event", fs, ns)
        print(f"  {fs:>6,} x {ns:>6,}: {r['seconds']:7.2f} s  {r['peak_rss_mb']:7.0f} MB  "
              f"({fs * ns / r['seconds'] / 1e6:.1f} M samples/s)")


if __name__ == "__main__":
    main()
