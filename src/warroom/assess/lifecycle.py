"""The alert lifecycle: pending -> firing -> resolved, one alert per key.

A condition that becomes true opens a *pending* alert; once it has held for the rule's
``for`` duration (0 = at once) the alert is *firing*; when the condition stops holding, a
firing alert is *resolved* and a pending one is dropped. The same key firing again later
opens a new episode. An ``eta_earlier`` alert for a force that has an ``approaching_line``
alert firing is suppressed (kept, marked, not sent), and says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from warroom.assess.config import AlertConfig
from warroom.assess.rules import Condition
from warroom.timeutil import parse_time, to_iso


@dataclass
class Alert:
    id: str
    rule: str
    force: str
    target: str
    state: str                  # pending | firing | resolved
    since: int                  # when the condition started holding (epoch s)
    message: str
    value: float | None
    reports: list[str] = field(default_factory=list)
    severity: str = "warning"
    fired_at: int | None = None
    resolved_at: int | None = None
    suppressed: bool = False
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("since", "fired_at", "resolved_at"):
            d[k] = to_iso(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        """The inverse of :meth:`as_dict`."""
        times = {k: None if d.get(k) is None else parse_time(d[k])
                 for k in ("since", "fired_at", "resolved_at")}
        return cls(**{**d, **times})


@dataclass
class Transition:
    """An alert changing state at a time: what the sinks deliver."""

    at: int
    alert: Alert
    to: str                     # firing | resolved


def advance(alerts: dict[str, Alert], conditions: Iterable[Condition], now: int,
            cfg: AlertConfig) -> tuple[dict[str, Alert], list[Transition]]:
    """New alert states and the transitions of this evaluation (a pure function)."""
    out = {k: a for k, a in alerts.items() if a.state != "resolved"}
    transitions: list[Transition] = []
    seen: set[str] = set()
    for c in conditions:
        seen.add(c.key)
        a = out.get(c.key)
        if not c.active:
            if a is not None and a.state == "firing":
                a = Alert(**{**a.__dict__, "state": "resolved", "resolved_at": now})
                out[c.key] = a
                transitions.append(Transition(now, a, "resolved"))
            elif a is not None:
                del out[c.key]
            continue
        if a is None:
            a = Alert(id=c.key, rule=c.rule, force=c.force, target=c.target, state="pending",
                      since=now, message=c.message, value=c.value, reports=list(c.reports),
                      severity=c.severity)
        else:
            a = Alert(**{**a.__dict__, "message": c.message, "value": c.value,
                         "reports": list(c.reports)})
        if a.state == "pending" and now - a.since >= cfg.for_h.get(c.rule, 0.0) * 3600:
            a.state = "firing"
            a.fired_at = now
            transitions.append(Transition(now, a, "firing"))
        out[c.key] = a
    for k, a in list(out.items()):  # a rule that no longer reports the key: resolved
        if k not in seen and a.state == "firing":
            out[k] = Alert(**{**a.__dict__, "state": "resolved", "resolved_at": now})
            transitions.append(Transition(now, out[k], "resolved"))
        elif k not in seen:
            del out[k]
    _suppress(out)
    return out, transitions


def _suppress(alerts: dict[str, Alert]) -> None:
    near = {a.force: a for a in alerts.values()
            if a.rule == "approaching_line" and a.state == "firing"}
    for a in alerts.values():
        if a.rule == "eta_earlier" and a.force in near:
            a.suppressed = True
            a.note = (f"suppressed: {near[a.force].id} is firing (the earlier ETA is the "
                      "approach to the halt line)")
        elif a.rule == "eta_earlier":
            a.suppressed, a.note = False, None
