"""The assessment after an ingest, computed in a worker process.

After reports land, the server runs the alert rules on the situation now: estimate every force,
forecast, evaluate the rules (:mod:`warroom.assess.rules`). That is the heavy part of the
server's work, pure NumPy and Python over every stored report, and in the server's own process
it would hold the interpreter lock away from the requests being answered. So it runs in one
worker process (:class:`Assessor`), which opens the same SQLite file (WAL: readers never block
the server's writes) and loads the same scenario, once, and returns only what the server needs:
the rules' conditions (small dataclasses) and, when asked, the forecast as CoT bytes. The
worker runs at a lower scheduling priority (``nice`` +10): under a flood of reports the cores
go to taking them, and the assessment catches up with what is left. The
server keeps the alerts' lifecycle (pending, firing, resolved), their storage and their
announcement, as before: one writer.

A store in memory (``:memory:``) cannot be opened by another process: there the assessment
runs in the server's thread as it always did (:func:`conditions_at` is the same function).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from typing import Any

from warroom.assess.config import alert_config
from warroom.assess.rules import Condition, evaluate
from warroom.brief import build_briefing
from warroom.domain import Report, Scenario
from warroom.estimate.config import estimate_params
from warroom.forecast.params import ForecastParams
from warroom.situation import build_situation
from warroom.store import Store


def conditions_of(sc: Scenario, reports: Mapping[str, Sequence[Report]], now: int,
                  samples: int, previous: dict[str, Any] | None, want_cot: bool
                  ) -> tuple[list[Condition], bytes | None]:
    """The rules' conditions on the situation as of ``now`` (epoch s) from the reports received
    by then; with ``want_cot`` also the forecast as CoT (:mod:`warroom.publish.cot`)."""
    sit = build_situation(sc, reports, now, ForecastParams(samples=samples),
                          estimate_params(sc))
    conds = evaluate(sit, previous, alert_config(sc))
    cot = None
    if want_cot:
        from warroom.publish.cot import render_bytes

        cot = render_bytes(sc, build_briefing(sit, {}, [], None, now))
    return conds, cot


@lru_cache(maxsize=4)
def _opened(db: str, scenario_path: str) -> tuple[Scenario, Store]:
    """The worker's scenario and its own read connection to the store (kept between calls)."""
    from warroom import scenario as scenario_mod

    return scenario_mod.load(scenario_path), Store(db)


def conditions_at(db: str, scenario_path: str, now: int, samples: int,
                  previous: dict[str, Any] | None, want_cot: bool
                  ) -> tuple[list[Condition], bytes | None]:
    """:func:`conditions_of` for the store at ``db`` and the scenario folder
    ``scenario_path`` (the worker's entry point: arguments and result are plain data)."""
    sc, store = _opened(db, scenario_path)
    return conditions_of(sc, store.reports_by_force(as_of=now), now, samples, previous,
                         want_cot)


def _warm(db: str, scenario_path: str) -> None:
    _opened(db, scenario_path)


NICE = 10  # the worker's scheduling priority below the server's (Unix nice increment)


def _init_worker(server_pid: int) -> None:
    """The worker's initializer. It runs at a lower priority than the server, so on a busy
    machine the scheduler gives requests the cores first and the assessment what is left (on
    an idle machine it still runs at full speed); and it ends itself, mid-assessment if need
    be, once the server process is gone (killed, say), rather than finish work nobody awaits."""
    _lower_priority(NICE)

    def watch() -> None:
        while os.getppid() == server_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="warroom-assessor-watch").start()


def _lower_priority(increment: int) -> None:
    """Lower the priority of every thread of this process by ``increment`` (nice). On Linux
    a priority belongs to a thread: ``os.nice`` alone would leave the threads started before it
    (the BLAS pool NumPy starts on import, which runs the filters' matrix work) at the server's
    priority."""
    try:
        os.nice(increment)
    except (AttributeError, OSError):  # no nice on this platform: same priority
        return
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    for tid in tids:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < mine:
                os.setpriority(os.PRIO_PROCESS, tid, mine)
        except OSError:  # the thread has ended meanwhile
            pass


class AssessorClosed(Exception):
    """The assessor was closed (the server is stopping) while an assessment was running."""


class Assessor:
    """One worker process for assessments (started on first use, ``spawn``: safe beside the
    server's threads). ``db`` must be a file."""

    def __init__(self, db: str, scenario_path: str) -> None:
        self.db = db
        self.scenario_path = scenario_path
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker, initargs=(os.getpid(),))
            return self._pool

    def start(self) -> None:
        """Start the worker now and load the scenario there (so the first assessment after
        an ingest does not wait for it)."""
        self._executor().submit(_warm, self.db, self.scenario_path)

    def conditions(self, now: int, samples: int, previous: dict[str, Any] | None,
                   want_cot: bool) -> tuple[list[Condition], bytes | None]:
        """:func:`conditions_at` in the worker (blocks the calling thread, not the server).
        Raises :class:`AssessorClosed` when :meth:`close` stops it meanwhile."""
        try:
            return self._executor().submit(conditions_at, self.db, self.scenario_path, now,
                                           samples, previous, want_cot).result()
        except BrokenProcessPool:
            if self._closed:
                raise AssessorClosed from None
            raise

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker now: an assessment under way is abandoned (it only reads)."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._closed = True
        if pool is not None:
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                p.terminate()
            for p in procs:
                p.join(timeout)
