"""Benchmark of the batched estimators against filterpy and Stone Soup.

Same NCV model (q = 1 km²/day³, r = 1 km²), same data, one run each:

1. three-way comparison on 100 forces × 1,000 reports: the batched ``kalman_filter``,
   filterpy's ``KalmanFilter`` (per track, F and Q built per step) and Stone Soup
   (``KalmanPredictor(ConstantVelocity(q))`` + ``KalmanUpdater(LinearGaussian)``, on 25 of the
   forces because it is slow; rates are per update). The batched run takes a few
   milliseconds, so it is repeated (at least 10 runs and 1 s) and its median rate is the one
   compared (the best is printed too); the peers run once over seconds of work. Prints
   updates/s, the speed ratios and the largest absolute difference between the filtered
   states.
2. the batched Kalman filter and the IMM alone at 1,000,000 forces × 10 reports and 10,000 ×
   1,000, each case in a fresh subprocess, printing updates/s of the first run (cold: its
   memory is fresh from the OS, page faults included) and the best of three more runs in the
   same process (warm; the machine is shared, so a single run can be slowed by others), and
   peak resident memory. The two engines run in turn, ``--rounds`` times (default 3), and the
   IMM's time is compared with the plain filter's of the same round: the summary gives the
   median over rounds of the warm rates and of the per-round IMM/KF time ratio.

Times are in days, positions in km. Report times lie on a 1/64-day grid so that Stone Soup's
datetime timestamps (microsecond resolution; one day of the model is mapped to one second)
represent them exactly.

Usage: ``python benchmarks/estimate.py [--quick] [--no-stonesoup] [--rounds N] [--large-only]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from warroom.estimate.imm import imm_filter  # noqa: E402
from warroom.estimate.kalman import kalman_filter  # noqa: E402

Q = 1.0  # km²/day³
R = 1.0  # km²
P0 = np.diag([100.0, 400.0])  # km², km²/day²


def make_data(n_forces: int, n_reports: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Forces moving at 0–60 km/day with speed changes; irregular reports, 1 km noise."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(4, 65, size=(n_forces, n_reports)) / 64.0  # 1/16 to 1 day
    steps[:, 0] = rng.integers(0, 640, size=n_forces) / 64.0
    t = np.cumsum(steps, axis=1)
    speed = rng.uniform(0.0, 60.0, size=(n_forces, 1)) + np.cumsum(
        rng.normal(0.0, 2.0, size=(n_forces, n_reports)), axis=1
    )
    s = np.cumsum(speed * np.diff(t, axis=1, prepend=t[:, :1]), axis=1)
    z = s + rng.normal(0.0, np.sqrt(R), size=s.shape)
    x0 = np.column_stack([z[:, 0], np.zeros(n_forces)])
    return {"t": t, "z": z, "x0": x0}


def run_batched(d: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    res = kalman_filter(d["t"], d["z"], R, True, d["x0"], P0, Q)
    return res.x, time.perf_counter() - start


def run_batched_repeated(
    d: dict[str, np.ndarray], min_runs: int = 10, min_seconds: float = 1.0
) -> tuple[np.ndarray, float, float]:
    """The batched filter run again and again: its output and the median and best time."""
    times: list[float] = []
    x = np.empty(0)
    while len(times) < min_runs or sum(times) < min_seconds:
        x, elapsed = run_batched(d)
        times.append(elapsed)
    return x, float(np.median(times)), min(times)


def run_filterpy(d: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    from filterpy.kalman import KalmanFilter

    n_f, n = d["t"].shape
    out = np.empty((n_f, n, 2))
    start = time.perf_counter()
    for f in range(n_f):
        kf = KalmanFilter(dim_x=2, dim_z=1)
        kf.x = d["x0"][f].reshape(2, 1).copy()
        kf.P = P0.copy()
        kf.H = np.array([[1.0, 0.0]])
        t_prev = d["t"][f, 0]
        for k in range(n):
            dt = d["t"][f, k] - t_prev
            t_prev = d["t"][f, k]
            F = np.array([[1.0, dt], [0.0, 1.0]])
            Qk = Q * np.array([[dt**3 / 3.0, dt**2 / 2.0], [dt**2 / 2.0, dt]])
            kf.predict(F=F, Q=Qk)
            kf.update(d["z"][f, k], R=R)
            out[f, k] = kf.x[:, 0]
    return out, time.perf_counter() - start


def run_stonesoup(d: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    from stonesoup.models.measurement.linear import LinearGaussian
    from stonesoup.models.transition.linear import ConstantVelocity
    from stonesoup.predictor.kalman import KalmanPredictor
    from stonesoup.types.detection import Detection
    from stonesoup.types.hypothesis import SingleHypothesis
    from stonesoup.types.state import GaussianState
    from stonesoup.updater.kalman import KalmanUpdater

    n_f, n = d["t"].shape
    out = np.empty((n_f, n, 2))
    epoch = datetime(2000, 1, 1)
    start = time.perf_counter()
    predictor = KalmanPredictor(ConstantVelocity(Q))
    model = LinearGaussian(ndim_state=2, mapping=(0,), noise_covar=np.array([[R]]))
    updater = KalmanUpdater(model)
    for f in range(n_f):
        stamps = [epoch + timedelta(seconds=float(x)) for x in d["t"][f]]  # 1 day -> 1 s
        state = GaussianState(d["x0"][f].reshape(2, 1), P0.copy(), timestamp=stamps[0])
        for k in range(n):
            prediction = predictor.predict(state, timestamp=stamps[k])
            det = Detection(
                np.array([[d["z"][f, k]]]), timestamp=stamps[k], measurement_model=model
            )
            state = updater.update(SingleHypothesis(prediction, det))
            out[f, k] = np.asarray(state.state_vector, dtype=float)[:, 0]
    return out, time.perf_counter() - start


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def three_way(n_forces: int, n_reports: int, n_ss: int, with_stonesoup: bool) -> None:
    d = make_data(n_forces, n_reports)
    updates = n_forces * n_reports
    run_batched({k: v[:2] for k, v in d.items()})  # warm-up: imports, first calls
    x_b, t_b, best_b = run_batched_repeated(d)
    x_f, t_f = run_filterpy(d)
    rate_b, rate_f = updates / t_b, updates / t_f
    print(f"three-way comparison, {n_forces} forces x {n_reports} reports, q={Q}, r={R}")
    print(f"  batched kalman_filter   {rate_b:>14,.0f} updates/s  (median run "
          f"{t_b * 1e3:.1f} ms; best {updates / best_b:,.0f}/s)")
    print(f"  filterpy KalmanFilter   {rate_f:>14,.0f} updates/s  ({t_f:.3f} s)")
    diff_f = float(np.abs(x_b - x_f).max())
    ratio_f = rate_b / rate_f
    print(
        f"  batched / filterpy      {ratio_f:>14,.0f} x   target >= 100 x: "
        f"{verdict(ratio_f >= 100)}"
    )
    print(
        f"  max |x_batched - x_filterpy| = {diff_f:.2e}   target <= 1e-9: {verdict(diff_f <= 1e-9)}"
    )
    if not with_stonesoup:
        print("  Stone Soup skipped (--no-stonesoup)")
        return
    sub = {k: v[:n_ss] for k, v in d.items()}
    x_s, t_s = run_stonesoup(sub)
    rate_s = n_ss * n_reports / t_s
    print(
        f"  Stone Soup Kalman       {rate_s:>14,.0f} updates/s  ({t_s:.3f} s; scaled down to "
        f"{n_ss} forces x {n_reports} reports, rates compared per update)"
    )
    diff_s = float(np.abs(x_b[:n_ss] - x_s).max())
    ratio_s = rate_b / rate_s
    print(
        f"  batched / Stone Soup    {ratio_s:>14,.0f} x   target >= 1,000 x: "
        f"{verdict(ratio_s >= 1000)}"
    )
    print(
        f"  max |x_batched - x_stonesoup| = {diff_s:.2e} (first {n_ss} forces)   "
        f"target <= 1e-9: {verdict(diff_s <= 1e-9)}"
    )


def case(kind: str, n_forces: int, n_reports: int) -> dict[str, float]:
    """One large run in this (fresh) process; returns timings and memory."""
    d = make_data(n_forces, n_reports, seed=1)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    fn = kalman_filter if kind == "kf" else imm_filter

    def once() -> float:
        start = time.perf_counter()
        if kind == "kf":
            res = fn(d["t"], d["z"], R, True, d["x0"], P0, Q)
        else:
            res = fn(d["t"], d["z"], R, True, d["x0"], P0)
        elapsed = time.perf_counter() - start
        del res
        return elapsed

    cold = once()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    warm = min(once() for _ in range(3))
    return {"cold": cold, "warm": warm, "peak_mb": peak, "baseline_mb": baseline}


def large(sizes: list[tuple[int, int]], rounds: int) -> None:
    print(
        "batched engines alone, each case in a fresh process: cold = first run (its output "
        "memory is fresh from the OS, page faults included), warm = best of the next three; "
        f"kalman_filter and imm_filter in turn, {rounds} round(s)"
    )
    for n_forces, n_reports in sizes:
        updates = n_forces * n_reports
        warm: dict[str, list[float]] = {"kf": [], "imm": []}
        for r in range(rounds):
            for kind in ("kf", "imm"):
                cmd = [sys.executable, __file__, "--case", kind, str(n_forces), str(n_reports)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                m = json.loads(out.strip().splitlines()[-1])
                cold, rate = updates / m["cold"], updates / m["warm"]
                warm[kind].append(rate)
                label = "kalman_filter" if kind == "kf" else "imm_filter"
                line = (
                    f"  [{r + 1}] {label:<13} {n_forces:>9,} x {n_reports:<5,} "
                    f"{cold:>13,.0f} upd/s cold {rate:>13,.0f} upd/s warm   "
                    f"peak RSS {m['peak_mb']:>7,.0f} MB (data {m['baseline_mb']:,.0f} MB)"
                )
                if kind == "imm":
                    line += f"   IMM/KF time = {warm['kf'][-1] / rate:.2f} x"
                print(line, flush=True)
        kf, imm = float(np.median(warm["kf"])), float(np.median(warm["imm"]))
        ratios = [k / i for k, i in zip(warm["kf"], warm["imm"], strict=True)]
        ratio = float(np.median(ratios))
        print(
            f"  median of {rounds}: kalman_filter {kf:,.0f} upd/s (target >= 5,000,000: "
            f"{verdict(kf >= 5e6)}), imm_filter {imm:,.0f} upd/s, IMM/KF time "
            f"{ratio:.2f} x (rounds: {', '.join(f'{x:.2f}' for x in ratios)}), "
            f"target <= 4 x: {verdict(ratio <= 4.0)}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shrink every size (smoke run)")
    parser.add_argument("--no-stonesoup", action="store_true", help="skip Stone Soup")
    parser.add_argument(
        "--rounds", type=int, default=3, help="KF/IMM rounds per large size (median reported)"
    )
    parser.add_argument(
        "--large-only", action="store_true", help="skip the three-way comparison"
    )
    parser.add_argument("--case", nargs=3, metavar=("KIND", "FORCES", "REPORTS"), help="internal")
    args = parser.parse_args()
    if args.case:
        kind, n_forces, n_reports = args.case[0], int(args.case[1]), int(args.case[2])
        print(json.dumps(case(kind, n_forces, n_reports)))
        return
    rounds = max(1, args.rounds)
    if args.quick:
        if not args.large_only:
            three_way(20, 200, 3, not args.no_stonesoup)
        large([(100_000, 10), (1_000, 1_000)], rounds)
    else:
        if not args.large_only:
            three_way(100, 1_000, 25, not args.no_stonesoup)
        large([(1_000_000, 10), (10_000, 1_000)], rounds)


if __name__ == "__main__":
    main()
