"""Alert thresholds: defaults, overridden by ``[alerts]`` in scenario.toml.

``[alerts]`` keys (hours are hours, probabilities in [0, 1]):

=========================  =======  ===========================================================
key                        default  meaning
=========================  =======  ===========================================================
accelerating_z             2.0      acceleration test z-score that counts as faster now
accelerating_p_pursuit     0.7      or the IMM's P(pursuit) at the last report
accelerating_min_reports   2        ... with at least this many reports used in the last 48 h
timetable_threat_p         0.3      P(a rival arrives before our planned date)
eta_earlier_h              12       median ETA earlier than at the last briefing by this much
approaching_line_p         0.5      P(reaching a halt line within 48 h)
silent_after_h             12       no report about a force for this long
for_h                      table    ``for_h = { accelerating = 6, ... }``: how long a condition
                                    must hold before its alert fires (pending until then)
=========================  =======  ===========================================================
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from typing import Any

from warroom.domain import Scenario
from warroom.scenario import ScenarioError

DEFAULT_FOR_H = {"accelerating": 6.0, "timetable_threat": 6.0, "eta_earlier": 0.0,
                 "approaching_line": 0.0, "crossed_line": 0.0, "silent": 0.0, "arrived": 0.0}


@dataclass(frozen=True)
class AlertConfig:
    accelerating_z: float = 2.0
    accelerating_p_pursuit: float = 0.7
    accelerating_min_reports: int = 2
    timetable_threat_p: float = 0.3
    eta_earlier_h: float = 12.0
    approaching_line_p: float = 0.5
    silent_after_h: float = 12.0
    for_h: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FOR_H))


def alert_config(scenario: Scenario) -> AlertConfig:
    """The scenario's alert configuration (ScenarioError naming a wrong key)."""
    cfg: dict[str, Any] = {}
    if scenario.path is not None:
        with open(scenario.path / "scenario.toml", "rb") as fh:
            cfg = dict(tomllib.load(fh).get("alerts") or {})
    known = {f.name for f in dataclasses.fields(AlertConfig)}
    bad = sorted(set(cfg) - known)
    if bad:
        raise ScenarioError([f"scenario.toml [alerts]: unknown key(s) {', '.join(bad)}; "
                             f"expected {', '.join(sorted(known))}"])
    if "for_h" in cfg:
        unknown = sorted(set(cfg["for_h"]) - set(DEFAULT_FOR_H))
        if unknown:
            raise ScenarioError([f"scenario.toml [alerts] for_h: unknown rule(s) "
                                 f"{', '.join(unknown)}; expected {', '.join(DEFAULT_FOR_H)}"])
        cfg["for_h"] = DEFAULT_FOR_H | {k: float(v) for k, v in cfg["for_h"].items()}
    return AlertConfig(**cfg)
