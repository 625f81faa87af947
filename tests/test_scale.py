"""The columnar path: the same estimates as the per-force estimator to the last bit; bulk
archives partitioned by force; the same numbers on the local engine and on Dask, however the
buckets are grouped into tasks; race odds from all partitions' samples."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warroom.archive.buckets import BUCKETS
from warroom.archive.bulk import START, BulkSpec, bucket_dirs, write_bulk
from warroom.engine.columnar import BucketResult, groups, race_odds, run_bucket
from warroom.engine.local import LocalEngine
from warroom.estimate.columnar import estimate_columns
from warroom.estimate.config import estimate_params
from warroom.estimate.track import estimate, measurements
from warroom.forecast.params import ForecastParams
from warroom.gazetteer import Gazetteer
from warroom.timeutil import SECONDS_PER_DAY
from warroom.workspace import open_workspace

AS_OF = START + 9 * 86400  # day 9: many reports are not received yet


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from warroom.simulate import SimSpec, simulate, write_scenario

    out = tmp_path_factory.mktemp("syn") / "races"
    write_scenario(simulate(SimSpec(forces=40, per_race=4, days=30.0, seed=2)), out)
    return out


def test_columnar_estimate_equals_the_per_force_estimator(synthetic: Path) -> None:
    ws = open_workspace(None, str(synthetic))
    sc = ws.scenario
    reports = ws.store.reports_by_force()
    at = max(r.received_at for rs in reports.values() for r in rs) - 5 * 86400
    ep = estimate_params(sc)
    want = estimate(sc, reports, at, ep)
    gaz = Gazetteer(sc.places)
    cols: dict[str, list[Any]] = {k: [] for k in ("f", "t", "z", "r", "valid")}
    names = list(sc.forces)
    for i, f in enumerate(names):
        known = sorted((r for r in reports.get(f, ()) if r.received_at <= at),
                       key=lambda r: (r.observed_at, r.received_at, r.source, r.report_id))
        m, _ = measurements(sc, sc.forces[f], known, ep, gaz)
        cols["f"] += [i] * len(m.t)
        for k, v in (("t", m.t), ("z", m.z), ("r", m.r), ("valid", m.valid)):
            cols[k] += list(v)
    arr = {k: np.array(v) for k, v in cols.items()}
    # rows in any order; blocks of 7 forces: neither changes a force's numbers
    perm = np.random.default_rng(0).permutation(len(arr["t"]))
    got = estimate_columns(arr["f"][perm], arr["t"][perm], arr["z"][perm], arr["r"][perm],
                           len(names), arr["valid"][perm], ep, block=7)
    outliers = 0
    for i, f in enumerate(names):
        e = want[f]
        n_out = sum(fl.reason == "outlier" for fl in e.flags)
        outliers += n_out
        assert (e.n_used, n_out) == (got.n_used[i], got.n_outliers[i])
        assert e.s_km == min(got.s[i], sc.forces[f].route.length_km)
        assert (e.v_kmpd, e.cov) == (got.v[i], got.cov[i].tolist())
        assert [e.regime[k] for k in ("halted", "advancing", "pursuit")] == got.mu[i].tolist()
        assert e.last_report_at / SECONDS_PER_DAY == got.last_t[i]
    assert outliers > 0  # the outlier test was exercised


@pytest.fixture(scope="module")
def bulk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bulk") / "archive-20000"
    info = write_bulk(out, BulkSpec(forces=2_000, per_force=10, chunk=700, seed=3))
    assert info == {"forces": 2000, "reports": 20000, "buckets": BUCKETS}
    return out


def test_bulk_archive_is_partitioned_by_force(bulk: Path) -> None:
    files = sorted((bulk / "reports").rglob("*.parquet"))
    seen: dict[str, str] = {}
    n = 0
    for p in files:
        t = pq.read_table(p, columns=["force", "observed_at", "received_at", "s_km"])
        n += t.num_rows
        for f in set(t.column("force").to_pylist()):
            assert seen.setdefault(f, p.parent.name) == p.parent.name
            assert p.parent.name == f"bucket={zlib.crc32(f.encode()) % BUCKETS}"
        rec = t.column("received_at").to_numpy()
        assert (rec >= t.column("observed_at").to_numpy()).all()
    assert n == 20_000 and len(seen) == 2_000
    forces = pq.read_table(bulk / "forces")
    race = np.array(forces.column("race").to_pylist())
    km = np.array(forces.column("objective_km").to_pylist())
    for r in np.unique(race)[:50]:  # racers share their objective
        assert len(set(km[race == r])) == 1


def test_race_odds_from_every_partition() -> None:
    inf = np.inf

    def part(index: list[int], race: list[int], arr: list[list[float]]) -> BucketResult:
        return BucketResult([0], 0, 0, len(index), 0, 0, {}, 0, 0.0, np.array(index),
                            np.array(race), np.zeros(len(index)), np.zeros(len(index)),
                            arrivals=np.array(arr, dtype=np.float32))

    # race 7: forces 1 and 4 (in two partitions), race 9: force 2 alone
    a = part([4, 2], [7, 9], [[1.0, 5.0, inf, 2.0], [3.0, inf, 1.0, 1.0]])
    b = part([1], [7], [[2.0, 4.0, inf, 3.0]])
    index, p = race_odds([a, b])
    assert index.tolist() == [1, 4, 2]
    # samples: force 4 wins 1 and 4, force 1 wins 2, nobody sample 3
    assert p.tolist() == [0.25, 0.5, 0.75]


@pytest.fixture(scope="module")
def cluster_engine() -> Iterator[Any]:
    pytest.importorskip("dask.distributed")
    from warroom.engine.dask_engine import DaskEngine

    e = DaskEngine(n_workers=2, threads_per_worker=1, memory_limit="1GiB")
    yield e
    e.close()


def test_local_and_dask_agree_on_a_bulk_archive(bulk: Path, cluster_engine: Any) -> None:
    fp = ForecastParams(samples=24, seed=4)
    buckets = bucket_dirs(bulk)

    def by_force(results: list[BucketResult]) -> dict[str, np.ndarray]:
        order = np.argsort(np.concatenate([r.index for r in results]))
        return {k: np.concatenate([getattr(r, k) for r in results])[order]
                for k in ("index", "s", "v", "eta")}

    local = LocalEngine().map(run_bucket, [buckets], archive=str(bulk), as_of=AS_OF,
                              forecast_params=fp)  # one task: every bucket in one batch
    tasks = groups(buckets, 20_000, cluster_engine.workers, per_task=2_000)
    assert len(tasks) == 10
    remote = cluster_engine.map(run_bucket, tasks, archive=str(bulk), as_of=AS_OF,
                                forecast_params=fp)
    assert {r.pid for r in remote} - {r.pid for r in local}  # ran in the workers
    a, b = by_force(local), by_force(remote)
    assert a["index"].tolist() == list(range(2000))
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    pa_, pb = race_odds(local)[1], race_odds(remote)[1]
    assert np.array_equal(pa_, pb)
    assert 0.0 < pa_.mean() < 1.0 and np.isfinite(a["eta"][:, 1]).any()
    # the cut-off is honoured: reports received later are not used
    assert sum(r.known for r in local) < sum(r.read for r in local) == 20_000
    # another seed, other samples (the agreement above is not trivial)
    other = LocalEngine().map(run_bucket, [buckets], archive=str(bulk), as_of=AS_OF,
                              forecast_params=ForecastParams(samples=24, seed=5))
    assert not np.array_equal(by_force(other)["eta"], a["eta"])


# -- the forecast over columns: the same numbers as the per-force path ----------------------------

def test_the_generators_draw_numpys_numbers() -> None:
    """default_rng([seed, crc, 1]).integers / .choice, replicated on arrays: small and huge
    populations (Lemire's rejections), one-word and multi-word seeds, crc 0."""
    from warroom.engine.default_rng import PCG64s, int_words

    rs = np.random.default_rng(5)
    for seed, top in ((0, 40), (3, 40), (2**32, 40), (2**40 + 7, 40), (11, 2**32 - 3),
                      (11, 3 * 2**30 + 5)):
        g = 300
        crc = rs.integers(0, 2**32, g, dtype=np.uint64)
        crc[0] = 0
        pop = rs.integers(1, top, g, dtype=np.uint64, endpoint=True)
        count = rs.integers(0, 30, g)
        words = [np.full(g, w, dtype=np.uint32) for w in int_words(seed)]
        got = PCG64s(words + [crc.astype(np.uint32), np.ones(g, dtype=np.uint32)]).integers(
            pop, count)
        for i in range(g):
            gen = np.random.default_rng([seed, int(crc[i]), 1])
            want = gen.integers(0, int(pop[i]), size=int(count[i]))
            assert np.array_equal(got[i, :count[i]], want), (seed, i)
            assert (got[i, count[i]:] == -1).all()
        if top < 100:  # what silence_index draws: choice of a population
            pool = np.arange(int(pop[1])) * 7
            gen = np.random.default_rng([seed, int(crc[1]), 1])
            assert np.array_equal(gen.choice(pool, size=int(count[1])),
                                  pool[got[1, :count[1]]])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=1, max_size=30), st.integers(0, 5))
def test_crc32_of_arrow_strings_is_zlibs(names: list[str], skip: int) -> None:
    import pyarrow as pa

    from warroom.engine.columnar import crc32

    arr = pa.array(names).slice(min(skip, len(names) - 1))
    want = [zlib.crc32(s.encode()) for s in arr.to_pylist()]
    assert crc32(arr).tolist() == want


def test_force_keys_are_the_forecasts() -> None:
    from warroom.engine.columnar import force_keys
    from warroom.forecast.rng import force_bases

    names = ["f0000001", "Ørsted", "", "a" * 50]
    crc = np.array([zlib.crc32(n.encode()) for n in names], dtype=np.uint32)
    for seed in (0, 1, 123456789):
        assert np.array_equal(force_keys(seed, crc), force_bases(seed, names))


def test_plan_columns_simulate_as_the_plans_do() -> None:
    """simulate_columns of plan_columns(plans) gives simulate_full's arrivals and positions
    (objectives, obstacles, halt lines, logistics)."""
    from warroom.estimate.track import WARROOM_IMM
    from warroom.forecast.engine import plan_columns, simulate_columns, simulate_full

    from .test_forecast import _mixed_plans

    ps = _mixed_plans()
    params = ForecastParams(samples=500, horizon_days=40.0, seed=3)
    rates = np.asarray(WARROOM_IMM.rates)
    arr, pos = simulate_full(ps, params, rates, (1.0, 3.0))
    arr_c, pos_c = simulate_columns(plan_columns(ps, params.seed), params, rates, (1.0, 3.0))
    assert np.isfinite(arr_c).any() and np.isinf(arr_c).any()
    assert pos_c is not None
    for i in range(len(ps)):
        rows = slice(i * 500, (i + 1) * 500)
        assert np.array_equal(arr[i], arr_c[rows]), i
        assert np.array_equal(pos[i], pos_c[rows], equal_nan=True), i


def test_columnar_forecast_equals_the_per_force_forecast(bulk: Path) -> None:
    """The batched forecast of a bucket (plans as arrays, silence rule on arrays) gives every
    force the arrivals that the per-force path (plans_of, simulate_full, silence_index)
    gives it."""
    from warroom.engine.columnar import (
        eta_quantiles,
        forecast_columns,
        plans_of,
        read_buckets,
        silence_rows,
        start_regime,
    )
    from warroom.estimate.track import EstimateParams
    from warroom.forecast.engine import silence_index, simulate_full

    ep = EstimateParams()
    fp = ForecastParams(samples=40, seed=7)
    late = START + 5 * 86400  # many forces have reports not yet received, some none at all
    b = read_buckets(bulk, bucket_dirs(bulk)[:6], late)
    est = estimate_columns(b.force, b.t, b.z, b.sigma**2 + ep.track_sigma_km**2,
                           len(b.index), params=ep)
    rates = np.asarray(ep.imm.rates, dtype=float)
    got = forecast_columns(b, est, late, fp, rates)
    plans = plans_of(b, est, late, fp)
    arrivals, _ = simulate_full(plans, fp, rates, ())
    keep = silence_index(plans, arrivals, fp.seed)
    rows = np.flatnonzero(est.n_used > 0)
    assert 0 < len(rows) and len(plans) == len(rows)
    redrawn = 0
    for p, a, k, r in zip(plans, arrivals, keep, rows, strict=True):
        want = (np.full(fp.samples, (p.reached[p.objectives[0]] - late) / SECONDS_PER_DAY)
                if p.reached else a[k, 0])
        assert np.array_equal(got[r], want.astype(np.float32)), p.force
        redrawn += int((k != np.arange(fp.samples)).any())
    assert redrawn > 0  # the silence rule was exercised
    assert np.isinf(got[est.n_used == 0]).all()
    assert np.array_equal(eta_quantiles(got),
                          np.quantile(got, [0.1, 0.5, 0.9], axis=1, method="inverted_cdf").T)
    assert start_regime(est.mu[rows], est.v[rows], fp).shape == (len(rows), 3)
    # silence_rows alone, on random patterns of contradicted samples
    rs = np.random.default_rng(1)
    fake = [np.where(rs.uniform(size=(fp.samples, 1)) < q, -1.0, 1.0).astype(np.float32)
            for q in rs.uniform(0, 1.2, len(plans))]
    for p in plans:
        p.reached = {}
    want_k = silence_index(plans, fake, fp.seed)
    crc = np.array([zlib.crc32(p.force.encode()) for p in plans], dtype=np.uint32)
    got_k = silence_rows(np.stack([f[:, 0] < 0 for f in fake]), crc, fp.seed)
    assert np.array_equal(got_k, np.stack(want_k))
