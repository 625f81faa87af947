"""The briefing as Markdown: short, plain, and readable through Rich's Markdown renderer.

Text from the briefing is escaped (Markdown punctuation, HTML-like angle brackets, table
pipes), so a report's free text cannot break the layout. Images are left out: the Markdown is
for a terminal; the HTML and PDF carry the map and the ETA chart.
"""

from __future__ import annotations

import re

from warroom.domain import Scenario
from warroom.publish.document import (
    Block,
    Bullets,
    Figure,
    Heading,
    Item,
    Paragraph,
    Table,
    build_document,
)
from warroom.publish.fmt import Briefing

_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def escape(text: str) -> str:
    """Escape Markdown punctuation (and pipes, for tables); newlines become spaces."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _item(item: Item) -> str:
    tag = f"**{escape(item.tag)}** " if item.tag else ""
    return f"- {tag}{escape(item.text)}"


def _table(t: Table) -> list[str]:
    numeric = t.numeric or (False,) * len(t.header)
    lines = ["| " + " | ".join(escape(h) for h in t.header) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(escape(c) or " " for c in row) + " |" for row in t.rows]
    return lines


def _block(b: Block) -> list[str]:
    match b:
        case Heading(text=text, level=level):
            return [f"{'#' * level} {escape(text)}"]
        case Paragraph(text=text, muted=muted):
            return [f"*{escape(text)}*" if muted else escape(text)]
        case Bullets(items=items):
            return [_item(i) for i in items]
        case Table():
            return _table(b)
        case Figure():
            return []
    return []


def render_markdown(briefing: Briefing) -> str:
    """The briefing as a Markdown document (ends with a newline)."""
    parts = ["\n".join(lines) for lines in map(_block, build_document(briefing)) if lines]
    return "\n\n".join(parts) + "\n"


def render_bytes(scenario: Scenario, briefing: Briefing) -> bytes:
    """Registry entry point: UTF-8 Markdown (the scenario is not needed)."""
    del scenario
    return render_markdown(briefing).encode("utf-8")
