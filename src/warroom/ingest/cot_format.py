"""Cursor-on-Target (CoT) XML events, as TAK clients send them, as an input format.

A CoT stream is a run of ``<event>`` documents back to back with no enclosing root, each perhaps
behind its own ``<?xml ...?>`` declaration, with any whitespace between them::

    <?xml version="1.0"?><event version="2.0" uid="ANDROID-1" type="a-f-G-U-C" how="m-g"
      time="2026-05-01T12:00:00Z" start="..." stale="..."><point lat="52.1" lon="11.6"
      hae="0" ce="50.0" le="9999999"/><detail><contact callsign="amundsen"/></detail></event>

The stream is cut after each ``</event>`` (:class:`EventSplitter`, incremental: it is fed chunks
and never holds more than ``max_event`` bytes of one event), then each event is parsed on its own
with ``defusedxml``, a DOCTYPE forbidden: a billion-laughs or external-entity event is refused
unexpanded and quarantined, and the events after it still parse. :class:`CotDecoder` joins the
two for a socket (``warroom.cot_listener``); :class:`CotFormat` reads a file through the same
decoder, so a file and a socket give the same records.

Mapping (:func:`parse_event`) of one event to report fields:

=====================================  =========================================================
CoT                                    report field
=====================================  =========================================================
``@uid``                               ``report_id`` (``uid@time`` with ``per_event_ids``)
(constructor)                          ``source``: ``"cot"`` unless configured
``@time``, else ``@start``             ``observed_at`` (the ISO text as sent; CoT uses ``Z``)
``point@lat``, ``point@lon``           ``lat``, ``lon``
``point@ce`` (metres)                  ``uncertainty_km`` = ce / 1000 when 0 < ce < 9999999;
                                       else omitted (unknown: the grade's default applies)
``uid_forces[uid]``, else              ``force``
``detail/contact@callsign``
``@type``, ``@how``                    ``text`` ``"CoT a-f-G-U-C how=m-g"``, and the extra
                                       keys ``cot_type``, ``cot_how``
``@how``                               ``grade`` (table below)
=====================================  =========================================================

``received_at`` is not set (the receiving server sets it); ``event`` is left to its default,
``position``. Events whose type starts with ``t-x-d-d`` (ping) or ``t-x-c-t`` (ping/pong) are
dropped: no record at all.

Grades by ``how`` (:data:`HOW_GRADES`; a ``how`` matches a key equal to it or a prefix of it
ending at a ``-``, so ``m-g`` also covers ``m-g-d``):

========  ==========================================  =====
how       meaning                                     grade
========  ==========================================  =====
``m-g``   machine-generated, from GPS                 ``B2``
other     human-entered, estimated, fused, unknown    ``F6``
========  ==========================================  =====

A record's line is the 1-based line where its raw bytes begin (the event's XML declaration when
it has one on an earlier line); its raw bytes are the event exactly as sent, from its first
non-blank byte through ``</event>``.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from typing import Any

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden
from defusedxml.ElementTree import fromstring

from warroom.ingest.base import CountingReader, Record

MAX_EVENT = 1 << 20
"""Bytes of one event (from its first byte through ``</event>``) beyond which it is refused."""
CHUNK = 1 << 16
UNKNOWN_CE = 9_999_999.0
"""The CoT "unknown" value of ``ce``/``le``; this or more means no stated uncertainty."""
IGNORED_TYPES = ("t-x-d-d", "t-x-c-t")
"""Type prefixes of events that are not reports (pings, pongs): they yield no record."""
HOW_GRADES: dict[str, str] = {"m-g": "B2"}
"""Admiralty grade of an event by its ``how`` (see the module docstring); others get F6."""
DEFAULT_GRADE = "F6"

_END = re.compile(rb"</event\s*>")
_START = re.compile(rb"<event[\s>/]")
_WS = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"
_DECL = re.compile(rb"<\?xml[^>]*\?>")


class CotError(ValueError):
    """A CoT event that cannot be a report; the message names the field and what was wrong."""


def grade_of(how: str | None) -> str:
    """The Admiralty grade of a CoT ``how`` (:data:`HOW_GRADES`, else ``F6``)."""
    if how:
        for key, grade in HOW_GRADES.items():
            if how == key or how.startswith(key + "-"):
                return grade
    return DEFAULT_GRADE


def is_ignored(cot_type: str | None) -> bool:
    """True for event types that are not reports (pings): :data:`IGNORED_TYPES`."""
    return cot_type is not None and cot_type.startswith(IGNORED_TYPES)


def parse_event(data: bytes, *, source: str = "cot", uid_forces: Mapping[str, str] | None = None,
                per_event_ids: bool = False) -> dict[str, Any] | None:
    """Report fields of one CoT event (its bytes, optionally behind an XML declaration), or None
    for an event that is not a report (a ping).

    ``report_id`` is the uid. A TAK device keeps its uid for every position it sends, so the
    store (one report per source and report_id) keeps its first position and quarantines the
    later ones as conflicts; ``per_event_ids`` makes ``report_id`` ``uid@time`` instead (the uid
    kept as extra key ``cot_uid``): each position a report, a resent event a duplicate.

    Raises :class:`CotError` naming every problem: XML that is not well formed, any DOCTYPE
    (entity and external-reference tricks are refused, never expanded), a missing ``uid``,
    ``time``/``start`` or ``point``, or a ``point`` attribute that is not a number. Whether the
    force, time and coordinates make a valid report is the validator's business.
    """
    try:
        root = fromstring(data.removeprefix(_BOM), forbid_dtd=True, forbid_entities=True,
                          forbid_external=True)
    except DTDForbidden:
        raise CotError("CoT event: has a DOCTYPE; refused unexpanded (DTDs, entity "
                       "declarations and external references are not allowed in CoT)") from None
    except EntitiesForbidden:
        raise CotError("CoT event: declares XML entities; refused unexpanded") from None
    except DefusedXmlException as e:
        raise CotError(f"CoT event: refused unexpanded ({type(e).__name__}: external "
                       "references are not allowed)") from None
    except ET.ParseError as e:
        raise CotError(f"CoT event: not well-formed XML ({e})") from None
    if root.tag != "event":
        raise CotError(f"CoT event: the root element is <{root.tag}>; expected <event>")
    a = root.attrib
    cot_type = (a.get("type") or "").strip() or None
    if is_ignored(cot_type):
        return None
    errs: list[str] = []
    uid = (a.get("uid") or "").strip()
    if not uid:
        errs.append("uid: missing; expected the event's uid attribute")
    when = (a.get("time") or "").strip() or (a.get("start") or "").strip()
    if not when:
        errs.append("time: missing; expected a time (or start) attribute, ISO 8601 in UTC")
    fields: dict[str, Any] = {"report_id": uid, "source": source, "observed_at": when}
    point = root.find("point")
    if point is None:
        errs.append("point: missing; expected <point lat=\"...\" lon=\"...\"/>")
    else:
        for name in ("lat", "lon"):
            v = point.get(name)
            if v is None or not v.strip():
                errs.append(f"point@{name}: missing; expected decimal degrees")
                continue
            try:
                fields[name] = float(v)
            except ValueError:
                errs.append(f"point@{name}: {v!r} is not a number; expected decimal degrees")
        ce_text = point.get("ce")
        if ce_text is not None and ce_text.strip():
            try:
                ce = float(ce_text)
            except ValueError:
                errs.append(f"point@ce: {ce_text!r} is not a number; expected the circular "
                            f"error in metres ({UNKNOWN_CE:.0f} = unknown)")
            else:
                if math.isfinite(ce) and 0.0 < ce < UNKNOWN_CE:
                    fields["uncertainty_km"] = ce / 1000.0
    if errs:
        raise CotError("; ".join(errs))
    if per_event_ids:
        fields["report_id"] = f"{uid}@{when}"
        fields["cot_uid"] = uid
    force = uid_forces.get(uid) if uid_forces else None
    if force is None:
        contact = root.find("detail/contact")
        callsign = contact.get("callsign") if contact is not None else None
        force = callsign.strip() if callsign and callsign.strip() else None
    if force is not None:
        fields["force"] = force
    how = (a.get("how") or "").strip() or None
    fields["grade"] = grade_of(how)
    fields["text"] = f"CoT {cot_type or '(no type)'}" + (f" how={how}" if how else "")
    if cot_type:
        fields["cot_type"] = cot_type
    if how:
        fields["cot_how"] = how
    return fields


Piece = tuple[int, bytes, str | None]
"""``(line, raw, error)``: an event's raw bytes to parse (error None), or bytes that cannot be
an event with the reason."""


class EventSplitter:
    """Cuts a CoT byte stream into events, incrementally: :meth:`feed` chunks as they come,
    :meth:`close` at the end.

    An event ends at ``</event>``. Bytes before an event's ``<event`` that hold the start of an
    earlier event that never ended (a truncated event) are split off and reported, so the next
    good event still parses. Memory is bounded: more than ``max_event`` bytes without an end tag
    are reported as an oversized event and dropped, and so is the rest of it, through its
    ``</event>``.
    """

    def __init__(self, max_event: int = MAX_EVENT) -> None:
        self.max_event = max_event
        self._buf = bytearray()
        self._scan = 0  # where the search for the end tag resumes
        self._line = 1  # line number of _buf[0]
        self._oversized = False  # inside an event already reported as too long

    def feed(self, data: bytes) -> list[Piece]:
        """The pieces completed by ``data``."""
        buf = self._buf
        buf += data
        out: list[Piece] = []
        start = 0
        while True:
            m = _END.search(buf, max(start, self._scan))
            if m is None:
                break
            chunk = bytes(buf[start:m.end()])
            start = m.end()
            self._scan = start
            if self._oversized:
                self._oversized = False
                self._emit(out, chunk, f"the rest of an event longer than {self.max_event} "
                                       "bytes (through its </event>); dropped")
            else:
                self._emit_event(out, chunk)
        # A partial end tag may sit at the end: resume the search at the last '<'.
        last = buf.rfind(b"<", max(start, self._scan))
        self._scan = last if last >= 0 else len(buf)
        if len(buf) - start > self.max_event:
            chunk = bytes(buf[start:])
            start = len(buf)
            self._scan = start
            what = "the rest of an event" if self._oversized else "an event"
            self._oversized = True
            self._emit(out, chunk, f"{what} longer than {self.max_event} bytes without "
                                   "</event>; dropped (the stream is read on after its end tag)")
        del buf[:start]
        self._scan -= start
        return out

    def close(self) -> list[Piece]:
        """The pieces left at the end of the stream: an event that never ended."""
        chunk = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        out: list[Piece] = []
        if self._oversized:
            self._emit(out, chunk, f"the rest of an event longer than {self.max_event} bytes; "
                                   "the input ended before its </event>")
        else:
            self._emit(out, chunk, "an incomplete event: the input ended before </event>",
                       trim=True)
        self._oversized = False
        return out

    def _emit_event(self, out: list[Piece], chunk: bytes) -> None:
        cut = _resync(chunk)
        if cut:
            self._emit(out, chunk[:cut], "an incomplete event: a new event began before its "
                                         "</event>", trim=True)
            chunk = chunk[cut:]
        self._emit(out, chunk, None)

    def _emit(self, out: list[Piece], chunk: bytes, error: str | None,
              trim: bool = False) -> None:
        """Append a piece: ``chunk`` without its leading blanks (and trailing ones: ``trim``)."""
        body = chunk.lstrip(_WS)
        lead = len(chunk) - len(body)
        line = self._line + chunk.count(b"\n", 0, lead)
        self._line += chunk.count(b"\n")
        if body.strip(_WS):
            out.append((line, body.rstrip(_WS) if trim else body, error))


def _resync(chunk: bytes) -> int:
    """Where the last event of ``chunk`` begins (with its XML declaration and DOCTYPE) when an
    earlier ``<event`` in it never ended; 0 when the chunk holds one event."""
    starts = [m.start() for m in _START.finditer(chunk)]
    if len(starts) < 2:
        return 0
    prev, cut = starts[-2], starts[-1]
    between = chunk[prev:cut]
    for marker in (b"<!DOCTYPE", b"<?xml"):
        i = between.rfind(marker)
        if i >= 0:
            cut = min(cut, prev + i)
    return cut


class CotDecoder:
    """Bytes in, :class:`Record` s out, incrementally (one per connection of a listener).

    Each event goes through :meth:`CotFormat.record`: the same mapping as a file.
    """

    def __init__(self, fmt: CotFormat | None = None, max_event: int = MAX_EVENT) -> None:
        self.fmt = fmt if fmt is not None else FORMAT
        self.splitter = EventSplitter(max_event)

    def feed(self, data: bytes) -> list[Record]:
        """Records of the events that ``data`` completes (pings are left out)."""
        return self._records(self.splitter.feed(data))

    def close(self) -> list[Record]:
        """Records for what is left at the end of the stream (an incomplete event)."""
        return self._records(self.splitter.close())

    def _records(self, pieces: list[Piece]) -> list[Record]:
        out = []
        for line, raw, error in pieces:
            rec = self.fmt.record(line, raw, error)
            if rec is not None:
                out.append(rec)
        return out


class CotFormat:
    """CoT XML events as an input format; ``source`` names the sender of every report,
    ``uid_forces`` maps event uids to force ids (checked before the contact callsign),
    ``per_event_ids`` makes report ids ``uid@time`` (see :func:`parse_event`) and ``max_event``
    bounds one event's bytes."""

    name = "cot"

    def __init__(self, source: str = "cot", uid_forces: Mapping[str, str] | None = None,
                 max_event: int = MAX_EVENT, per_event_ids: bool = False) -> None:
        self.source = source
        self.uid_forces = dict(uid_forces) if uid_forces else {}
        self.max_event = max_event
        self.per_event_ids = per_event_ids

    def sniff(self, head: bytes, filename: str | None) -> int:
        """95 when the content starts (after a BOM, blanks and an XML declaration) with
        ``<event``; else 0. The file name plays no part."""
        h = head.removeprefix(_BOM).lstrip(_WS)
        m = _DECL.match(h)
        if m:
            h = h[m.end():].lstrip(_WS)
        return 95 if _START.match(h) or h == b"<event" else 0

    def record(self, line: int, raw: bytes, error: str | None = None) -> Record | None:
        """The record of one event's raw bytes (or of bytes already known bad: ``error``);
        None for an event that is not a report."""
        if error is not None:
            return Record(line, raw, None, error)
        try:
            fields = parse_event(raw, source=self.source, uid_forces=self.uid_forces,
                                 per_event_ids=self.per_event_ids)
        except CotError as e:
            return Record(line, raw, None, str(e))
        return None if fields is None else Record(line, raw, fields)

    def decoder(self) -> CotDecoder:
        """An incremental decoder with this format's mapping."""
        return CotDecoder(self, self.max_event)

    def records(self, stream: CountingReader, origin: str) -> Iterator[Record]:
        """Records of a stream, read in chunks of 64 KiB."""
        dec = self.decoder()
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            yield from dec.feed(chunk)
        yield from dec.close()


FORMAT = CotFormat()
