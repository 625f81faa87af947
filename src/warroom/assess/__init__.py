"""Assess: alert rules over a situation, and the alert lifecycle.

Each rule (``rules.RULES``) looks at a :class:`~warroom.situation.Situation` (and the
forecast at the previous briefing) and says, per key ``(rule, force, target)``, whether its
condition holds, with a message and the reports behind it. ``lifecycle.advance`` turns those
conditions into alerts that go pending -> firing (after the rule's ``for`` duration) ->
resolved, deduplicated by key. Sinks (``sinks``) deliver the transitions.
"""
