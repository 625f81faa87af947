"""Writing briefings to files (the I/O edge of publish): one file per format per slot, and an
``index.html`` to page through a replay. Rendering runs in worker processes (each render is
independent; matplotlib is the slow part)."""

from __future__ import annotations

import base64
import functools
import html
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from warroom import scenario as scenario_mod
from warroom.domain import Scenario
from warroom.publish import FILE_SUFFIX, RENDERERS
from warroom.publish.html import render_html
from warroom.timeutil import parse_time, to_datetime


def stem(briefing: dict[str, Any]) -> str:
    """``briefing-1945-04-12T1200Z``: the file name of a briefing, by its slot."""
    return "briefing-" + to_datetime(parse_time(briefing["slot"])).strftime("%Y-%m-%dT%H%MZ")


def write_briefing(out: Path, sc: Scenario, briefing: dict[str, Any],
                   formats: Sequence[str], compact: bool = False) -> dict[str, Path]:
    """Render and write one briefing in each format; the paths written. ``compact`` draws the
    HTML's map and chart at 1280 px instead of 1600 (a replay writes a hundred of them)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt in formats:
        path = out / f"{stem(briefing)}{FILE_SUFFIX[fmt]}"
        if fmt == "html" and compact:
            data = render_html(sc, briefing, map_px=(1280, 960), chart_width_px=1280,
                               dpi=128).encode("utf-8")
        else:
            data = RENDERERS[fmt](sc, briefing)
        path.write_bytes(data)
        paths[fmt] = path
    return paths


@functools.lru_cache(maxsize=4)
def _scenario(ref: str) -> Scenario:
    return scenario_mod.load(ref)  # once per worker process


def _render_job(args: tuple[str, str, str, tuple[str, ...]]) -> None:
    ref, out, text, formats = args
    write_briefing(Path(out), _scenario(ref), json.loads(text), formats, compact=True)


class BackgroundWriter:
    """Renders and writes briefings in worker processes while the caller goes on (a replay
    computes the next situation while the last one is drawn); ``close()`` waits for all."""

    def __init__(self, out: Path, sc: Scenario, formats: Sequence[str],
                 workers: int | None = None) -> None:
        self.out, self.sc, self.formats = out, sc, tuple(formats)
        n = workers or min(4, os.cpu_count() or 1)
        self.pool = ProcessPoolExecutor(max_workers=n) if n > 1 and sc.path else None
        self.jobs: list[Any] = []

    def submit(self, briefing: dict[str, Any]) -> None:
        if self.pool is None:
            write_briefing(self.out, self.sc, briefing, self.formats, compact=True)
            return
        job = (str(self.sc.path), str(self.out), json.dumps(briefing), self.formats)
        self.jobs.append(self.pool.submit(_render_job, job))

    def close(self) -> None:
        if self.pool is not None:
            for j in self.jobs:
                j.result()  # re-raise a worker's error here
            self.pool.shutdown()


def write_index(out: Path, sc: Scenario, briefings: Sequence[dict[str, Any]],
                formats: Sequence[str], highlight: dict[str, Any] | None = None) -> Path:
    """``index.html``: the map and headline of one briefing (``highlight``, else the last),
    then every briefing, oldest first, with its headline and alerts."""
    rows = []
    for b in briefings:
        links = " ".join(f'<a href="{stem(b)}{FILE_SUFFIX[f]}">{f}</a>' for f in formats)
        fired = b["alerts"]["fired"]
        alerts = "".join(f"<li class='{html.escape(a['severity'])}'>"
                         f"{html.escape(a['message'])}</li>" for a in fired)
        late = " <em>(late)</em>" if b["late"] else ""
        first = formats[0] if formats else "json"
        rows.append(
            f"<tr><td><a href='{stem(b)}{FILE_SUFFIX[first]}'>{html.escape(b['as_of'])}</a>"
            f"{late}</td><td>{'<br>'.join(html.escape(h) for h in b['headline'])}</td>"
            f"<td><ul>{alerts}</ul></td><td>{links}</td></tr>")
    top = highlight or (briefings[-1] if briefings else None)
    feature = ""
    if top is not None:
        from warroom.publish.map import render_map

        png = base64.b64encode(render_map(sc, top, width_px=1280, height_px=960,
                                          dpi=128)).decode()
        first = formats[0] if formats else "json"
        feature = (f"<h2>As of {html.escape(top['as_of'])}</h2><ul>"
                   + "".join(f"<li><b>{html.escape(h)}</b></li>" for h in top["headline"])
                   + f"</ul><p><a href='{stem(top)}{FILE_SUFFIX[first]}'>"
                   f"<img alt='situation map as of {html.escape(top['as_of'])}' "
                   f"src='data:image/png;base64,{png}' style='max-width:100%'></a></p>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(sc.name)}: briefings</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 4px 8px; vertical-align: top; }}
li.critical {{ color: #a00; }} li.warning {{ color: #a60; }} ul {{ margin: 0; padding-left: 1em; }}
</style></head><body>
<h1>{html.escape(sc.name)}</h1>
{feature}
<p>{len(briefings)} briefings. Each opens offline, map and ETA chart included.</p>
<table><tr><th>as of (UTC)</th><th>headline</th><th>alerts fired</th><th>files</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
