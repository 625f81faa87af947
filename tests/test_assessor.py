"""The server's assessment in a worker process gives what it gives in the server's thread."""

from __future__ import annotations

from pathlib import Path

from warroom.server.assessor import NICE, Assessor, conditions_of
from warroom.timeutil import parse_time
from warroom.workspace import open_workspace

from .conftest import POLE


def test_worker_conditions_equal_in_thread_ones_and_see_new_reports(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    ws = open_workspace(str(db), "berlin1945", create=True)
    now = parse_time("1945-04-12T12:00:00Z")
    a = Assessor(str(db), str(ws.scenario.path))
    try:
        there, cot = a.conditions(now, 300, None, True)
        here, cot_here = conditions_of(ws.scenario, ws.store.reports_by_force(as_of=now), now,
                                       300, None, True)
        assert there == here and len(here) > 0
        assert cot == cot_here and b'how="m-p"' in cot
        # a report committed by the server is seen by the worker's next assessment
        ws.store.conn.execute("BEGIN IMMEDIATE")
        ws.store.conn.execute(
            "INSERT INTO reports (source, report_id, force, observed_at, received_at, grade, "
            "event, target, ingested_at) VALUES ('t', 'x1', 'us9', ?, ?, 'A1', "
            "'reached', 'berlin', ?)", (now - 3600, now - 60, now))
        ws.store.conn.execute("COMMIT")
        after, _ = a.conditions(now, 300, None, False)
        fired = {(c.rule, c.force, c.target) for c in after} - {(c.rule, c.force, c.target)
                                                                for c in there}
        assert ("arrived", "us9", "berlin") in fired
    finally:
        a.close()


def _worker_pids(a: Assessor) -> list[int]:
    pool = a._executor()
    pool.submit(int).result(timeout=60)  # the worker is up
    return [p.pid for p in pool._processes.values()]  # type: ignore[union-attr]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_worker_yields_to_the_server_and_close_stops_it(tmp_path: Path) -> None:
    import os

    import pytest
    if not os.path.exists("/proc/self/stat"):
        pytest.skip("needs /proc")
    ws = open_workspace(str(tmp_path / "w.db"), str(POLE), create=True)
    a = Assessor(ws.store.path, str(POLE))
    (pid,) = _worker_pids(a)
    want = min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICE)
    assert os.getpriority(os.PRIO_PROCESS, pid) == want
    # every thread, the ones NumPy's BLAS started on import too (a priority is per thread)
    tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    assert len(tids) >= 2  # the watchdog at least
    assert {os.getpriority(os.PRIO_PROCESS, t) for t in tids} == {want}
    a.close()
    assert not _alive(pid)
    ws.store.close()


def test_worker_ends_when_the_server_is_killed(tmp_path: Path) -> None:
    """A server killed outright (SIGKILL: no shutdown) leaves no assessment running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import pytest
    if not os.path.exists("/proc/self/stat"):
        pytest.skip("needs /proc")
    ws = open_workspace(str(tmp_path / "w.db"), str(POLE), create=True)
    ws.store.close()
    code = ("import sys, time\n"
            "from warroom.server.assessor import Assessor\n"
            f"a = Assessor({str(tmp_path / 'w.db')!r}, {str(POLE)!r})\n"
            "pool = a._executor(); pool.submit(int).result(timeout=60)\n"
            "print([p.pid for p in pool._processes.values()][0], flush=True)\n"
            "time.sleep(600)\n")
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(server.stdout.readline())  # type: ignore[union-attr]
        assert _alive(pid)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pid)
    finally:
        server.kill()
