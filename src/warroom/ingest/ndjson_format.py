"""NDJSON reports: one JSON object per line with the report fields; a line may also be a GeoJSON
Point Feature (GeoJSON text sequences, RFC 8142: a leading RS character is accepted)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from warroom.ingest.base import CountingReader, Record, text_lines


def flatten_feature(obj: dict[str, Any]) -> dict[str, Any]:
    """Report fields of a GeoJSON Point Feature (properties + coordinates); raises ValueError."""
    geom = obj.get("geometry") or {}
    props = dict(obj.get("properties") or {})
    if geom:
        if geom.get("type") != "Point":
            raise ValueError(f"geometry is a {geom.get('type')}; expected a Point")
        c = geom.get("coordinates") or []
        if len(c) < 2:
            raise ValueError("Point coordinates need [lon, lat]")
        props.setdefault("lon", c[0])
        props.setdefault("lat", c[1])
    if "report_id" not in props and obj.get("id") is not None:
        props["report_id"] = obj["id"]
    return props


def as_fields(obj: Any) -> dict[str, Any]:
    """Report fields of a JSON value (an object, or a Feature); raises ValueError."""
    if not isinstance(obj, dict):
        raise ValueError(f"a JSON {type(obj).__name__}; expected an object with report fields")
    if obj.get("type") == "Feature":
        return flatten_feature(obj)
    return obj


class NdjsonFormat:
    name = "ndjson"

    def sniff(self, head: bytes, filename: str | None) -> int:
        first = head.lstrip(b"\xef\xbb\xbf\x1e \t\r\n").split(b"\n", 1)[0].strip()
        if not first.startswith(b"{"):
            return 0
        try:
            obj = json.loads(first)
        except ValueError:
            return 5  # an object spanning lines: a whole JSON document, not NDJSON
        if isinstance(obj, dict) and obj.get("type") == "FeatureCollection":
            return 0
        return 90

    def records(self, stream: CountingReader, origin: str) -> Iterator[Record]:
        for n, raw, text, err in text_lines(stream):
            if err is not None:
                yield Record(n, raw, None, err)
                continue
            t = text.strip().lstrip("\x1e")
            if not t:
                continue
            try:
                yield Record(n, raw, as_fields(json.loads(t)))
            except ValueError as e:
                yield Record(n, raw, None, f"not a JSON report object ({e})")


FORMAT = NdjsonFormat()
