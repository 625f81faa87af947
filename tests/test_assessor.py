"""The server's assessment in a worker process gives what it gives in the server's thread."""

from __future__ import annotations

from pathlib import Path

from warroom.server.assessor import Assessor, conditions_of
from warroom.timeutil import parse_time
from warroom.workspace import open_workspace


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
            "event, target, digest, ingested_at) VALUES ('t', 'x1', 'us9', ?, ?, 'A1', "
            "'reached', 'berlin', 'd', ?)", (now - 3600, now - 60, now))
        ws.store.conn.execute("COMMIT")
        after, _ = a.conditions(now, 300, None, False)
        fired = {(c.rule, c.force, c.target) for c in after} - {(c.rule, c.force, c.target)
                                                                for c in there}
        assert ("arrived", "us9", "berlin") in fired
    finally:
        a.close()
