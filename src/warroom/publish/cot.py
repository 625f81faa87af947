"""The forecast as Cursor-on-Target: where each force may be in 24 h and 72 h, for TAK clients.

One CoT ``<event>`` per force and fan horizon (briefing field ``forces[i].fan``: p10/p50/p90 km
along the force's route at +24 h and +72 h), back to back as a CoT stream::

    <event version="2.0" uid="warroom.us9.24h" type="a-u-G" how="m-p"
           time="<as_of>" start="<as_of + 24 h>" stale="<as_of + 30 h>">
      <point lat=".." lon=".." hae="9999999.0" ce=".." le="9999999.0"/>
      <detail><contact callsign="US Ninth Army +24h"/>
        <remarks>forecast as of ..: km 505 (p10 397, p90 590) along its route</remarks>
      </detail></event>

- ``how="m-p"``: machine, predicted. ``uid`` is stable per force and horizon, so a TAK client
  moves the same marker as forecasts are renewed.
- ``point``: the p50 km along the route, as latitude/longitude (WGS-84 degrees).
- ``ce`` (metres, CoT's circular error): the p10-p90 spread along the route over 2.563, the
  standard deviation a normal spread of that width has (``p90 - p10 = 2 x 1.2816 sigma``);
  at least 1 m. Heights are unknown (``9999999.0``).
- ``type``: ``a-f-G`` (friend) for forces of the scenario's perspective side, ``a-u-G``
  (unknown affiliation: a rival in a race is not necessarily hostile) for the others.
- ``time`` is the briefing's ``as_of`` (when the forecast was made), ``start`` the time the
  position is predicted for, ``stale`` 6 h after it.

Registered as the ``cot`` renderer (``warroom brief --format cot``,
``GET /briefings/{slot}.cot``); ``warroom serve --cot-forecasts`` pushes the same events to
every connected CoT client after each assessment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import quoteattr

from warroom.domain import Scenario

HORIZONS = {"24h": 24.0, "72h": 72.0}
STALE_AFTER_H = 6.0
SIGMA_PER_P10_P90 = 2.563103131  # p90 - p10 of a normal distribution, in standard deviations
UNKNOWN = "9999999.0"


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def forecast_events(scenario: Scenario, briefing: dict[str, Any]) -> list[str]:
    """One CoT event (XML text) per force and fan horizon of ``briefing``."""
    as_of = datetime.fromisoformat(briefing["as_of"].replace("Z", "+00:00")).astimezone(UTC)
    out = []
    for f in briefing["forces"]:
        force = scenario.forces.get(f["id"])
        fan = f.get("fan") or {}
        if force is None:
            continue
        ours = scenario.perspective is not None and force.side == scenario.perspective
        kind = "a-f-G" if ours else "a-u-G"
        for label, hours in HORIZONS.items():
            q = fan.get(label)
            if not q or q.get("p50") is None:
                continue
            lat, lon = force.route.point_at(q["p50"])
            ce = max(1.0, (q["p90"] - q["p10"]) * 1000.0 / SIGMA_PER_P10_P90)
            start = as_of + timedelta(hours=hours)
            remarks = (f"warroom forecast as of {briefing['as_of']}: km {q['p50']:.0f} "
                       f"(p10 {q['p10']:.0f}, p90 {q['p90']:.0f}) along its route")
            out.append(
                f'<event version="2.0" uid={quoteattr(f"warroom.{force.id}.{label}")} '
                f'type="{kind}" how="m-p" time="{_iso(as_of)}" start="{_iso(start)}" '
                f'stale="{_iso(start + timedelta(hours=STALE_AFTER_H))}">'
                f'<point lat="{lat:.6f}" lon="{lon:.6f}" hae="{UNKNOWN}" ce="{ce:.1f}" '
                f'le="{UNKNOWN}"/><detail>'
                f'<contact callsign={quoteattr(f"{force.name} +{label}")}/>'
                f'<remarks>{_text(remarks)}</remarks></detail></event>')
    return out


def _text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_bytes(scenario: Scenario, briefing: dict[str, Any]) -> bytes:
    """The events as one CoT stream (UTF-8, an XML declaration and a newline per event)."""
    return "".join(f'<?xml version="1.0" encoding="UTF-8"?>\n{e}\n'
                   for e in forecast_events(scenario, briefing)).encode()
