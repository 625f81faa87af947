"""Briefing benchmark: one briefing without and with the map, and the full berlin1945 replay.

    python benchmarks/brief.py

Targets: <= 0.5 s per briefing without the map, <= 2 s with it; the replay <= 60 s. A
"briefing" here is the whole chain as of one time: estimate, forecast (2,000 samples),
alerts and the briefing data (+ Markdown); "with the map" adds the self-contained HTML with
the map and the ETA chart. The replay is `warroom replay` on berlin1945, 1 April to 3 May
1945 every 6 hours (129 briefings, 1,000 samples each, HTML + Markdown + JSON).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time

from warroom.assess.config import alert_config
from warroom.assess.lifecycle import advance
from warroom.assess.rules import evaluate
from warroom.brief import build_briefing
from warroom.forecast.params import ForecastParams
from warroom.publish import RENDERERS
from warroom.situation import build_situation
from warroom.timeutil import parse_time
from warroom.workspace import open_workspace


def main() -> None:
    ws = open_workspace(None, "berlin1945")  # in memory, seeded with the scenario's reports
    sc, by = ws.scenario, ws.store.reports_by_force()
    at = parse_time("1945-04-12T12:00:00Z")
    cfg = alert_config(sc)

    def one(with_map: bool) -> float:
        t = time.perf_counter()
        sit = build_situation(sc, by, at, ForecastParams(samples=2000))
        alerts, tr = advance({}, evaluate(sit, None, cfg), at, cfg)
        b = build_briefing(sit, alerts, tr, None, at)
        RENDERERS["md"](sc, b)
        if with_map:
            RENDERERS["html"](sc, b)
        return time.perf_counter() - t

    one(True)  # warm-up (imports, font cache)
    plain = statistics.median(one(False) for _ in range(5))
    mapped = statistics.median(one(True) for _ in range(3))
    print(f"one briefing without the map: {plain:.2f} s (target <= 0.5 s: "
          f"{'met' if plain <= 0.5 else 'NOT met'})")
    print(f"one briefing with map and chart (HTML): {mapped:.2f} s (target <= 2 s: "
          f"{'met' if mapped <= 2 else 'NOT met'})")
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "warroom", "replay", "--scenario", "berlin1945",
                        "--from", "1945-04-01T00:00Z", "--to", "1945-05-03T00:00Z",
                        "--out", d], check=True, capture_output=True)
        replay_s = time.perf_counter() - t
    print(f"berlin1945 replay, 129 briefings: {replay_s:.1f} s (target <= 60 s: "
          f"{'met' if replay_s <= 60 else 'NOT met'})")


if __name__ == "__main__":
    main()
