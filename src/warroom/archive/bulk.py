"""Large synthetic archives, generated column by column with NumPy (benchmarks, scale tests).

Layout (Hive partitions by force hash, as :mod:`warroom.archive.parquet`)::

    DIR/reports/bucket=NN/part-*.parquet   the reports
    DIR/forces/bucket=NN/part-*.parquet    the forces: force, index, race, objective_km

The reports have the archive's report columns (source, report_id, force, observed_at,
received_at, uncertainty_km, grade, event) and, instead of a position, ``s_km``: km along the
force's route, as the estimator measures it. The projection of lat/lon onto a route (the
costly per-report geometry of :mod:`warroom.geo`) is therefore not part of what these archives
measure: they measure the filtering at scale. ``lat``/``lon`` are null. Files are encoded as
the archive's (:func:`warroom.archive.parquet.file_options`: times delta-encoded) and rows
written in the order generated (by force, each force's reports in time order): the same
files for the same spec every time.

The world is simple on purpose: each force advances along its own straight route from
``s0`` km (uniform 0..50) at its own pace (log-normal, median 25 km/day, log-sd 0.5), and 30 %
of forces halt once for 1..4 days; reports at random intervals (0.3..1.5 days apart) with
Gaussian noise by grade (A1 2 km, B2 5 km, C3 12 km), 1 % of them wild (an extra 80 km sd),
received 1..12 h after they were observed. Races are groups of ``per_race`` consecutive
forces sharing an objective at 400..800 km (the same for all racers of a race).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from warroom.archive.buckets import BUCKETS
from warroom.archive.parquet import PARTITIONING, TIME, file_options
from warroom.timeutil import SECONDS_PER_DAY, parse_time

START = parse_time("2001-03-01T00:00:00Z")
GRADES = ("A1", "B2", "C3")
GRADE_SIGMA_KM = (2.0, 5.0, 12.0)
SOURCES = ("recon", "liaison", "signals", "press")

REPORT_SCHEMA = pa.schema([
    ("source", pa.dictionary(pa.int8(), pa.string())),
    ("report_id", pa.string()),
    ("force", pa.string()),  # plain: Parquet dictionary-encodes each row group itself
    ("observed_at", TIME), ("received_at", TIME),
    ("uncertainty_km", pa.float64()),
    ("grade", pa.dictionary(pa.int8(), pa.string())),
    ("event", pa.dictionary(pa.int8(), pa.string())),
    ("s_km", pa.float64()),
    ("bucket", pa.int32()),
])
FORCE_SCHEMA = pa.schema([
    ("force", pa.string()), ("index", pa.int64()), ("race", pa.int64()),
    ("objective_km", pa.float64()), ("bucket", pa.int32()),
])


@dataclass(frozen=True)
class BulkSpec:
    """What to generate: ``forces`` × ``per_force`` reports, races of ``per_race``."""

    forces: int = 1_000_000
    per_force: int = 10
    per_race: int = 4
    seed: int = 0
    chunk: int = 100_000  # forces generated (and held in memory) at a time


def force_names(start: int, stop: int) -> list[str]:
    """Force ids ``f0000000`` ... (zero-padded to 7 digits, or more when needed)."""
    return [f"f{i:07d}" for i in range(start, stop)]


def _chunk(spec: BulkSpec, f0: int, f1: int) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """The reports and forces of forces ``f0..f1-1`` (one generator per chunk, keyed by the
    seed and the chunk's first force: the archive does not depend on the chunk size order)."""
    rng = np.random.default_rng([spec.seed, f0])
    nf, k = f1 - f0, spec.per_force
    names = force_names(f0, f1)
    buckets = np.array([zlib.crc32(n.encode()) % BUCKETS for n in names], dtype=np.int32)
    race = np.arange(f0, f1) // spec.per_race
    # the objective of a race: from its own generator, so racers in other chunks agree
    obj_km = 400.0 + 400.0 * ((race * 0x9E3779B1) % 1_000_003) / 1_000_003
    s0 = rng.uniform(0.0, 50.0, nf)
    pace = 25.0 * np.exp(0.5 * rng.standard_normal(nf))
    halts = rng.uniform(size=nf) < 0.3
    h_from = np.where(halts, rng.uniform(0.0, 10.0, nf), np.inf)
    h_len = np.where(halts, rng.uniform(1.0, 4.0, nf), 0.0)
    t = rng.uniform(0.0, 2.0, (nf, 1)) + np.cumsum(rng.uniform(0.3, 1.5, (nf, k)), axis=1)
    moving = t - np.clip(t - h_from[:, None], 0.0, h_len[:, None])  # days not halted
    s = s0[:, None] + pace[:, None] * moving
    g = rng.integers(0, len(GRADES), (nf, k))
    sigma = np.asarray(GRADE_SIGMA_KM)[g]
    wild = rng.uniform(size=(nf, k)) < 0.01
    z = s + sigma * rng.standard_normal((nf, k)) + np.where(
        wild, 80.0 * rng.standard_normal((nf, k)), 0.0)
    observed = START + np.round(t * SECONDS_PER_DAY).astype(np.int64)
    received = observed + rng.integers(3600, 12 * 3600, (nf, k))
    n = nf * k
    row0 = f0 * k
    fi = np.repeat(np.arange(nf, dtype=np.int32), k)
    reports = pa.RecordBatch.from_arrays([
        pa.DictionaryArray.from_arrays(
            pa.array(rng.integers(0, len(SOURCES), n), type=pa.int8()), list(SOURCES)),
        pa.array(np.arange(row0, row0 + n)).cast(pa.string()),
        pa.DictionaryArray.from_arrays(pa.array(fi), names).dictionary_decode(),
        pa.array(observed.ravel() * 1000).cast(TIME),
        pa.array(received.ravel() * 1000).cast(TIME),
        pa.array(sigma.ravel()),
        pa.DictionaryArray.from_arrays(pa.array(g.ravel().astype(np.int8)), list(GRADES)),
        pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int8)), ["position"]),
        pa.array(z.ravel()),
        pa.array(np.repeat(buckets, k)),
    ], schema=REPORT_SCHEMA)
    forces = pa.RecordBatch.from_arrays([
        pa.array(names), pa.array(np.arange(f0, f1)), pa.array(race), pa.array(obj_km),
        pa.array(buckets)], schema=FORCE_SCHEMA)
    return reports, forces


def write_bulk(out_dir: str | Path, spec: BulkSpec) -> dict[str, int]:
    """Generate and write an archive (``out_dir`` new or empty); returns its counts."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: exists and is not empty")
    forces: list[pa.RecordBatch] = []

    def reports() -> Iterator[pa.RecordBatch]:
        for f0 in range(0, spec.forces, spec.chunk):
            rep, frc = _chunk(spec, f0, min(f0 + spec.chunk, spec.forces))
            forces.append(frc)
            yield rep

    opts = dict(format="parquet", partitioning=PARTITIONING, basename_template="part-{i}.parquet",
                existing_data_behavior="overwrite_or_ignore", max_rows_per_group=1 << 17,
                min_rows_per_group=1 << 14, preserve_order=True)  # the same files every time
    ds.write_dataset(pa.RecordBatchReader.from_batches(REPORT_SCHEMA, reports()),
                     out / "reports", file_options=file_options(REPORT_SCHEMA), **opts)
    ds.write_dataset(pa.Table.from_batches(forces, FORCE_SCHEMA), out / "forces",
                     file_options=file_options(FORCE_SCHEMA, frozenset({"force", "index"})),
                     **opts)
    return {"forces": spec.forces, "reports": spec.forces * spec.per_force,
            "buckets": len(list((out / "reports").glob("bucket=*")))}


def bucket_dirs(archive: str | Path) -> list[int]:
    """The buckets an archive holds."""
    return sorted(int(p.name.split("=", 1)[1])
                  for p in (Path(archive) / "reports").glob("bucket=*"))
