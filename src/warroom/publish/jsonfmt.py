"""The briefing as JSON: sorted keys, 2-space indent, UTF-8 text (not ``\\u`` escapes).

``json.loads(render_json(b)) == b`` for every briefing (a JSON-ready dict). NaN and infinity
are refused (ValueError) rather than written as the invalid JSON tokens ``NaN``/``Infinity``.
"""

from __future__ import annotations

import json

from warroom.domain import Scenario
from warroom.publish.fmt import Briefing


def render_json(briefing: Briefing) -> str:
    """The briefing as pretty, stable JSON text (ends with a newline)."""
    return json.dumps(dict(briefing), sort_keys=True, indent=2, ensure_ascii=False,
                      allow_nan=False) + "\n"


def render_bytes(scenario: Scenario, briefing: Briefing) -> bytes:
    """Registry entry point: UTF-8 JSON (the scenario is not needed)."""
    del scenario
    return render_json(briefing).encode("utf-8")
