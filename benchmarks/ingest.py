"""Ingest benchmark: N generated CSV reports into a fresh SQLite store.

Prints reports/s and peak memory (RSS) of the whole ingest, each in a process of its own (so
the peaks are comparable): N reports in several rounds (the verdict takes their median: the
host's speed varies from one run to the next), N/10 and 2N once each (peak memory against file
size). Beside them, peers measured in the same run on the same machine: the bare C csv
reader over the same file (the parsing floor) and SQLite's ``executemany`` of ready-made rows
into the same schema (the writing floor), once with every report column bound (NULLs too) and
once with only the columns the store binds for these rows.

Each figure is given twice: per second of wall-clock time (what a user waits; includes the
store's final checkpoint, and time lost to other processes on a busy machine) and per second
of CPU time of the process (the one core's own work; steadier when the machine is shared).

    python benchmarks/ingest.py              # 1,000,000 reports x 3; 100,000; 2,000,000
    python benchmarks/ingest.py --n 200000 --rounds 1   # smaller

Target: >= 100,000 reports/s on one core; peak memory flat in file size.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from warroom import scenario as scenario_mod
from warroom.ingest.pipeline import ingest_stream
from warroom.ingest.validate import Validator
from warroom.store import ROW_FIELDS, Store

HEADER = "report_id,source,force,observed_at,received_at,lat,lon,grade,text\n"


def generate(path: Path, n: int) -> None:
    """Write n reports of the built-in scenario's five forces (streamed)."""
    forces = ["us9", "us1", "us3", "1bf", "1uf"]
    with open(path, "w") as fh:
        fh.write(HEADER)
        for i in range(n):
            day, sec = divmod(i, 86_400)
            h, rem = divmod(sec, 3600)
            t = f"1945-04-{1 + day % 28:02d}T{h:02d}:{rem // 60:02d}:{rem % 60:02d}Z"
            fh.write(f"g{i},bench,{forces[i % 5]},{t},{t},{52 + (i % 997) / 1000:.3f},"
                     f"{12 + (i % 991) / 1000:.3f},B2,report {i}\n")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    """Wall-clock and process CPU seconds since start."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rates(self, n: int) -> tuple[float, float]:
        return (n / (time.perf_counter() - self.wall), n / (time.process_time() - self.cpu))


def run_ingest(csv_path: Path, db: Path) -> dict[str, float]:
    sc = scenario_mod.load("berlin1945")
    store = Store(db)
    clock = Clock()
    with open(csv_path, "rb") as fh:
        res = ingest_stream(store, Validator(sc), fh, origin=csv_path.name)
    store.close()  # the last WAL checkpoint is part of the work
    per_s, cpu_per_s = clock.rates(res.accepted)
    return {"reports": res.accepted, "seconds": res.accepted / per_s, "per_s": per_s,
            "cpu_per_s": cpu_per_s, "peak_rss_mb": peak_rss_mb(), "quarantined": res.quarantined}


def _executemany(db: Path, n: int, with_nulls: bool) -> tuple[float, float]:
    """Rows as the ingest of the generated file stores them, 20,000 to a transaction."""
    store = Store(db)
    names = list(ROW_FIELDS) + ["ingested_at", "origin"]
    rows: list[tuple[Any, ...]] = [
        ("bench", f"p{i}", "us9", i, i, 52.0, 12.0, None, None, "B2", "position", None,
         f"report {i}", None, None, 0, "bench") for i in range(n)]
    if not with_nulls:
        keep = [j for j, v in enumerate(rows[0]) if v is not None]
        names = [names[j] for j in keep]
        rows = [tuple(r[j] for j in keep) for r in rows]
    sql = f"INSERT INTO reports ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    clock = Clock()
    for k in range(0, n, 20_000):
        with store.transaction() as c:
            c.executemany(sql, rows[k:k + 20_000])
    store.close()
    return clock.rates(n)


def run_peers(csv_path: Path, db: Path) -> dict[str, float]:
    clock = Clock()
    n = 0
    with open(csv_path, newline="") as fh:
        for _ in csv.reader(fh):
            n += 1
    out: dict[str, float] = {}
    out["csv_reader_per_s"], out["csv_reader_cpu_per_s"] = clock.rates(n - 1)
    rows = min(n - 1, 200_000)
    for key, nulls in (("em_nulls", True), ("em", False)):
        d = db.with_name(f"{key}.db")
        out[f"{key}_per_s"], out[f"{key}_cpu_per_s"] = _executemany(d, rows, nulls)
    return out


def child(mode: str, csv_path: Path) -> None:
    db = csv_path.with_name(f"{mode}-{os.getpid()}.db")
    try:
        fn = run_ingest if mode == "ingest" else run_peers
        print(json.dumps(fn(csv_path, db)))
    finally:
        for f in db.parent.glob(f"*{os.getpid()}.db*"):
            f.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of N reports (median taken)")
    ap.add_argument("--child", choices=["ingest", "peers"])
    ap.add_argument("--csv", type=Path)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.csv)
        return

    def sub(mode: str, path: Path) -> dict[str, float]:
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--csv", str(path)],
                             check=True, capture_output=True, text=True, env=os.environ)
        return json.loads(out.stdout)

    with tempfile.TemporaryDirectory() as d:
        sizes = {"n": a.n, "small": max(1, a.n // 10), "double": 2 * a.n}
        files = {k: Path(d) / f"reports-{n}.csv" for k, n in sizes.items()}
        for k, n in sizes.items():
            generate(files[k], n)
        # rounds of N spread over the run, the other runs between them
        rounds: list[dict[str, float]] = []
        small = sub("ingest", files["small"])
        rounds.append(sub("ingest", files["n"]))
        peers = sub("peers", files["n"])
        if a.rounds > 1:
            rounds.append(sub("ingest", files["n"]))
        double = sub("ingest", files["double"])
        while len(rounds) < a.rounds:
            rounds.append(sub("ingest", files["n"]))

    def row(label: str, r: dict[str, float]) -> None:
        print(f"{label:44s} {r['per_s']:>10,.0f} {r['cpu_per_s']:>10,.0f}   "
              f"{r['seconds']:5.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB")

    median = {k: statistics.median(r[k] for r in rounds)
              for k in ("per_s", "cpu_per_s", "seconds", "peak_rss_mb")}
    print(f"{'':44s} {'wall':>10s} {'CPU':>10s}")
    for i, r in enumerate(rounds):
        row(f"ingest {a.n:>9,} reports, round {i + 1} (reports/s)", r)
    row(f"ingest {a.n:>9,} reports, median (reports/s)", median)
    row(f"ingest {sizes['small']:>9,} reports (reports/s)", small)
    row(f"ingest {sizes['double']:>9,} reports (reports/s)", double)
    print(f"peer: csv.reader alone (rows/s)              {peers['csv_reader_per_s']:>10,.0f} "
          f"{peers['csv_reader_cpu_per_s']:>10,.0f}")
    print(f"peer: executemany, all columns (rows/s)      {peers['em_nulls_per_s']:>10,.0f} "
          f"{peers['em_nulls_cpu_per_s']:>10,.0f}   (NULLs bound, as the store once did)")
    print(f"peer: executemany, non-NULL (rows/s)         {peers['em_per_s']:>10,.0f} "
          f"{peers['em_cpu_per_s']:>10,.0f}   (the columns the store binds)")
    ratio = double["peak_rss_mb"] / max(r["peak_rss_mb"] for r in rounds)
    print(f"memory: peak RSS x{ratio:.2f} for x2 the reports ({sizes['small']:,}: "
          f"{small['peak_rss_mb']:.0f} MB, {a.n:,}: {median['peak_rss_mb']:.0f} MB, "
          f"{sizes['double']:,}: {double['peak_rss_mb']:.0f} MB; the ingest holds one batch, "
          "SQLite's page cache grows to its 64 MiB cap with the store)")
    print(f"memory flat in file size (x2 the reports, <= x1.10 the peak): "
          f"{'met' if ratio <= 1.10 else 'NOT met'}")
    for label, key in (("wall", "per_s"), ("CPU", "cpu_per_s")):
        met = "met" if median[key] >= 1e5 else "NOT met"
        print(f"target >= 100,000 reports/s ({label}, median of {len(rounds)}): {met}")


if __name__ == "__main__":
    main()
