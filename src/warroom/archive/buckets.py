"""Which partition a force belongs to (Parquet archives, engine partitions)."""

from __future__ import annotations

import zlib

BUCKETS = 64


def bucket_of(force: str) -> int:
    """The partition of a force: ``crc32(force id, UTF-8) % 64``."""
    return zlib.crc32(force.encode("utf-8", "surrogatepass")) % BUCKETS
