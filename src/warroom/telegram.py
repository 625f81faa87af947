"""Signed telegrams: batches of field reports from a station that holds an Ed25519 key.

Protocol
========

A field station holds an Ed25519 private key; the war room holds its public key in the
:class:`~warroom.keystore.KeyStore` under the station's name (its *source*). A telegram is one
JSON object (UTF-8 text) with exactly these members::

    {"source": str, "seq": int, "sent_at": str, "payload": list | str, "signature": str}

``source``
    The station's name as registered in the key store. It is also forced onto every report the
    telegram carries (a report's own ``source`` field, if any, is overwritten).
``seq``
    An integer, 0 <= seq < 2**63 (JSON booleans are not integers here). Telegrams of a source
    are accepted in strictly increasing ``seq`` order: a telegram is accepted only if its
    ``seq`` is greater than the ``seq`` of the last telegram accepted from that source. Gaps
    are allowed (a lost telegram does not block later ones); a replay or an older telegram is
    refused.
``sent_at``
    When the station sent it: ISO 8601 text with a zone (:func:`make` writes UTC with ``Z``,
    e.g. ``1911-12-14T15:00:00Z``). It must lie within ``now +- max_skew_s`` (default 300 s).
``payload``
    Either a JSON list of report objects (the fields of an NDJSON report: ``report_id``,
    ``force``, ``observed_at``, ``lat``, ``lon``, ``place``, ... as in reports.csv; a GeoJSON
    Point Feature is read as in NDJSON), or a string holding CSV or NDJSON text, parsed with the
    project's own ingest parsers (``warroom.ingest``; the format is detected from the content,
    and any other detected format, e.g. a GeoJSON FeatureCollection, is refused). CSV text is a
    reports.csv file as ``warroom ingest`` reads it, so its header must name a ``source`` column
    (its values may be empty: they are replaced). An empty list is a valid telegram with no
    reports (it still advances ``seq``).
``signature``
    Standard base64 (with padding, canonical encoding) of the 64-byte Ed25519 signature of the
    telegram's *canonical bytes*::

        json.dumps({k: v for k, v in t.items() if k != "signature"}, sort_keys=True,
                   separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    (computed with ``allow_nan=False``: NaN and infinities are not JSON and are refused). The
    verifier parses the received JSON and recomputes these bytes from the parsed values, so the
    key order, whitespace and escaping of the JSON as sent do not matter; what is signed is the
    values. Signers in other languages must produce Python's bytes for those values: in
    particular a float is written as Python's ``repr`` (``1.0``, ``1e+16``), an integer without
    a decimal point, and non-ASCII text as raw UTF-8.

Verification (:func:`verify`) raises :class:`TelegramError` with an HTTP-like ``status`` and a
``reason``; the checks run in this order, so a forgery is reported as such whatever else is
wrong with it:

1. **400** malformed: not UTF-8 JSON, duplicate member names, NaN/Infinity, not an object,
   missing or unknown members, a member of the wrong type, ``seq`` out of range, ``sent_at`` not
   ISO 8601 with a zone, ``signature`` not canonical base64 of 64 bytes.
2. **401** unknown ``source`` (no key registered).
3. **401** bad signature (made by another key, or any signed value changed since).
4. **403** the source's key is revoked.
5. **422** ``sent_at`` outside ``now +- max_skew_s``: stale, or from the future.
6. **409** replayed or out-of-order ``seq`` (not greater than the last accepted ``seq``).
7. **400** a payload that does not parse: a list item that is not a report object, a CSV/NDJSON
   string with a line that cannot be parsed, or a payload string of another format.
8. **403** a report about a force the source may not report on (the key's allowed-forces list;
   None = any force). A report of a restricted source must name an allowed force: a missing or
   non-text ``force`` is refused too. Force ids are compared after stripping spaces, as the
   validator does.

Acceptance (:func:`accept`) runs all of this inside one ``BEGIN IMMEDIATE`` transaction of the
store, so concurrent writers are serialised and the ``seq`` read in step 6 cannot change before
the commit. In that transaction it then

* lands the reports through the normal validation and store path (``Validator.row`` then
  ``Store.write_batch``, as ``ingest_stream`` does; NDJSON detection is skipped because the
  reports are already parsed): ``source`` forced to the telegram's, ``received_at`` set to
  ``now`` for each report without one. A report that fails validation (say an unknown place)
  goes to quarantine as ``kind="invalid"`` exactly as in a file ingest, and the telegram is
  still accepted: it is authentic, only some of its content is bad. Origin of the reports is
  ``telegram:<source>:<seq>``; the quarantine ``line`` of a bad report is its 1-based index in
  the payload;
* advances the source's ``last_seq`` to ``seq`` (compare-and-set), and
* records the telegram in the ``telegrams`` table (digest and raw bytes kept for audit).

All three commit together or not at all. A rejected telegram stores nothing but one quarantine
row (``kind="telegram"``, ``error="<status> <reason>"``, ``raw`` = the telegram bytes as
received, ``origin="telegram"``, ``source`` = the *claimed* source if it is text; quarantine
keeps the same rejected bytes with the same error once), written after the transaction is
rolled back; then the :class:`TelegramError` is raised again.

``now`` is always given by the caller (UTC epoch seconds), which keeps replays and tests exact.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import io
import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from warroom.ingest import detect
from warroom.ingest.base import CountingReader
from warroom.ingest.ndjson_format import as_fields
from warroom.ingest.pipeline import IngestResult
from warroom.ingest.validate import Validator
from warroom.keystore import KeyRecord, KeyStore, public_key_object
from warroom.store import QuarantineRow, Store
from warroom.timeutil import TimeFormatError, parse_time, to_iso

FIELDS = frozenset({"source", "seq", "sent_at", "payload", "signature"})
SIGNATURE_BYTES = 64
MAX_SEQ = 2**63 - 1
DEFAULT_MAX_SKEW_S = 300
PAYLOAD_FORMATS = frozenset({"csv", "ndjson"})
QUARANTINE_KIND = "telegram"

Telegram = Mapping[str, Any] | bytes | bytearray | str


class TelegramError(Exception):
    """A refused telegram: ``status`` (400, 401, 403, 409 or 422) and a ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Verified:
    """An authentic, fresh, in-order telegram: its ``reports`` are the payload as report field
    dicts, each with ``source`` forced to the telegram's (``received_at`` left as sent)."""

    source: str
    seq: int
    sent_at: int
    reports: list[dict[str, Any]] = field(repr=False)
    digest: str  # SHA-256 hex of the canonical (signed) bytes

    @property
    def payload(self) -> list[dict[str, Any]]:
        """The payload as a list of report dicts (same as ``reports``)."""
        return self.reports


# -- signing -------------------------------------------------------------------------------------
def canonical_bytes(t: Mapping[str, Any]) -> bytes:
    """The signed bytes of a telegram: every member except ``signature``, as sorted compact JSON
    in UTF-8. Raises ValueError/TypeError for values that are not JSON."""
    content = {k: v for k, v in t.items() if k != "signature"}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def load_private_key(key: Ed25519PrivateKey | bytes | str) -> Ed25519PrivateKey:
    """An Ed25519 private key from a key object or its PEM (PKCS#8, unencrypted)."""
    if isinstance(key, Ed25519PrivateKey):
        return key
    pem = key.encode("ascii") if isinstance(key, str) else key
    obj = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(obj, Ed25519PrivateKey):
        raise TypeError(f"a {type(obj).__name__}; expected an Ed25519 private key")
    return obj


def sign(telegram: Mapping[str, Any], private_key: Ed25519PrivateKey | bytes | str
         ) -> dict[str, Any]:
    """A (deep) copy of ``telegram`` with ``signature`` set to the base64 Ed25519 signature of
    its canonical bytes (any ``signature`` already there is replaced)."""
    key = load_private_key(private_key)
    out = copy.deepcopy({k: v for k, v in telegram.items() if k != "signature"})
    out["signature"] = base64.b64encode(key.sign(canonical_bytes(out))).decode("ascii")
    return out


def make(source: str, seq: int, payload: list[dict[str, Any]] | str,
         key: Ed25519PrivateKey | bytes | str, sent_at: str | int | None = None
         ) -> dict[str, Any]:
    """A signed telegram. ``sent_at``: ISO text, epoch seconds, or None for the current time.
    Raises ValueError for a telegram that :func:`verify` would refuse as malformed."""
    if sent_at is None:
        sent_at = int(time.time())
    sent = to_iso(sent_at) if isinstance(sent_at, int) else sent_at
    t = {"source": source, "seq": seq, "sent_at": sent, "payload": payload}
    try:
        _check_shape({**t, "signature": base64.b64encode(bytes(SIGNATURE_BYTES)).decode()})
        canonical_bytes(t)
    except TelegramError as e:
        raise ValueError(e.reason) from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"payload is not JSON ({e})") from None
    return sign(t, key)


# -- verifying -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Checked:
    """A telegram whose signature was checked ahead of its landing (:func:`precheck`): its
    members as parsed, its well-formed head ``(source, seq, sent_at, signature)``, its signed
    (canonical) bytes, and the public key those bytes verified under."""

    obj: dict[str, Any] = field(repr=False)
    head: tuple[str, int, int, bytes]
    signed: bytes = field(repr=False)
    public_key: bytes


def precheck(t: Telegram, public_key_of: Callable[[str], bytes | None]) -> Checked | None:
    """Parse ``t`` and check its signature against the key ``public_key_of(source)`` gives (a
    hint, e.g. the key last read for that source): the :class:`Checked` telegram, or None when
    that does not settle it (malformed, no key to try, a bad signature), and :func:`verify`
    does all of it, saying why. Reads no store, decides nothing: :func:`verify` given the result
    still makes every check, in order, against the key store as it is then, and checks the
    signature itself unless the stored key is the one it verified under. Ed25519 verification
    releases the GIL, so a thread can do this beside the one that lands telegrams."""
    try:
        obj = _parse(t)
        head = _check_shape(obj)
        signed = canonical_bytes(obj)
    except (TelegramError, TypeError, ValueError):
        return None
    public_key = public_key_of(head[0])
    if public_key is None:
        return None
    try:
        public_key_object(public_key).verify(head[3], signed)
    except (InvalidSignature, ValueError):
        return None
    return Checked(obj, head, signed, public_key)


def verify(t: Telegram, keys: KeyStore, now: int, max_skew_s: int = DEFAULT_MAX_SKEW_S,
           checked: Checked | None = None,
           records: Mapping[str, KeyRecord | None] | None = None) -> Verified:
    """Check a telegram (a dict, or its JSON text/bytes as received) against the key store; see
    the module docstring for the checks and their order. Reads the store, writes nothing.

    ``checked``: :func:`precheck`'s result for this same ``t`` (its parse is reused, and its
    signature check when it was made with the key stored now). ``records``: key records read
    just before (:meth:`KeyStore.get_many`) for some sources; others are read here."""
    if checked is None:
        obj = _parse(t)
        source, seq, sent_at, sig = _check_shape(obj)
        try:
            signed = canonical_bytes(obj)
        except (TypeError, ValueError) as e:  # e.g. a lone surrogate, which is not UTF-8
            raise TelegramError(400, f"not JSON ({e})") from None
    else:
        obj, signed = checked.obj, checked.signed
        source, seq, sent_at, sig = checked.head
    rec = records[source] if records is not None and source in records else keys.get(source)
    if rec is None:
        raise TelegramError(401, f"unknown source {source!r}: no key registered")
    if checked is None or checked.public_key != rec.public_key:
        try:
            rec.verifier().verify(sig, signed)
        except InvalidSignature:
            raise TelegramError(401, f"bad signature: not signed by the key of {source!r}, or "
                                     "altered since") from None
    if rec.revoked:
        raise TelegramError(403, f"source {source!r} is revoked (since {to_iso(rec.revoked_at)})")
    skew = sent_at - now
    if skew < -max_skew_s:
        raise TelegramError(422, f"stale: sent_at {obj['sent_at']} is {-skew} s before now "
                                 f"(at most {max_skew_s} s allowed)")
    if skew > max_skew_s:
        raise TelegramError(422, f"from the future: sent_at {obj['sent_at']} is {skew} s after "
                                 f"now (at most {max_skew_s} s allowed)")
    if rec.last_seq is not None and seq <= rec.last_seq:
        what = "replayed" if seq == rec.last_seq else "out of order"
        raise TelegramError(409, f"{what}: seq {seq} is not greater than {rec.last_seq}, the "
                                 f"last seq accepted from {source!r}")
    reports = _reports(obj["payload"], source)
    if rec.forces is not None:
        allowed = ", ".join(rec.forces) or "no force"
        for i, r in enumerate(reports, start=1):
            force = r.get("force")
            name = force.strip() if isinstance(force, str) else None
            if name is None or not rec.may_report_on(name):
                raise TelegramError(403, f"report {i} ({_rid(r)}) is about force {force!r}; "
                                         f"{source!r} may only report on {allowed}")
    return Verified(source=source, seq=seq, sent_at=sent_at, reports=reports,
                    digest=hashlib.sha256(signed).hexdigest())


def _parse(t: Telegram) -> dict[str, Any]:
    """The telegram as pure JSON values: bytes/text are parsed (strict UTF-8, no duplicate
    names, no NaN); a mapping is serialised and parsed back, so both take the same path."""
    if isinstance(t, Mapping):
        try:
            text = json.dumps(dict(t), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as e:
            raise TelegramError(400, f"not JSON ({e})") from None
    elif isinstance(t, bytes | bytearray):
        try:
            text = bytes(t).decode("utf-8")
        except UnicodeDecodeError as e:
            raise TelegramError(400, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    elif isinstance(t, str):
        text = t
    else:
        raise TelegramError(400, f"a {type(t).__name__}; expected a JSON object")
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise TelegramError(400, f"bad JSON ({e})") from None
    if not isinstance(obj, dict):
        raise TelegramError(400, f"a JSON {type(obj).__name__}; expected an object")
    return obj


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"member {k!r} appears twice")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_shape(obj: Mapping[str, Any]) -> tuple[str, int, int, bytes]:
    """``(source, seq, sent_at epoch, signature bytes)`` of a well-formed telegram, else 400."""
    missing = sorted(FIELDS - obj.keys())
    if missing:
        raise TelegramError(400, f"missing member(s) {', '.join(missing)}")
    unknown = sorted(str(k) for k in obj.keys() - FIELDS)
    if unknown:
        raise TelegramError(400, f"unknown member(s) {', '.join(unknown)}; expected only "
                                 f"{', '.join(sorted(FIELDS))}")
    source, seq, sent, payload, sig = (obj[k] for k in
                                       ("source", "seq", "sent_at", "payload", "signature"))
    if not isinstance(source, str) or not source:
        raise TelegramError(400, f"source: {source!r}; expected a station name")
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        raise TelegramError(400, f"seq: {seq!r}; expected an integer in [0, 2**63)")
    if not isinstance(sent, str):
        raise TelegramError(400, f"sent_at: {sent!r}; expected ISO 8601 text with a zone")
    try:
        sent_at = parse_time(sent)
    except TimeFormatError as e:
        raise TelegramError(400, f"sent_at: {e}") from None
    if not isinstance(payload, list | str):
        raise TelegramError(400, f"payload: a {type(payload).__name__}; expected a list of "
                                 "report objects or CSV/NDJSON text")
    if not isinstance(sig, str):
        raise TelegramError(400, "signature: expected base64 text of 64 bytes")
    try:
        raw_sig = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        raise TelegramError(400, "signature: not base64") from None
    if len(raw_sig) != SIGNATURE_BYTES:
        raise TelegramError(400, f"signature: {len(raw_sig)} bytes; expected {SIGNATURE_BYTES}")
    if base64.b64encode(raw_sig).decode("ascii") != sig:
        raise TelegramError(400, "signature: not canonical base64")
    return source, seq, sent_at, raw_sig


def _reports(payload: list[Any] | str, source: str) -> list[dict[str, Any]]:
    """Report field dicts of a payload, ``source`` forced; 400 for anything unparseable."""
    out: list[dict[str, Any]] = []
    if isinstance(payload, list):
        for i, item in enumerate(payload, start=1):
            try:
                fields = dict(as_fields(item))
            except ValueError as e:
                raise TelegramError(400, f"payload report {i}: {e}") from None
            fields["source"] = source
            out.append(fields)
        return out
    data = payload.encode("utf-8")
    fmt = detect(data[: 1 << 16])
    if fmt.name not in PAYLOAD_FORMATS:
        raise TelegramError(400, f"payload: {fmt.name} text; expected CSV or NDJSON")
    for rec in fmt.records(CountingReader(io.BytesIO(data)), "payload"):
        if rec.fields is None:
            where = "" if rec.line is None else f" line {rec.line}"
            raise TelegramError(400, f"payload ({fmt.name}){where}: {rec.error}")
        fields = dict(rec.fields)
        fields["source"] = source
        out.append(fields)
    return out


def _rid(r: Mapping[str, Any]) -> str:
    rid = r.get("report_id")
    return "no report_id" if rid is None else f"report_id {rid!r}"


# -- accepting -----------------------------------------------------------------------------------
def accept(store: Store, validator: Validator, t: Telegram, keys: KeyStore, now: int,
           max_skew_s: int = DEFAULT_MAX_SKEW_S, checked: Checked | None = None
           ) -> IngestResult:
    """Verify ``t`` and land its reports, ``last_seq`` and the acceptance record in one
    transaction; or quarantine the raw telegram and raise :class:`TelegramError`.

    Returns the ingest counts of its reports (``origin`` is ``telegram:<source>:<seq>``).
    ``checked``: :func:`precheck`'s result for ``t``, if any (see :func:`verify`).
    """
    if keys.conn is not store.conn:
        raise ValueError("the key store must be on the same store (one transaction)")
    raw = raw_bytes(t)
    try:
        with store.transaction() as c:
            v = verify(t, keys, now, max_skew_s, checked)
            origin = f"telegram:{v.source}:{v.seq}"
            received = to_iso(now)
            reports = [r if r.get("received_at") not in (None, "") else
                       {**r, "received_at": received} for r in v.reports]
            result = _land(_Enlisted(store), validator, reports, origin)
            if not keys.advance_seq(v.source, v.seq):  # verify checked it; this guards races
                raise TelegramError(409, f"seq {v.seq} of {v.source!r} is not greater than the "
                                         "last accepted seq")
            try:
                c.execute(_RECORD_SQL, _record(v, now, raw, len(reports)))
            except sqlite3.IntegrityError:
                raise TelegramError(409, f"telegram {v.seq} of {v.source!r} was accepted "
                                         "before") from None
    except TelegramError as e:
        claimed = t.get("source") if isinstance(t, Mapping) else _claimed_source(raw)
        store.quarantine([QuarantineRow(
            "telegram", None, QUARANTINE_KIND, f"{e.status} {e.reason}", raw,
            claimed if isinstance(claimed, str) else None, None)])
        raise
    return result


_RECORD_SQL = ("INSERT INTO telegrams (source, seq, sent_at, accepted_at, digest, raw, reports) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)")


def _record(v: Verified, now: int, raw: bytes, n_reports: int) -> tuple[Any, ...]:
    """The ``telegrams`` row (audit record) of an accepted telegram."""
    return (v.source, v.seq, v.sent_at, now, v.digest, raw, n_reports)


def accept_many(store: Store, validator: Validator, items: Sequence[tuple[Telegram, int]],
                keys: KeyStore, max_skew_s: int = DEFAULT_MAX_SKEW_S,
                checked: Sequence[Checked | None] | None = None
                ) -> list[IngestResult | Exception]:
    """Accept telegrams (each with its receipt time, epoch s) inside the caller's open
    transaction, ``store`` being enlisted in it (its ``transaction()`` a savepoint, see
    :class:`_Enlisted`). Each gets the outcome :func:`accept` gives it when the telegrams are
    accepted one after another in order: its ingest counts, or the exception it raised (a
    refusal also leaves its quarantine row).

    The steady stream of a field network, telegrams of distinct sources whose reports are all
    valid, lands jointly: one multi-row insert of all their reports, one ``seq`` update and
    one audit insert for the lot, instead of two savepoints, a validation batch and five
    statements each. The joint write is all or nothing: if fewer reports land than were sent
    (a key stored before, or repeated in a payload), a ``seq`` does not advance or an audit row
    is refused, it is rolled back and those telegrams go through :func:`accept` one by one, as
    do the rest: refused ones, those with an invalid report, and those of a source that
    appears more than once in the batch (so a source's telegrams keep their order; telegrams
    of different sources share nothing: a report's key includes its source).

    ``checked[i]``: :func:`precheck`'s result for telegram ``i``, if any. The key records of
    the prechecked telegrams' sources are read in one query before the telegrams are verified
    (nothing is written until all are)."""
    pre: Sequence[Checked | None] = checked if checked is not None else [None] * len(items)
    records = keys.get_many(c.head[0] for c in pre if c is not None)
    verified: list[tuple[int, Verified] | None] = []
    claimed: dict[Any, int] = {}
    for i, (t, now) in enumerate(items):
        try:
            v = verify(t, keys, now, max_skew_s, pre[i], records)
        except TelegramError:
            verified.append(None)
            who = t.get("source") if isinstance(t, Mapping) else _claimed_source(raw_bytes(t))
            if isinstance(who, str):
                claimed[who] = claimed.get(who, 0) + 1
            continue
        verified.append((i, v))
        claimed[v.source] = claimed.get(v.source, 0) + 1
    out: list[IngestResult | Exception | None] = [None] * len(items)
    joint: list[tuple[int, Verified, int]] = []  # (index, telegram, reports)
    rows: list[tuple[Any, ...]] = []
    origins: list[str] = []
    for got in verified:
        if got is None or claimed[got[1].source] != 1:
            continue
        i, v = got
        received = to_iso(items[i][1])
        mine = []
        for fields in v.reports:
            if fields.get("received_at") in (None, ""):
                fields = {**fields, "received_at": received}
            row, _ = validator.row(fields)
            if row is None:
                break
            mine.append(row)
        else:
            joint.append((i, v, len(mine)))
            rows += mine
            origins += [f"telegram:{v.source}:{v.seq}"] * len(mine)
    if joint and _land_jointly(store, keys, items, joint, rows, origins):
        for i, v, n in joint:
            out[i] = IngestResult(origin=f"telegram:{v.source}:{v.seq}", format="telegram",
                                  accepted=n)
    for i, (t, now) in enumerate(items):
        if out[i] is None:
            try:
                out[i] = accept(store, validator, t, keys, now, max_skew_s, pre[i])
            except Exception as e:  # refused (quarantined), or the store failed on this one
                out[i] = e
    return out  # type: ignore[return-value]


def _land_jointly(store: Store, keys: KeyStore, items: Sequence[tuple[Telegram, int]],
                  joint: list[tuple[int, Verified, int]], rows: list[tuple[Any, ...]],
                  origins: list[str]) -> bool:
    """Write the joint telegrams' reports, ``seq`` advances and audit rows in one savepoint;
    False (and nothing written) unless every one of them went in."""
    c = store.conn
    c.execute("SAVEPOINT telegrams_joint")
    try:
        cols = list(zip(*rows, strict=True))
        ok = not rows or store.insert_columns(cols, origins, int(time.time())) == len(rows)
        ok = ok and keys.advance_seqs([(v.source, v.seq) for _, v, _ in joint]) == len(joint)
        if ok:
            c.executemany(_RECORD_SQL, [_record(v, items[i][1], raw_bytes(items[i][0]), n)
                                        for i, v, n in joint])
    except sqlite3.Error:  # e.g. an audit row of this seq exists: each goes alone
        ok = False
    if not ok:
        c.execute("ROLLBACK TO telegrams_joint")
    c.execute("RELEASE telegrams_joint")
    return ok


def raw_bytes(t: Telegram) -> bytes:
    """The telegram's bytes as received (a dict: its JSON with sorted keys)."""
    if isinstance(t, bytes | bytearray):
        return bytes(t)
    if isinstance(t, str):
        return t.encode("utf-8", errors="surrogatepass")
    try:
        return json.dumps(dict(t), sort_keys=True, ensure_ascii=False).encode(
            "utf-8", errors="surrogatepass")
    except (TypeError, ValueError, RecursionError):
        return repr(t).encode("utf-8", errors="backslashreplace")


def _claimed_source(raw: bytes) -> Any:
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return obj.get("source") if isinstance(obj, dict) else None


def _land(store: Store, validator: Validator, reports: list[dict[str, Any]], origin: str
          ) -> IngestResult:
    """Validate and write reports as ``ingest_stream`` does (one batch), without format
    detection: the reports are parsed already."""
    result = IngestResult(origin=origin, format="telegram")
    rows: list[tuple[Any, ...]] = []
    raws: list[bytes | None] = []
    lines: list[int | None] = []
    bad: list[QuarantineRow] = []
    for i, fields in enumerate(reports, start=1):
        raw = json.dumps(fields, ensure_ascii=False, sort_keys=True).encode(
            "utf-8", errors="surrogatepass")
        row, errs = validator.row(fields)
        if row is not None:
            rows.append(row)
            raws.append(raw)
            lines.append(i)
            continue
        msg = f"{origin} report {i}, " + "; ".join(errs)
        rid = fields.get("report_id")
        bad.append(QuarantineRow(origin, i, "invalid", msg, raw, fields["source"],
                                 None if rid is None else str(rid)))
        result.note(msg)
    if rows or bad:
        result.add(store.write_batch(rows, raws, lines, origin, bad), len(bad), origin)
    return result


class _Enlisted(Store):
    """The same store (same connection) whose ``transaction()`` is a SAVEPOINT inside the
    caller's open transaction: ``Store`` has no nested transactions (``BEGIN IMMEDIATE`` inside
    one fails), and :func:`accept` needs ``write_batch`` to commit with the ``seq`` advance.
    Replace with a store-level way to join a transaction when ``warroom.store`` grows one."""

    def __init__(self, store: Store) -> None:
        self.__dict__.update(store.__dict__)

    def transaction(self) -> _Savepoint:  # type: ignore[override]
        return _Savepoint(self.conn)


class _Savepoint:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        if not self.conn.in_transaction:
            raise RuntimeError("_Enlisted store used outside a transaction")
        self.conn.execute("SAVEPOINT telegram_land")
        return self.conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type:
            self.conn.execute("ROLLBACK TO telegram_land")
        self.conn.execute("RELEASE telegram_land")
