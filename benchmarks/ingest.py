"""Ingest benchmark: N generated CSV reports into a fresh SQLite store.

Prints reports/s and peak memory (RSS) of the whole ingest, for two file sizes (each in its own
process, so the peaks are comparable), beside two peers measured in the same run on the same
machine: the bare C csv reader over the same file (parsing floor) and SQLite's executemany of
ready-made rows into the same schema (writing floor).

    python benchmarks/ingest.py              # 1,000,000 and 100,000 reports
    python benchmarks/ingest.py --n 200000   # smaller

Target: >= 100,000 reports/s on one core; peak memory flat in file size.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def run_ingest(csv_path: Path, db: Path) -> dict[str, float]:
    sc = scenario_mod.load("berlin1945")
    store = Store(db)
    t = time.perf_counter()
    with open(csv_path, "rb") as fh:
        res = ingest_stream(store, Validator(sc), fh, origin=csv_path.name)
    dt = time.perf_counter() - t
    return {"reports": res.accepted, "seconds": dt, "per_s": res.accepted / dt,
            "peak_rss_mb": peak_rss_mb(), "quarantined": res.quarantined}


def run_peers(csv_path: Path, db: Path) -> dict[str, float]:
    t = time.perf_counter()
    n = 0
    with open(csv_path, newline="") as fh:
        for _ in csv.reader(fh):
            n += 1
    parse = (n - 1) / (time.perf_counter() - t)
    store = Store(db)
    rows = [("bench", f"p{i}", "us9", i, i, 52.0, 12.0, None, None, "B2", "position", None,
             "x", None, None, f"{i:032x}", 0, "bench") for i in range(200_000)]
    sql = (f"INSERT INTO reports ({', '.join(ROW_FIELDS)}, ingested_at, origin) VALUES ("
           + ", ".join("?" * (len(ROW_FIELDS) + 2)) + ")")
    t = time.perf_counter()
    for k in range(0, len(rows), 20_000):
        with store.transaction() as c:
            c.executemany(sql, rows[k:k + 20_000])
    write = len(rows) / (time.perf_counter() - t)
    return {"csv_reader_per_s": parse, "sqlite_executemany_per_s": write}


def child(mode: str, n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "reports.csv"
        generate(p, n)
        fn = run_ingest if mode == "ingest" else run_peers
        print(json.dumps(fn(p, Path(d) / "bench.db")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--child", choices=["ingest", "peers"])
    a = ap.parse_args()
    if a.child:
        child(a.child, a.n)
        return

    def sub(mode: str, n: int) -> dict[str, float]:
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--n", str(n)],
                             check=True, capture_output=True, text=True, env=os.environ)
        return json.loads(out.stdout)

    small = sub("ingest", max(1, a.n // 10))
    big = sub("ingest", a.n)
    peers = sub("peers", min(a.n, 200_000))
    print(f"ingest {big['reports']:>9,} reports: {big['per_s']:>9,.0f} reports/s "
          f"({big['seconds']:.1f} s), peak RSS {big['peak_rss_mb']:.0f} MB")
    print(f"ingest {small['reports']:>9,} reports: {small['per_s']:>9,.0f} reports/s "
          f"({small['seconds']:.1f} s), peak RSS {small['peak_rss_mb']:.0f} MB")
    print(f"peer: csv.reader alone          {peers['csv_reader_per_s']:>9,.0f} rows/s")
    print(f"peer: sqlite executemany alone  {peers['sqlite_executemany_per_s']:>9,.0f} rows/s")
    ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
    print(f"memory: peak RSS x{ratio:.2f} for x{a.n / max(1, a.n // 10):.0f} the reports "
          f"(flat means ~x1)")
    print(f"target >= 100,000 reports/s: {'met' if big['per_s'] >= 1e5 else 'NOT met'}")


if __name__ == "__main__":
    main()
