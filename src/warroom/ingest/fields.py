"""The report fields every input format maps to (the columns of reports.csv)."""

REQUIRED = ("report_id", "source", "force", "observed_at")
OPTIONAL = ("received_at", "lat", "lon", "place", "uncertainty_km", "grade", "event", "target",
            "text", "sources")
KNOWN = frozenset(REQUIRED + OPTIONAL)
NUMERIC = frozenset({"lat", "lon", "uncertainty_km"})
# Other spellings of a column users commonly send.
ALIASES = {"latitude": "lat", "longitude": "lon", "lng": "lon", "long": "lon", "id": "report_id"}
