"""Ingest: bytes in any supported format -> validated reports in the store.

Each input format is one module exposing ``FORMAT`` (see :class:`warroom.ingest.base.
InputFormat`), registered in ``FORMATS``; :func:`detect` picks one from the content (and, as a
tie-breaker, the file name).
"""

from __future__ import annotations

from warroom.ingest import cot_format, csv_format, geojson_format, ndjson_format
from warroom.ingest.base import InputFormat

FORMATS: dict[str, InputFormat] = {}


def register(fmt: InputFormat) -> InputFormat:
    """Add an input format to the registry (a new format is a new module + this call)."""
    FORMATS[fmt.name] = fmt
    return fmt


for _m in (csv_format, ndjson_format, geojson_format, cot_format):
    register(_m.FORMAT)


def detect(head: bytes, filename: str | None = None) -> InputFormat:
    """The registered format that rates these first bytes highest."""
    return max(FORMATS.values(), key=lambda f: f.sniff(head, filename))
