"""The briefing as one self-contained HTML5 page: inline CSS, images as ``data:`` URIs.

No script, no external URL (no fonts, no style sheets, no links out): the file can be mailed
or opened offline. All text from the briefing is escaped with :func:`html.escape`. The page
carries the same content as the Markdown (see :mod:`warroom.publish.document`) plus the map
and the ETA chart.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping

from warroom.domain import Scenario
from warroom.publish.chart import render_eta_chart
from warroom.publish.document import (
    Block,
    Bullets,
    Figure,
    Heading,
    Item,
    Paragraph,
    Table,
    build_document,
    title,
)
from warroom.publish.fmt import Briefing
from warroom.publish.map import render_map

CSS = """
body { font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1d;
       background: #f4f3ef; margin: 0; line-height: 1.4; font-size: 15px; }
main { max-width: 1180px; margin: 0 auto; padding: 1.2em 1.6em 3em; background: #fff; }
h1 { font-size: 1.45em; margin: 0.3em 0 0.1em; }
h2 { font-size: 1.15em; margin: 1.6em 0 0.5em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1em; margin: 1em 0 0.3em; color: #444; }
p.muted { color: #666; font-size: 0.88em; margin-top: 0.1em; }
ul.headline { background: #fff7e0; border-left: 4px solid #b8860b; padding: 0.6em 1em 0.6em 2em;
              font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; margin: 0.4em 0 0.8em; }
th, td { border-bottom: 1px solid #e2e2e2; padding: 0.3em 0.5em; text-align: left;
         vertical-align: top; }
th { background: #f0efe9; }
td.num, th.num { text-align: right; white-space: nowrap; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #666; font-size: 0.85em; }
.tag { display: inline-block; font-size: 0.75em; font-weight: 700; padding: 0 0.4em;
       border-radius: 3px; margin-right: 0.4em; background: #888; color: #fff; }
.tag-critical { background: #b71c1c; } .tag-warning { background: #e08e0b; }
.tag-info { background: #1f4e9c; }
"""


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


def _item(item: Item) -> str:
    tag = ""
    if item.tag:
        cls = "tag tag-" + "".join(c for c in item.tag.lower() if c.isalnum())
        tag = f'<span class="{cls}">{_e(item.tag)}</span>'
    return f"<li>{tag}{_e(item.text)}</li>"


def _table(t: Table) -> str:
    numeric = t.numeric or (False,) * len(t.header)

    def cls(i: int) -> str:
        return ' class="num"' if i < len(numeric) and numeric[i] else ""

    head = "".join(f"<th{cls(i)}>{_e(h)}</th>" for i, h in enumerate(t.header))
    body = "\n".join("<tr>" + "".join(f"<td{cls(i)}>{_e(c)}</td>" for i, c in enumerate(row))
                     + "</tr>" for row in t.rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _block(b: Block, images: Mapping[str, bytes]) -> str:
    match b:
        case Heading(text=text, level=level):
            lv = min(max(level, 1), 6)
            return f"<h{lv}>{_e(text)}</h{lv}>"
        case Paragraph(text=text, muted=muted):
            return f'<p class="muted">{_e(text)}</p>' if muted else f"<p>{_e(text)}</p>"
        case Bullets(items=items, role=role):
            cls = ' class="headline"' if role == "headline" else ""
            return f"<ul{cls}>\n" + "\n".join(_item(i) for i in items) + "\n</ul>"
        case Table():
            return _table(b)
        case Figure(key=key, caption=caption):
            png = images.get(key)
            if not png:
                return ""
            return (f'<figure><img src="{data_uri(png)}" alt="{_e(caption)}">'
                    f"<figcaption>{_e(caption)}</figcaption></figure>")
    return ""


def html_page(briefing: Briefing, images: Mapping[str, bytes]) -> str:
    """The page, with ``images`` ("map", "chart": PNG bytes) embedded where they belong."""
    body = "\n".join(s for s in (_block(b, images) for b in build_document(briefing)) if s)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title(briefing))}</title>\n<style>{CSS}</style>\n</head>\n"
            f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


def render_html(scenario: Scenario, briefing: Briefing, *,
                map_px: tuple[int, int] = (1600, 1200), chart_width_px: int = 1600,
                dpi: float = 160) -> str:
    """The briefing as one self-contained HTML page with the map and the ETA chart."""
    images = {"map": render_map(scenario, briefing, map_px[0], map_px[1], dpi),
              "chart": render_eta_chart(scenario, briefing, chart_width_px, None, dpi)}
    return html_page(briefing, images)


def render_bytes(scenario: Scenario, briefing: Briefing) -> bytes:
    """Registry entry point: UTF-8 HTML."""
    return render_html(scenario, briefing).encode("utf-8")
