"""The briefing as a PDF made with matplotlib's PdfPages (no other dependency).

Page 1: title, headline, the force and objective tables, and as much of the rest (alerts,
changes, disregarded reports) as fits; page 2: the map; page 3: the ETA chart; any text that
did not fit on page 1 follows on pages 4+. A4 landscape. Text is laid out line by line (tables
in a monospaced font, cells wrapped to fit); the map and the chart are vector graphics.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure as MplFigure

from warroom.domain import Scenario
from warroom.publish import style
from warroom.publish.chart import draw_eta_chart
from warroom.publish.document import (
    Block,
    Bullets,
    Figure,
    Heading,
    Paragraph,
    Table,
    build_document,
    title,
)
from warroom.publish.fmt import Briefing
from warroom.publish.map import draw_map

PAGE_IN = (11.69, 8.27)  # A4 landscape
MARGIN_PT = 36.0
BODY_PT = 8.0
LEADING = 1.32
BODY_RECT = (0.0, 0.06, 1.0, 0.94)  # figure pages: clear of the footer
EM = 0.6  # a character's width in em (DejaVu Sans Mono; an upper bound for DejaVu Sans)


@dataclass(frozen=True)
class Line:
    """One laid-out line of a text page."""

    text: str
    size: float = BODY_PT
    bold: bool = False
    mono: bool = False
    color: str = "#1d1d1d"
    gap_pt: float = 0.0  # extra space above
    keep_with_next: int = 0  # lines that must follow on the same page

    @property
    def height_pt(self) -> float:
        return self.gap_pt + self.size * LEADING


def _width_chars(size: float) -> int:
    return int((PAGE_IN[0] * 72 - 2 * MARGIN_PT) / (EM * size))


def _wrap(text: str, size: float, indent: str = "", first: str = "") -> list[str]:
    return textwrap.wrap(text, _width_chars(size), initial_indent=first,
                         subsequent_indent=indent or " " * len(first)) or [first]


def _table_lines(t: Table) -> list[Line]:
    width = _width_chars(BODY_PT)
    n = len(t.header)
    numeric = t.numeric or (False,) * n
    cols = [max([len(t.header[i])] + [len(r[i]) for r in t.rows if i < len(r)])
            for i in range(n)]
    while sum(cols) + 2 * (n - 1) > width and max(cols) > 6:
        cols[cols.index(max(cols))] -= 1

    def row_lines(row: tuple[str, ...]) -> list[str]:
        cells = [textwrap.wrap(row[i] if i < len(row) else "", cols[i]) or [""]
                 for i in range(n)]
        out = []
        for k in range(max(len(c) for c in cells)):
            parts = [(c[k] if k < len(c) else "") for c in cells]
            out.append("  ".join(p.rjust(cols[i]) if numeric[i] else p.ljust(cols[i])
                                 for i, p in enumerate(parts)).rstrip())
        return out

    lines = [Line(s, bold=True, mono=True, keep_with_next=2) for s in row_lines(t.header)]
    lines.append(Line("─" * min(width, sum(cols) + 2 * (n - 1)), mono=True, color="#888888"))
    for row in t.rows:
        lines += [Line(s, mono=True) for s in row_lines(row)]
    return lines


def layout(blocks: list[Block]) -> list[Line]:
    """The text blocks (figures skipped) as lines."""
    out: list[Line] = []
    for b in blocks:
        match b:
            case Heading(text=text, level=level):
                size = {1: 14.0, 2: 10.5}.get(level, 9.0)
                wrapped = _wrap(text, size)
                for i, s in enumerate(wrapped):
                    out.append(Line(s, size=size, bold=True, gap_pt=(8.0 if i == 0 and level > 1
                                                                     else 0.0),
                                    keep_with_next=2))
            case Paragraph(text=text, muted=muted):
                out += [Line(s, color="#666666" if muted else "#1d1d1d")
                        for s in _wrap(text, BODY_PT)]
            case Bullets(items=items, role=role):
                bold = role == "headline"
                for item in items:
                    first = "• " + (f"[{item.tag}] " if item.tag else "")
                    out += [Line(s, bold=bold) for s in _wrap(item.text, BODY_PT, "  ", first)]
            case Table():
                out += _table_lines(b)
                out.append(Line("", size=BODY_PT / 2))
            case Figure():
                pass
    return out


def paginate(lines: list[Line]) -> list[list[Line]]:
    """Lines split into pages, keeping headings with what follows them."""
    room = PAGE_IN[1] * 72 - 2 * MARGIN_PT - 26.0  # minus the footer and a "continued" line
    pages: list[list[Line]] = [[]]
    used = 0.0
    for i, line in enumerate(lines):
        need = line.height_pt + sum(x.height_pt for x in lines[i + 1:i + 1 + line.keep_with_next])
        if pages[-1] and used + need > room:
            pages.append([])
            used = 0.0
        pages[-1].append(line)
        used += line.height_pt
    return pages


def _page(w_in: float = PAGE_IN[0], h_in: float = PAGE_IN[1]) -> MplFigure:
    fig = MplFigure(figsize=(w_in, h_in))
    FigureCanvasAgg(fig)  # text extents for the layout code; PdfPages draws the page itself
    fig.patch.set_facecolor("white")
    return fig


def _footer(fig: MplFigure, text: str, page: int, total: int) -> None:
    h = PAGE_IN[1] * 72
    fig.text(MARGIN_PT / (PAGE_IN[0] * 72), (MARGIN_PT * 0.6) / h, text, fontsize=6.5,
             color="#888888", family=style.FONT)
    fig.text(1 - MARGIN_PT / (PAGE_IN[0] * 72), (MARGIN_PT * 0.6) / h, f"page {page}/{total}",
             fontsize=6.5, color="#888888", ha="right", family=style.FONT)


def _text_page(lines: list[Line]) -> MplFigure:
    fig = _page()
    w, h = PAGE_IN[0] * 72, PAGE_IN[1] * 72
    y = MARGIN_PT
    for line in lines:
        y += line.gap_pt
        if line.text:
            fig.text(MARGIN_PT / w, 1 - y / h, line.text, fontsize=line.size, va="top",
                     family=style.MONO if line.mono else style.FONT,
                     fontweight="bold" if line.bold else "normal", color=line.color)
        y += line.size * LEADING
    return fig


def render_pdf(scenario: Scenario, briefing: Briefing) -> bytes:
    """The briefing as PDF bytes: summary, map, ETA chart (then any overflow text)."""
    pages = paginate(layout(build_document(briefing)))
    total = len(pages) + 2
    name = title(briefing)
    buf = io.BytesIO()
    meta = {"Title": name, "Creator": "warroom", "Producer": "warroom (matplotlib)",
            "CreationDate": None}
    if len(pages) > 1:
        pages[0].append(Line("(continued on page 4)", color="#666666", gap_pt=4.0))
    with PdfPages(buf, metadata=meta) as pdf:
        figs: list[MplFigure] = [_text_page(pages[0])]
        fig = _page()
        draw_map(fig, scenario, briefing, BODY_RECT)
        figs.append(fig)
        fig = _page()
        draw_eta_chart(fig, scenario, briefing, BODY_RECT)
        figs.append(fig)
        figs += [_text_page(p) for p in pages[1:]]
        for n, fig in enumerate(figs, start=1):
            _footer(fig, name, n, total)
            pdf.savefig(fig)
    return buf.getvalue()


def render_bytes(scenario: Scenario, briefing: Briefing) -> bytes:
    """Registry entry point."""
    return render_pdf(scenario, briefing)
