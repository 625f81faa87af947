"""Times: UTC inside, ISO 8601 with a zone at the edges.

Inside warroom a time is an integer count of seconds since 1970-01-01T00:00:00Z (negative before
1970: the built-in scenario is in 1945). Sub-second parts are rounded away; field reports are not
that precise.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECONDS_PER_DAY = 86_400


class TimeFormatError(ValueError):
    """A text that is not an ISO 8601 time with a zone."""


def parse_time(text: str) -> int:
    """Parse an ISO 8601 time that carries a zone (``Z`` or ``+02:00``) into UTC epoch seconds.

    A time without a zone is refused: guessing a zone would silently shift a report by hours.
    """
    raw = text.strip()
    if not raw:
        raise TimeFormatError("empty")
    if raw.endswith(("z", "Z")) and "T" not in raw.upper():
        raise TimeFormatError(f"{text!r} is not an ISO 8601 time with a zone")
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise TimeFormatError(f"{text!r} is not an ISO 8601 time with a zone") from None
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise TimeFormatError(f"{text!r} has no zone (add Z for UTC or an offset like +02:00)")
    return round((dt - _EPOCH).total_seconds())


def to_datetime(epoch_s: int | float) -> datetime:
    """UTC datetime of epoch seconds."""
    return _EPOCH + timedelta(seconds=float(epoch_s))


def to_iso(epoch_s: int | float | None) -> str | None:
    """ISO 8601 UTC text (``1945-04-12T12:00:00Z``) of epoch seconds; None stays None."""
    if epoch_s is None:
        return None
    return to_datetime(round(float(epoch_s))).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_age(seconds: float) -> str:
    """A short human age: ``5h``, ``2d 3h``, ``40m``."""
    seconds = max(0.0, float(seconds))
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    hours = int(seconds // 3600)
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d {hours % 24}h"
