"""GeoJSON reports: a FeatureCollection of Point features whose properties are report fields.

Streamed: features are decoded one at a time from the ``features`` array, so a file of any size
is read in bounded memory. A syntax error stops the read; everything after it is quarantined
with that error, everything before it has landed.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator

from warroom.ingest.base import CountingReader, Record
from warroom.ingest.ndjson_format import flatten_feature

_CHUNK = 1 << 16
_MAX_FEATURE = 64 * 1024 * 1024
_FEATURES = re.compile(r'"features"\s*:\s*\[')
_DECODER = json.JSONDecoder()


class GeojsonFormat:
    name = "geojson"

    def sniff(self, head: bytes, filename: str | None) -> int:
        h = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not h.startswith(b"{"):
            return 0
        if b'"FeatureCollection"' in h or b'"features"' in h:
            return 95
        return 40 if filename and filename.lower().endswith((".geojson", ".json")) else 20

    def records(self, stream: CountingReader, origin: str) -> Iterator[Record]:
        buf = ""
        line = 1
        eof = False
        decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="surrogateescape")

        def more() -> bool:
            nonlocal buf, eof
            b = stream.read(_CHUNK)
            if not b:
                eof = True
                buf += decoder.decode(b"", final=True)
                return False
            buf += decoder.decode(b)
            return True

        while True:  # find the start of the features array
            m = _FEATURES.search(buf)
            if m:
                line += buf.count("\n", 0, m.end())
                buf = buf[m.end():]
                break
            if not more():
                raw = buf.encode("utf-8", errors="surrogateescape")
                yield Record(1, raw, None, "no \"features\" array; expected a GeoJSON "
                             "FeatureCollection of Point features")
                return
        pos = 0
        while True:
            while True:  # skip separators
                while pos < len(buf) and buf[pos] in " \t\r\n,":
                    if buf[pos] == "\n":
                        line += 1
                    pos += 1
                if pos < len(buf) or not more():
                    break
            if pos >= len(buf):
                yield Record(line, b"", None, "the file ends inside the features array")
                return
            if buf[pos] == "]":
                return
            try:
                obj, end = _DECODER.raw_decode(buf, pos)
            except json.JSONDecodeError as e:
                if not eof and len(buf) - pos < _MAX_FEATURE and more():
                    continue
                rest = buf[pos:].encode("utf-8", errors="surrogateescape")
                rest += stream.read()
                yield Record(line, rest, None, f"invalid JSON ({e.msg}); the rest of the file "
                             "from here was not read and is kept whole")
                return
            raw = buf[pos:end].encode("utf-8", errors="surrogateescape")
            start_line = line
            line += buf.count("\n", pos, end)
            pos = end
            if pos > _CHUNK:
                buf, pos = buf[pos:], 0
            try:
                if not isinstance(obj, dict) or obj.get("type") != "Feature":
                    raise ValueError("expected a Feature")
                yield Record(start_line, raw, flatten_feature(obj))
            except ValueError as e:
                yield Record(start_line, raw, None, f"not a report feature ({e})")


FORMAT = GeojsonFormat()
