"""Forecast parameters: documented priors, and the ``--set`` what-if overrides.

Speeds (km/day) are log-normal per regime, drawn at each entry into a regime:

=============  ==========================================  =====================
regime         median                                       sigma of log (spread)
=============  ==========================================  =====================
halted         0                                            -
advancing      learned, else ``advancing_kmpd`` (25)        ``advancing_sigma`` 0.5
pursuit        2 x advancing (prior ``pursuit_kmpd``, 50)       ``pursuit_sigma`` 0.4
=============  ==========================================  =====================

Learned: each force has its own pace. The moving speeds of its smoothed history (faster than
2 km/day; or its present speed if it has no history yet) estimate its advancing median, which
is shrunk towards the prior by how much evidence there is (``pace_sigma`` 1.0 on the log
scale: the prior is weak, forces may differ from it by a factor of e or more, so the same
engine serves armies, convoys and yachts); see :func:`warroom.forecast.plan._speeds`.
Forces never seen moving get the priors.

Regime switching is the estimate's continuous-time Markov chain (per day): a halt lasts weeks
(leaves at 0.04/day), an advance days (0.2/day), a pursuit a few days (0.25/day); see
:data:`warroom.estimate.track.WARROOM_IMM`.

Logistics (off where a force has no ``supply_base``): the speed is multiplied by
``min(1, supply_free_km / d)`` where ``d`` is the distance along the route from the base's
nearest point: full speed for the first ``supply_free_km`` (300 km), half speed at twice that.

What-if overrides (``--set KEY=VALUE``, repeatable):

- ``FORCE.p_obey=P`` every halt order of FORCE; ``FORCE.p_obey.LINE=P`` one of them;
- ``FORCE.advancing_kmpd=V``, ``FORCE.pursuit_kmpd=V`` the median speeds (replace learned);
- ``FORCE.supply_free_km=D`` the logistics range (``inf`` switches logistics off);
- ``OBSTACLE.delay_p50=H``, ``OBSTACLE.delay_p90=H`` an obstacle's crossing delay (hours);
- ``*.KEY=VALUE`` the same for every force.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ForecastParams:
    samples: int = 2000
    horizon_days: float = 30.0
    seed: int = 0
    advancing_kmpd: float = 25.0
    advancing_sigma: float = 0.5
    pursuit_kmpd: float = 50.0
    pursuit_sigma: float = 0.4
    pace_sigma: float = 1.0   # how much forces differ in their own pace (log scale)
    supply_free_km: float = 300.0
    max_switches: int = 200  # safety cap on regime switches per sample (rates make 20 rare)
    overrides: dict[str, float] = field(default_factory=dict)

    def force_value(self, force: str, key: str, default: float) -> float:
        """A per-force value after ``--set`` overrides (``FORCE.key`` beats ``*.key``)."""
        return self.overrides.get(f"{force}.{key}", self.overrides.get(f"*.{key}", default))


class OverrideError(ValueError):
    """A ``--set`` that names no known parameter."""


FORCE_KEYS = ("p_obey", "advancing_kmpd", "pursuit_kmpd", "supply_free_km")
OBSTACLE_KEYS = ("delay_p50", "delay_p90")


def parse_overrides(items: list[str], forces: set[str], obstacles: set[str],
                    lines: set[str]) -> dict[str, float]:
    """Parse ``KEY=VALUE`` strings; OverrideError names what is wrong."""
    out: dict[str, float] = {}
    for item in items:
        if "=" not in item:
            raise OverrideError(f"--set {item!r}: expected KEY=VALUE, e.g. us3.p_obey=0.1")
        key, raw = item.split("=", 1)
        try:
            value = float(raw)
        except ValueError:
            raise OverrideError(f"--set {item!r}: {raw!r} is not a number") from None
        parts = key.strip().split(".")
        who, what = parts[0], ".".join(parts[1:])
        if who in obstacles and what in OBSTACLE_KEYS:
            if not (value > 0 and math.isfinite(value)):
                raise OverrideError(f"--set {item!r}: a delay is a positive number of hours")
        elif who in forces or who == "*":
            base = parts[1] if len(parts) > 1 else ""
            if base not in FORCE_KEYS or (len(parts) == 3 and (base != "p_obey"
                                                               or parts[2] not in lines)) \
                    or len(parts) > 3:
                raise OverrideError(
                    f"--set {item!r}: unknown parameter {what!r}; expected one of "
                    f"{', '.join(FORCE_KEYS)} or p_obey.LINE (lines: {', '.join(sorted(lines))})")
            if base == "p_obey" and not 0 <= value <= 1:
                raise OverrideError(f"--set {item!r}: p_obey is a probability in [0, 1]")
        else:
            raise OverrideError(
                f"--set {item!r}: {who!r} is not a force or obstacle; expected one of "
                f"{', '.join(sorted(forces | obstacles))} (or * for every force)")
        out[key.strip()] = value
    return out
