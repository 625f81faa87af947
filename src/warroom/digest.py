"""Content digests of reports: one (:func:`content_digest`) or a whole batch at once
(:func:`content_digests`, the same digests built with C-level loops).

A report's content is every stored field but ``received_at`` (hearing the same report again
later is not new content), in ``store.ROW_FIELDS`` order. Its digest is BLAKE2b-128 of the
content tuple's ``repr``, in hex. The store settles repeated keys inside a batch by it (a
total order on content that does not depend on row order) and archives carry it as
provenance. The store does not keep digests: it compares stored content field by field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any


def content_digest(content: tuple[Any, ...]) -> str:
    """The digest of a report's content (every stored field but ``received_at``): BLAKE2b-128
    of the tuple's ``repr``, hex. Archives carry digests of this definition: never change it."""
    return hashlib.blake2b(repr(content).encode("utf-8", "surrogatepass"),
                           digest_size=16).hexdigest()


def _pieces(values: Sequence[Any], n: int) -> tuple[str, Sequence[str] | None, bool]:
    """How one column appears in the rows' reprs: ``(constant, None, _)`` when it is the same
    for every row, else ``("", pieces, quoted)`` with the text of each row (to be wrapped in
    quotes when ``quoted``)."""
    first = values[0]
    if first is None and values.count(None) == n:
        return "None", None, False
    if isinstance(first, str):
        try:
            joined = "".join(values)  # (and a TypeError if any is not a string)
        except TypeError:
            joined = "'"
        # repr of a string without quotes, backslashes or unprintable characters is the
        # string in single quotes
        if "'" not in joined and "\\" not in joined and joined.isprintable():
            if (len(joined) == n * len(first) and values[-1] == first
                    and values.count(first) == n):
                return f"'{first}'", None, False
            return "", values, True
    return "", list(map(repr, values)), False


def content_digests(columns: Sequence[Sequence[Any]], n: int) -> list[str]:
    """:func:`content_digest` of ``n`` rows given as content columns (one sequence per field of
    the content tuple), built for the whole batch at once: every row's repr is assembled by
    C-level slice assignment and one join, then hashed."""
    if n == 0:
        return []
    statics: list[str] = []
    pieces: list[Sequence[str]] = []
    cur = "("
    for j, col in enumerate(columns):
        if j:
            cur += ", "
        const, vals, quoted = _pieces(col, n)
        if vals is None:
            cur += const
            continue
        statics.append(cur + ("'" if quoted else ""))
        pieces.append(vals)
        cur = "'" if quoted else ""
    statics.append(cur + ")\n")  # a repr never holds a raw newline: rows split on it
    template: list[str | None] = [statics[0]]
    for s in statics[1:]:
        template += [None, s]
    stride = len(template)
    flat = template * n
    for k, vals in enumerate(pieces):
        flat[2 * k + 1::stride] = vals
    reprs = "".join(flat).encode("utf-8", "surrogatepass").split(b"\n")  # type: ignore[arg-type]
    reprs.pop()
    # (a comprehension, not map over a partial: that merges its keywords into a dict per row)
    blake2b = hashlib.blake2b
    return [blake2b(r, digest_size=16).hexdigest() for r in reprs]
