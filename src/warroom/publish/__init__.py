"""Publish: render a briefing (data, see :mod:`warroom.brief`) to Markdown, HTML, JSON, PDF,
with a map and an ETA chart, or its forecast as CoT for TAK clients. One module per renderer,
registered in ``RENDERERS``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from warroom.domain import Scenario
from warroom.publish.fmt import Briefing

Renderer = Callable[[Scenario, Briefing], bytes]
"""``(scenario, briefing) -> bytes``: the file's content (text as UTF-8)."""


@dataclass(frozen=True)
class _Lazy:
    """The ``render_bytes`` of a module of this package, imported on first use (so that
    ``import warroom.publish`` does not load matplotlib)."""

    module: str

    def __call__(self, scenario: Scenario, briefing: Briefing) -> bytes:
        mod = import_module(f"{__name__}.{self.module}")
        return mod.render_bytes(scenario, briefing)


# A new format = a module with render_bytes(scenario, briefing) -> bytes + one line here.
_FORMATS: dict[str, tuple[str, str]] = {  # key: (module, file suffix)
    "md": ("markdown", ".md"),
    "html": ("html", ".html"),
    "json": ("jsonfmt", ".json"),
    "pdf": ("pdf", ".pdf"),
    "cot": ("cot", ".cot"),  # the forecast for TAK clients (Cursor-on-Target XML)
}

RENDERERS: dict[str, Renderer] = {key: _Lazy(mod) for key, (mod, _) in _FORMATS.items()}
FILE_SUFFIX: dict[str, str] = {key: suffix for key, (_, suffix) in _FORMATS.items()}

__all__ = ["FILE_SUFFIX", "RENDERERS", "Renderer"]
