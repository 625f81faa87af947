"""Estimation and forecast of a large columnar archive, one bucket (partition) per task.

The archive is :mod:`warroom.archive.bulk`'s: reports with ``s_km`` already along the route,
partitioned by force hash. A task reads one bucket's columns (or a few buckets' as one batch:
force, observed_at, received_at, s_km, uncertainty_km) straight from its Parquet files into
NumPy arrays, keeps the reports received by ``as_of`` (the bitemporal rule), estimates every
force of the bucket with :func:`warroom.estimate.columnar.estimate_columns` and, if asked,
forecasts each force's arrival at its race's objective with the forecast engine's own Monte
Carlo (:func:`~warroom.forecast.engine.simulate_columns`, the counter-based generator: the
samples of a force are the same in any bucket, on any worker) and silence rule
(:func:`silence_rows`, :func:`~warroom.forecast.engine.silence_index`'s numbers). No Python
object is made per report or per force: force ids stay Arrow strings (looked up once per
bucket, hashed for the random numbers by :func:`crc32` on the Arrow buffers) and the plans
are arrays (:class:`~warroom.forecast.engine.PlanColumns`). The races are summarised once,
over every bucket's arrival samples (:func:`race_odds`).

At this scale the plans are simpler than :func:`warroom.forecast.plan.plan`'s: a straight route
to one objective (no obstacles, halt lines or supply base), the prior speed medians (no pace
learned from the smoothed history, which the columnar estimate does not keep), and the regime
split of :func:`warroom.forecast.plan._start_regime` done on arrays. :func:`plans_of` gives
the same plans as :class:`~warroom.forecast.plan.ForcePlan` objects (the per-force path the
tests compare with).
"""

from __future__ import annotations

import ctypes
import math
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warroom.engine.default_rng import PCG64s, int_words
from warroom.estimate.columnar import ColumnarEstimate, estimate_columns
from warroom.estimate.track import EstimateParams
from warroom.forecast import rng
from warroom.forecast.engine import PlanColumns, simulate_columns
from warroom.forecast.params import ForecastParams
from warroom.forecast.plan import OBJECTIVE, ForcePlan
from warroom.timeutil import SECONDS_PER_DAY

READ_COLUMNS = ["force", "observed_at", "received_at", "s_km", "uncertainty_km"]
FORCE_COLUMNS = ["force", "index", "race", "objective_km"]
_MS_PER_DAY = 1000.0 * SECONDS_PER_DAY


@dataclass
class Bucket:
    """One bucket's reports known as of the cut-off, as columns (force: row of ``forces``)."""

    force: np.ndarray       # (R,) int32 row of the bucket's forces
    t: np.ndarray           # (R,) days (UTC epoch seconds / 86400)
    z: np.ndarray           # (R,) km along the route
    sigma: np.ndarray       # (R,) km, 1-sigma
    names: pa.Array         # (F,) force ids (Arrow strings: no Python object per force)
    index: np.ndarray       # (F,) the forces' global indices
    race: np.ndarray        # (F,)
    objective_km: np.ndarray  # (F,)
    read: int               # reports in the bucket (before the as-of cut)


def _files(root: Path, table: str, bucket: int) -> list[Path]:
    folder = root / table / f"bucket={bucket}"
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{folder}: no Parquet files")
    return files


def _read(files: list[Path], columns: list[str], dictionary: list[str] | None = None
          ) -> pa.Table:
    """The columns of a bucket's files: file by file (their names are known, no dataset
    discovery), one thread (the engine runs buckets in parallel, not the columns of one), each
    column chunk read when decoded (no pre-buffering: a local file gains nothing by it)."""
    parts = []
    for f in files:
        with pq.ParquetFile(f, read_dictionary=dictionary, pre_buffer=False) as pf:
            parts.append(pf.read(columns=columns, use_threads=False))
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)


def _numpy(col: pa.ChunkedArray, where: str) -> np.ndarray:
    """A column without nulls as one NumPy array (zero-copy for a single chunk; timestamps as
    int64 milliseconds)."""
    if col.null_count:
        raise ValueError(f"{where}: {col.null_count} empty values")
    if pa.types.is_timestamp(col.type):
        if col.type.unit != "ms":
            col = col.cast(pa.timestamp("ms", tz=col.type.tz))
        col = col.cast(pa.int64())
    chunks = [c.to_numpy() for c in col.chunks]
    if not chunks:
        return np.empty(0, dtype=col.type.to_pandas_dtype())
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _force_rows(col: pa.ChunkedArray, names: pa.Array, where: str) -> np.ndarray:
    """Each report's row among the bucket's forces (int32): the dictionary entries of all the
    column's chunks looked up among ``names`` at once, then gathered by the indices."""
    if col.null_count:
        raise ValueError(f"{where}: {col.null_count} reports without a force")
    out = np.empty(len(col), dtype=np.int32)
    if not col.num_chunks:
        return out
    dicts = [c.dictionary for c in col.chunks]
    entry = pc.index_in(pa.concat_arrays(dicts), value_set=names)
    if entry.null_count:
        raise ValueError(f"{where}: reports of forces the bucket does not list")
    rows = entry.to_numpy()
    pos = off = 0
    for c, d in zip(col.chunks, dicts, strict=True):
        np.take(rows[off:off + len(d)], c.indices.to_numpy(), out=out[pos:pos + len(c)],
                mode="clip")
        pos, off = pos + len(c), off + len(d)
    return out


def read_buckets(archive: str | Path, buckets: list[int], as_of: int) -> Bucket:
    """Read several buckets as one (a task's share of the archive) and keep the reports
    received by ``as_of`` (UTC epoch seconds). Every report column is copied once, from the
    Parquet reader's buffers into the task's arrays, keeping only the known reports."""
    root = Path(archive)
    limit = as_of * 1000  # received_at in ms
    cols: list[tuple[np.ndarray, ...]] = []
    forces = []
    offset = 0
    for b in buckets:
        where = f"{root}: bucket {b}"
        rep = _read(_files(root, "reports", b), READ_COLUMNS, ["force"])
        frc = _read(_files(root, "forces", b), FORCE_COLUMNS)
        names = frc.column("force").combine_chunks()
        force = _force_rows(rep.column("force"), names, where)
        if offset:
            force += offset
        keep = _numpy(rep.column("received_at"), f"{where}, received_at") <= limit
        cols.append((keep, force, _numpy(rep.column("observed_at"), f"{where}, observed_at"),
                     _numpy(rep.column("s_km"), f"{where}, s_km"),
                     _numpy(rep.column("uncertainty_km"), f"{where}, uncertainty_km")))
        forces.append(frc)
        offset += frc.num_rows
    known = [int(np.count_nonzero(c[0])) for c in cols]
    cuts = np.concatenate(([0], np.cumsum(known, dtype=np.int64)))
    out = [np.empty(int(cuts[-1]), dtype=dt) for dt in (np.int32, np.int64, np.float64,
                                                          np.float64)]
    for (keep, *arrays), a, b in zip(cols, cuts[:-1], cuts[1:], strict=True):
        for src, dst in zip(arrays, out, strict=True):
            np.compress(keep, src, out=dst[a:b])
    force, observed, z, sigma = out
    frc = pa.concat_tables(forces) if len(forces) > 1 else forces[0]
    return Bucket(
        force=force, t=np.divide(observed, _MS_PER_DAY), z=z, sigma=sigma,
        names=frc.column("force").combine_chunks(), index=_numpy(frc.column("index"), "index"),
        race=_numpy(frc.column("race"), "race"),
        objective_km=_numpy(frc.column("objective_km"), "objective_km"),
        read=sum(len(c[0]) for c in cols))


def groups(buckets: list[int], reports: int, workers: int,
           per_task: int = 400_000) -> list[list[int]]:
    """Buckets in tasks of about ``per_task`` reports (fewer, larger batches cost less per
    report); with several workers, at least two tasks each while there are buckets enough to
    share (one worker runs them one after the other: one task is enough)."""
    n = min(len(buckets), max(2 * workers if workers > 1 else 1, -(-reports // per_task)))
    return [list(buckets[i::n]) for i in range(n)] if buckets else []


def read_bucket(archive: str | Path, bucket: int, as_of: int) -> Bucket:
    """Read a bucket and keep the reports received by ``as_of`` (UTC epoch seconds)."""
    return read_buckets(archive, [bucket], as_of)


@dataclass
class BucketResult:
    """What a task sends back: counts, seconds per phase, the worker's peak memory, and per
    force its global index, race, estimate summary and (with a forecast) arrival samples."""

    bucket: list[int]
    read: int
    known: int
    forces: int
    used: int
    outliers: int
    seconds: dict[str, float]
    pid: int
    peak_rss_mb: float
    index: np.ndarray
    race: np.ndarray
    s: np.ndarray
    v: np.ndarray
    eta: np.ndarray | None = None        # (F, 3) days after as_of: p10, p50, p90 (inf beyond)
    arrivals: np.ndarray | None = None   # (F, samples) float32 days after as_of
    extra: dict[str, float] = field(default_factory=dict)


def start_regime(mu: np.ndarray, v: np.ndarray, params: ForecastParams) -> np.ndarray:
    """:func:`warroom.forecast.plan._start_regime` on arrays: the IMM's moving probability
    split between advancing and pursuit by the present speed's likelihood under each speed
    class (prior medians)."""
    halted = mu[:, 0]
    adv, pur = params.advancing_kmpd, params.pursuit_kmpd
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lv = np.log(np.where(v > 0, v, 1.0))

        def logpdf(med: float, sig: float) -> np.ndarray:
            return -np.log(sig * np.where(v > 0, v, 1.0)) - 0.5 * ((lv - math.log(med)) / sig) ** 2

        d = np.clip(logpdf(pur, params.pursuit_sigma) - logpdf(adv, params.advancing_sigma),
                    -700.0, 700.0)
        w_adv = 1.0 / (1.0 + np.exp(d))
    moving = np.stack([halted, (1 - halted) * w_adv, (1 - halted) * (1 - w_adv)], axis=1)
    still = np.where((halted >= 0.5)[:, None], np.array([1.0, 0.0, 0.0]),
                     np.stack([halted, 1 - halted, np.zeros_like(halted)], axis=1))
    return np.where((v > 0)[:, None], moving, still)


def plans_of(b: Bucket, est: ColumnarEstimate, as_of: int,
             params: ForecastParams) -> list[ForcePlan]:
    """A plan per force with an estimate (see the module docstring for what is simpler)."""
    regime = start_regime(est.mu, est.v, params)
    t0 = est.last_t - as_of / SECONDS_PER_DAY
    x = np.stack([est.s, est.v], axis=1)
    # the same read-only barrier arrays for every plan (one objective, nothing else)
    kind, zero = np.array([OBJECTIVE]), np.zeros(1)
    kind.flags.writeable = zero.flags.writeable = False
    out = []
    kms, races, s, last = (b.objective_km.tolist(), b.race.tolist(), est.s.tolist(),
                           est.last_t.tolist())
    names = b.names.to_pylist()
    starts = t0.tolist()
    for i in np.flatnonzero(est.n_used > 0).tolist():
        km = kms[i]
        oid = f"o{races[i]}"
        # past it already: reached at its last report (plan() takes the smoothed track's
        # first passage, which the columnar estimate does not keep)
        reached = {oid: round(last[i] * SECONDS_PER_DAY)} if s[i] >= km else {}
        out.append(ForcePlan(
            force=names[i], t0=starts[i], x=x[i], cov=est.cov[i], regime=regime[i],
            objectives=[oid], objective_km=[km], reached=reached,
            bar_s=b.objective_km[i:i + 1], bar_kind=kind, bar_a=zero, bar_b=zero,
            bar_c=zero, bar_name=[oid],
            advancing_kmpd=params.advancing_kmpd, pursuit_kmpd=params.pursuit_kmpd,
            pace_sd=params.pace_sigma))
    return out


def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0xEDB88320), table >> 1)
    return table.astype(np.uint32)


_CRC = _crc_table()


def crc32(names: pa.Array) -> np.ndarray:
    """``zlib.crc32`` of the UTF-8 bytes of each string (uint32), computed on the Arrow
    buffers a byte position at a time for all strings together (a force id is its key to the
    forecast's random numbers)."""
    if names.null_count:
        raise ValueError("force ids must not be empty")
    names = names.cast(pa.large_string()) if not pa.types.is_large_string(names.type) \
        else names
    _, offsets, data = names.buffers()
    off = np.frombuffer(offsets, dtype=np.int64)[names.offset:names.offset + len(names) + 1]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    start, length = off[:-1], np.diff(off)
    crc = np.full(len(names), 0xFFFFFFFF, dtype=np.uint32)
    for j in range(int(length.max(initial=0))):
        at = np.flatnonzero(length > j)
        c = crc[at]
        crc[at] = _CRC[(c ^ raw[start[at] + j]) & np.uint32(0xFF)] ^ (c >> np.uint32(8))
    return crc ^ np.uint32(0xFFFFFFFF)


def force_keys(seed: int, crc: np.ndarray) -> np.ndarray:
    """:func:`warroom.forecast.rng.force_bases` of forces given by the CRC-32 of their ids."""
    mixed = seed * 0x9E3779B1
    if not 0 <= mixed < 2**64:
        raise ValueError(f"seed {seed} is out of range")
    with np.errstate(over="ignore"):
        x = np.uint64(mixed) ^ (crc.astype(np.uint64) << np.uint64(32))
        x %= np.uint64(2**63)
        x += rng.GOLDEN
        return rng.mix_into(x, x, np.empty_like(x))


def silence_rows(bad: np.ndarray, crc: np.ndarray, seed: int) -> np.ndarray:
    """:func:`warroom.forecast.engine.silence_index` on arrays: ``bad`` ``(F, n)`` marks the
    samples that reach a pending objective before as_of; returns ``(F, n)`` the sample rows
    to keep. A force with bad and good samples redraws its bad ones from its good ones with
    its own generator, ``default_rng([seed, crc, 1]).choice(good, size=bad)``, here for all
    such forces at once (:class:`warroom.engine.default_rng.PCG64s`, the same numbers)."""
    f, n = bad.shape
    index = np.broadcast_to(np.arange(n), (f, n)).copy()
    n_bad = bad.sum(axis=1)
    redo = np.flatnonzero((n_bad > 0) & (n_bad < n))
    if not redo.size:
        return index
    nb, ng = n_bad[redo], n - n_bad[redo]
    m = len(redo)
    words = [np.full(m, w, dtype=np.uint32) for w in int_words(seed)]
    draws = PCG64s(words + [crc[redo].astype(np.uint32), np.ones(m, dtype=np.uint32)]
                   ).integers(ng, nb)
    # the good rows in order, then the bad ones in order
    rows = np.argsort(bad[redo], axis=1, kind="stable")
    j = np.arange(draws.shape[1])
    use = j[None, :] < nb[:, None]
    at = np.take_along_axis(rows, np.minimum(ng[:, None] + j, n - 1), axis=1)
    pick = np.take_along_axis(rows, np.maximum(draws, 0), axis=1)
    r = np.broadcast_to(redo[:, None], use.shape)
    index[r[use], at[use]] = pick[use]
    return index


def plan_columns_of(b: Bucket, est: ColumnarEstimate, rows: np.ndarray, crc: np.ndarray,
                    as_of: int, params: ForecastParams) -> PlanColumns:
    """:func:`plans_of`'s plans of the forces ``rows``, as arrays."""
    regime = start_regime(est.mu[rows], est.v[rows], params)
    nf = len(rows)
    zero = np.zeros(nf)
    return PlanColumns(
        keys=force_keys(params.seed, crc), t0=est.last_t[rows] - as_of / SECONDS_PER_DAY,
        x=np.stack([est.s[rows], est.v[rows]], axis=1), cov=est.cov[rows], regime=regime,
        pace_sd=np.full(nf, params.pace_sigma), advancing_kmpd=np.full(nf, params.advancing_kmpd),
        pursuit_kmpd=np.full(nf, params.pursuit_kmpd), base_km=np.full(nf, math.nan),
        supply_free_km=np.full(nf, math.inf), objectives=1, bar_force=np.arange(nf),
        bar_s=b.objective_km[rows].astype(float), bar_kind=np.full(nf, float(OBJECTIVE)),
        bar_a=zero, bar_b=zero, bar_c=zero)


def forecast_columns(b: Bucket, est: ColumnarEstimate, as_of: int, params: ForecastParams,
                     rates: np.ndarray) -> np.ndarray:
    """Each force's arrival samples at its objective, ``(F, samples)`` float32 days after
    ``as_of`` (inf: not within the horizon, or no estimate): the forecast engine's Monte
    Carlo and silence rule on :func:`plan_columns_of`'s plans, all forces at once. A force
    already past its objective has reached it at its last report (every sample)."""
    n = params.samples
    arr = np.full((len(b.index), n), np.inf, dtype=np.float32)
    rows = np.flatnonzero(est.n_used > 0)
    if not rows.size or n <= 0:
        return arr
    crc = crc32(b.names.take(pa.array(rows)))
    cols = plan_columns_of(b, est, rows, crc, as_of, params)
    arrival, _ = simulate_columns(cols, params, rates)
    got = arrival[:, 0].reshape(len(rows), n)
    reached = est.s[rows] >= b.objective_km[rows]
    bad = (got < 0) & ~reached[:, None]
    redo = np.flatnonzero(bad.any(axis=1))  # (silence_rows leaves the others as they are)
    if redo.size:
        keep = silence_rows(bad[redo], crc[redo], params.seed)
        got[redo] = np.take_along_axis(got[redo], keep, axis=1)
    at = (np.round(est.last_t[rows] * SECONDS_PER_DAY).astype(np.int64) - as_of) \
        / SECONDS_PER_DAY
    got[reached] = at[reached, None]
    arr[rows] = got
    return arr


_ALLOCATOR_SET = False


def keep_freed_memory() -> None:
    """Once per process: ask the C allocator (glibc) to keep freed memory for reuse.

    A task allocates the same large arrays again and again (padded reports, the filters' work
    arrays: up to ~40 MB for a block of forces). glibc hands blocks above its mmap threshold
    (which it raises by itself, to 32 MB at most) back to the system when they are freed, and
    the next task has them faulted in again and zeroed by the kernel: about a tenth of a run
    in system time. Here blocks up to 64 MB come from the heap and up to 256 MB of free heap
    is kept: the peak is the same, memory is just not returned between tasks (a worker's
    steady state). Nothing is done where the C library is not glibc."""
    global _ALLOCATOR_SET
    if _ALLOCATOR_SET:
        return
    _ALLOCATOR_SET = True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)   # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


ETA_LEVELS = (0.1, 0.5, 0.9)


def eta_quantiles(arr: np.ndarray) -> np.ndarray:
    """Each row's p10, p50 and p90 (``(F, 3)``), as ``np.quantile(..., method="inverted_cdf")``
    gives them: order statistics, here read off one sort of each row (a few samples per force:
    sorting is several times quicker than NumPy's partition by row)."""
    if np.isnan(arr).any():  # (quantile's nan rule)
        return np.quantile(arr, ETA_LEVELS, axis=1, method="inverted_cdf").T
    k = np.quantile(np.arange(arr.shape[1]), ETA_LEVELS, method="inverted_cdf").astype(np.intp)
    return np.sort(arr, axis=1)[:, k]


def _peak_rss_mb() -> float:
    """This process's peak resident memory (MiB). On Linux the high-water mark of its own
    address space (``VmHWM``): ``ru_maxrss`` would also count the parent's memory at the
    fork before ``exec``, which is not this worker's."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run_bucket(buckets: int | list[int], *, archive: str, as_of: int,
               estimate_params: EstimateParams | None = None,
               forecast_params: ForecastParams | None = None) -> BucketResult:
    """Read, estimate and (with ``forecast_params``) forecast one bucket, or several as one
    batch."""
    keep_freed_memory()
    ep = estimate_params or EstimateParams()
    t0 = time.perf_counter()
    bucket = buckets if isinstance(buckets, list) else [buckets]
    b = read_buckets(archive, bucket, as_of)
    t1 = time.perf_counter()
    r = b.sigma**2 + ep.track_sigma_km**2
    est = estimate_columns(b.force, b.t, b.z, r, len(b.names), params=ep)
    t2 = time.perf_counter()
    res = BucketResult(
        bucket=bucket, read=b.read, known=len(b.t), forces=len(b.names),
        used=int(est.n_used.sum()), outliers=int(est.n_outliers.sum()),
        seconds={"read": t1 - t0, "estimate": t2 - t1}, pid=os.getpid(), peak_rss_mb=0.0,
        index=b.index, race=b.race, s=est.s, v=est.v)
    if forecast_params is not None:
        arr = forecast_columns(b, est, as_of, forecast_params,
                               np.asarray(ep.imm.rates, dtype=float))
        res.arrivals = arr
        res.eta = eta_quantiles(arr)
        res.seconds["forecast"] = time.perf_counter() - t2
    res.peak_rss_mb = _peak_rss_mb()
    return res


def race_odds(results: list[BucketResult]) -> tuple[np.ndarray, np.ndarray]:
    """P(first) of every force in its race, from all buckets' arrival samples together:
    ``(global force index, P)`` in (race, index) order. A sample's winner is its earliest
    finite arrival (nobody within the horizon: no winner; a tie counts for each tied racer)."""
    index = np.concatenate([r.index for r in results])
    race = np.concatenate([r.race for r in results])
    arr = np.concatenate([r.arrivals for r in results if r.arrivals is not None])
    order = np.lexsort((index, race))
    race, index, arr = race[order], index[order], arr[order]
    starts = np.flatnonzero(np.r_[True, race[1:] != race[:-1]])
    first = np.minimum.reduceat(arr, starts, axis=0)
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(race)]))
    win = (arr == first[group]) & np.isfinite(arr)
    return index, win.mean(axis=1)


def peer_bucket(buckets: int | list[int], *, archive: str, as_of: int) -> BucketResult:
    """The peer: one plain NumPy pass over the same columns (read, as-of cut, group by force,
    least-squares speed per force with ``bincount``), no filtering: the floor of what reading
    and grouping the data costs."""
    keep_freed_memory()
    t0 = time.perf_counter()
    bucket = buckets if isinstance(buckets, list) else [buckets]
    b = read_buckets(archive, bucket, as_of)
    t1 = time.perf_counter()
    f, n_f = b.force, len(b.names)
    n = np.bincount(f, minlength=n_f).astype(float)
    st = np.bincount(f, b.t, n_f)
    sz = np.bincount(f, b.z, n_f)
    stt = np.bincount(f, b.t * b.t, n_f)
    stz = np.bincount(f, b.t * b.z, n_f)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (n * stz - st * sz) / (n * stt - st * st)
        s = (sz - v * st) / n + v * (as_of / SECONDS_PER_DAY)
    t2 = time.perf_counter()
    return BucketResult(bucket=bucket, read=b.read, known=len(b.t), forces=n_f,
                        used=len(b.t), outliers=0, seconds={"read": t1 - t0,
                                                            "estimate": t2 - t1},
                        pid=os.getpid(), peak_rss_mb=_peak_rss_mb(), index=b.index,
                        race=b.race, s=s, v=v)
