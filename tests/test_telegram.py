"""Signed telegrams: authentic, fresh, in-order telegrams land; anything else is refused with
the right status, quarantined raw, and changes nothing else."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warroom import telegram as tg
from warroom.ingest.pipeline import ingest_stream
from warroom.ingest.validate import Validator
from warroom.keystore import KeyStore, KeyStoreError, write_private_key
from warroom.store import Store
from warroom.telegram import TelegramError
from warroom.timeutil import parse_time

from .conftest import POLE

NOW = parse_time("1911-12-20T12:00:00Z")
R1 = {"report_id": "t1", "source": "someone-else", "force": "amundsen",
      "observed_at": "1911-12-14T15:00:00Z", "lat": -90.0, "lon": 0.0, "grade": "A1",
      "event": "reached", "target": "pole", "text": "Polheim, flag planted"}
R2 = {"report_id": "t2", "force": "amundsen", "observed_at": "1911-12-10T12:00:00Z",
      "received_at": "1911-12-11T00:00:00Z", "lat": -88.5, "lon": 160.0, "uncertainty_km": 12.5}
S1 = {"report_id": "t3", "force": "scott", "observed_at": "1911-12-18T12:00:00Z",
      "lat": -85.7, "lon": 161.0}


@pytest.fixture()
def store(tmp_path: Path, validator: Validator) -> Store:
    s = Store(tmp_path / "tg.db")
    with (POLE / "reports.csv").open("rb") as f:  # a store that is not empty to begin with
        ingest_stream(s, validator, f, origin="reports.csv", filename="reports.csv")
    yield s
    s.close()


@pytest.fixture()
def keys(store: Store) -> KeyStore:
    return KeyStore(store)


@pytest.fixture()
def fram(keys: KeyStore) -> bytes:
    """The private key of station 'fram', which may report on any force."""
    pem, _ = keys.new("fram", None)
    return pem


def wire(t: dict[str, Any]) -> bytes:
    """A telegram as a station would send it."""
    return json.dumps(t).encode("utf-8")


def report_rows(store: Store) -> set[tuple[Any, ...]]:
    return set(store.conn.execute("SELECT * FROM reports"))


def telegram_rows(store: Store) -> list[tuple[Any, ...]]:
    return list(store.conn.execute("SELECT source, seq FROM telegrams ORDER BY source, seq"))


# -- accepting ---------------------------------------------------------------------------------
def test_signed_telegram_is_accepted(store: Store, validator: Validator, keys: KeyStore,
                                     fram: bytes) -> None:
    before = store.count_reports()
    t = tg.make("fram", 7, [R1, R2], fram, sent_at=NOW - 100)
    res = tg.accept(store, validator, wire(t), keys, NOW)
    assert (res.accepted, res.duplicate, res.conflict, res.quarantined) == (2, 0, 0, 0)
    assert res.origin == "telegram:fram:7"
    assert store.count_reports() == before + 2
    got = {r.report_id: r for r in store.reports() if r.report_id in ("t1", "t2")}
    assert {r.source for r in got.values()} == {"fram"}  # forced, even over R1's own source
    assert got["t1"].received_at == NOW  # defaulted to now
    assert got["t2"].received_at == parse_time("1911-12-11T00:00:00Z")  # kept
    assert got["t1"].target == "pole" and got["t2"].uncertainty_km == 12.5
    assert keys.get("fram").last_seq == 7
    row = store.conn.execute("SELECT sent_at, accepted_at, digest, raw, reports FROM telegrams "
                             "WHERE source = 'fram' AND seq = 7").fetchone()
    assert row == (NOW - 100, NOW, hashlib.sha256(tg.canonical_bytes(t)).hexdigest(), wire(t), 2)
    assert store.count_quarantined() == 0

    # The next telegram only needs a greater seq (gaps are fine).
    t2 = tg.make("fram", 9, [S1], fram, sent_at=NOW)
    assert tg.accept(store, validator, t2, keys, NOW).accepted == 1
    assert keys.get("fram").last_seq == 9


def test_csv_and_ndjson_payloads(store: Store, validator: Validator, keys: KeyStore,
                                 fram: bytes) -> None:
    csv_text = ("report_id;source;force;observed_at;lat;lon;place\n"
                "c1;elsewhere;amundsen;1911-12-12T12:00:00Z;-89,5;10,0;\n"
                "c2;;scott;1911-12-19T12:00:00Z;;;Cape Evans\n")
    res = tg.accept(store, validator, wire(tg.make("fram", 1, csv_text, fram, NOW)), keys, NOW)
    assert (res.accepted, res.quarantined) == (2, 0)
    nd = "\n".join(json.dumps(r) for r in (R1, R2)) + "\n"
    res = tg.accept(store, validator, wire(tg.make("fram", 2, nd, fram, NOW)), keys, NOW)
    assert (res.accepted, res.quarantined) == (2, 0)
    got = {r.report_id: r for r in store.reports() if r.report_id in ("c1", "c2", "t1", "t2")}
    assert len(got) == 4 and {r.source for r in got.values()} == {"fram"}
    assert (got["c1"].lat, got["c1"].lon) == (-89.5, 10.0)  # decimal commas, as in ingest
    assert keys.get("fram").last_seq == 2


def test_bad_reports_of_an_authentic_telegram_go_to_quarantine(
        store: Store, validator: Validator, keys: KeyStore, fram: bytes) -> None:
    bad = {"report_id": "b1", "force": "nansen", "observed_at": "1911-12-12T12:00:00Z",
           "lat": -80.0, "lon": 0.0}
    res = tg.accept(store, validator, tg.make("fram", 1, [R1, bad], fram, NOW), keys, NOW)
    assert (res.accepted, res.quarantined) == (1, 1)
    [q] = list(store.quarantined())
    assert (q["kind"], q["origin"], q["line"], q["source"], q["report_id"]) == (
        "invalid", "telegram:fram:1", 2, "fram", "b1")
    assert "nansen" in q["error"]
    assert keys.get("fram").last_seq == 1


def test_reports_seq_and_record_commit_together(store: Store, validator: Validator,
                                                keys: KeyStore, fram: bytes,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """If the seq cannot be advanced at the end (another writer got there first), the reports
    already written in the same transaction are rolled back with it."""
    before = report_rows(store)
    monkeypatch.setattr(KeyStore, "advance_seq", lambda self, source, seq: False)
    raw = wire(tg.make("fram", 1, [R1, R2], fram, NOW))
    with pytest.raises(TelegramError) as e:
        tg.accept(store, validator, raw, keys, NOW)
    assert e.value.status == 409
    assert report_rows(store) == before
    assert telegram_rows(store) == [] and keys.get("fram").last_seq is None
    assert [q["raw"] for q in store.quarantined()] == [raw]
    assert not store.conn.in_transaction


# -- refusing ----------------------------------------------------------------------------------
Case = Callable[[Store, Validator, KeyStore, bytes], bytes]


def _forged_payload(store: Store, v: Validator, keys: KeyStore, pem: bytes) -> bytes:
    t = tg.make("fram", 1, [R1], pem, NOW)
    t["payload"][0]["lat"] = -89.0
    assert R1["lat"] == -90.0  # the telegram does not alias the caller's reports
    return wire(t)


def _other_key(store: Store, v: Validator, keys: KeyStore, pem: bytes) -> bytes:
    return wire(tg.make("fram", 1, [R1], Ed25519PrivateKey.generate(), NOW))


def _replayed(store: Store, v: Validator, keys: KeyStore, pem: bytes) -> bytes:
    raw = wire(tg.make("fram", 1, [R1], pem, NOW))
    tg.accept(store, v, raw, keys, NOW)
    return raw


def _out_of_order(store: Store, v: Validator, keys: KeyStore, pem: bytes) -> bytes:
    tg.accept(store, v, tg.make("fram", 5, [R1], pem, NOW), keys, NOW)
    return wire(tg.make("fram", 3, [R2], pem, NOW))


def _stale(store: Store, v: Validator, keys: KeyStore, pem: bytes) -> bytes:
    return wire(tg.make("fram", 1, [R1], pem, NOW - 3600))


def _future(store: Store, v: Validator, keys: KeyStore, pem: bytes) -> bytes:
    return wire(tg.make("fram", 1, [R1], pem, NOW + 3600))


def _unknown_source(store: Store, v: Validator, keys: KeyStore, pem: bytes) -> bytes:
    return wire(tg.make("nobody", 1, [R1], Ed25519PrivateKey.generate(), NOW))


def _revoked(store: Store, v: Validator, keys: KeyStore, pem: bytes) -> bytes:
    keys.revoke("fram")
    return wire(tg.make("fram", 1, [R1], pem, NOW))


def _not_allowed_force(store: Store, v: Validator, keys: KeyStore, pem: bytes) -> bytes:
    scott_pem, _ = keys.new("terra-nova", ["scott"])
    return wire(tg.make("terra-nova", 1, [S1, R1], scott_pem, NOW))


def _bad_json(store: Store, v: Validator, keys: KeyStore, pem: bytes) -> bytes:
    return wire(tg.make("fram", 1, [R1], pem, NOW))[:-7]


def _bad_base64(store: Store, v: Validator, keys: KeyStore, pem: bytes) -> bytes:
    t = tg.make("fram", 1, [R1], pem, NOW)
    t["signature"] = "!" + t["signature"][1:]
    return wire(t)


def _missing_seq(store: Store, v: Validator, keys: KeyStore, pem: bytes) -> bytes:
    t = tg.make("fram", 1, [R1], pem, NOW)
    del t["seq"]
    return wire(t)


@pytest.mark.parametrize(("case", "status", "says"), [
    (_forged_payload, 401, "bad signature"),
    (_other_key, 401, "bad signature"),
    (_replayed, 409, "replayed"),
    (_out_of_order, 409, "out of order"),
    (_stale, 422, "stale"),
    (_future, 422, "future"),
    (_unknown_source, 401, "unknown source"),
    (_revoked, 403, "revoked"),
    (_not_allowed_force, 403, "may only report on scott"),
    (_bad_json, 400, "bad JSON"),
    (_bad_base64, 400, "not base64"),
    (_missing_seq, 400, "missing member(s) seq"),
], ids=lambda x: getattr(x, "__name__", str(x)).strip("_"))
def test_refused_and_quarantined(case: Case, status: int, says: str, store: Store,
                                 validator: Validator, keys: KeyStore, fram: bytes) -> None:
    raw = case(store, validator, keys, fram)
    reports, telegrams = report_rows(store), telegram_rows(store)
    seqs = {k["source"]: k["last_seq"] for k in keys.list()}
    quarantined = store.count_quarantined()
    with pytest.raises(TelegramError) as e:
        tg.accept(store, validator, raw, keys, NOW)
    assert e.value.status == status
    assert says in e.value.reason
    assert str(e.value) == f"{status} {e.value.reason}"
    assert report_rows(store) == reports
    assert telegram_rows(store) == telegrams
    assert {k["source"]: k["last_seq"] for k in keys.list()} == seqs
    assert store.count_quarantined() == quarantined + 1
    q = list(store.quarantined())[-1]
    assert (q["kind"], q["origin"], q["raw"]) == ("telegram", "telegram", raw)
    assert q["error"] == f"{status} {e.value.reason}"


def test_refused_dict_is_quarantined_as_json(store: Store, validator: Validator,
                                             keys: KeyStore, fram: bytes) -> None:
    t = tg.make("fram", 1, [R1], fram, NOW - 3600)
    with pytest.raises(TelegramError):
        tg.accept(store, validator, t, keys, NOW)
    [q] = list(store.quarantined())
    assert json.loads(q["raw"]) == t and q["source"] == "fram" and q["error"].startswith("422 ")


def test_a_forgery_is_reported_as_one_whatever_else_is_wrong(keys: KeyStore, fram: bytes) -> None:
    keys.revoke("fram")
    t = tg.make("fram", 1, [R1], Ed25519PrivateKey.generate(), NOW - 3600)
    with pytest.raises(TelegramError) as e:
        tg.verify(t, keys, NOW)
    assert e.value.status == 401


@pytest.mark.parametrize(("change", "says"), [
    ({"seq": True}, "seq"),
    ({"seq": -1}, "seq"),
    ({"seq": 2**63}, "seq"),
    ({"seq": "1"}, "seq"),
    ({"source": 7}, "source"),
    ({"sent_at": "1911-12-20T12:00:00"}, "no zone"),
    ({"payload": {"report_id": "x"}}, "payload"),
    ({"payload": [R1, 3]}, "payload report 2"),
    ({"payload": "report_id,force\nx,amundsen\n"}, "missing required column"),
    ({"payload": '{"type": "FeatureCollection", "features": []}'}, "expected CSV or NDJSON"),
    ({"extra": 1}, "unknown member"),
    ({"signature": base64.b64encode(bytes(63)).decode()}, "63 bytes"),
])
def test_malformed_is_400(keys: KeyStore, fram: bytes, change: dict[str, Any],
                          says: str) -> None:
    t = {**tg.make("fram", 1, [R1], fram, NOW), **change}
    if "signature" not in change:
        t = tg.sign(t, fram)  # validly signed, so only the shape is wrong
    with pytest.raises(TelegramError) as e:
        tg.verify(wire(t), keys, NOW)
    assert e.value.status == 400
    assert says in e.value.reason


def test_duplicate_members_and_nan_are_malformed(keys: KeyStore, fram: bytes) -> None:
    raw = wire(tg.make("fram", 2, [R1], fram, NOW))
    with pytest.raises(TelegramError) as e:
        tg.verify(raw[:-1] + b', "seq": 1}', keys, NOW)
    assert (e.value.status, "twice" in e.value.reason) == (400, True)
    with pytest.raises(TelegramError) as e:
        tg.verify(raw.replace(b"-90.0", b"NaN"), keys, NOW)
    assert e.value.status == 400
    with pytest.raises(TelegramError) as e:
        tg.verify(b"\xff" + raw, keys, NOW)
    assert e.value.status == 400


def test_signature_encoding_is_canonical(keys: KeyStore, fram: bytes) -> None:
    """Base64 that decodes to the same 64 bytes but is spelled differently (unused low bits of
    the last character set) is refused: a telegram has one spelling of its signature."""
    t = tg.make("fram", 1, [R1], fram, NOW)
    sig = t["signature"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet[alphabet.index(sig[-3]) ^ 0b0001]
    odd = sig[:-3] + last + "=="
    assert base64.b64decode(odd) == base64.b64decode(sig)
    with pytest.raises(TelegramError) as e:
        tg.verify({**t, "signature": odd}, keys, NOW)
    assert (e.value.status, e.value.reason) == (400, "signature: not canonical base64")


def test_verify_reads_but_never_writes(store: Store, keys: KeyStore, fram: bytes) -> None:
    t = tg.make("fram", 4, [R1, R2], fram, NOW)
    v = tg.verify(wire(t), keys, NOW)
    assert (v.source, v.seq, v.sent_at) == ("fram", 4, NOW)
    assert [r["report_id"] for r in v.payload] == ["t1", "t2"]
    assert {r["source"] for r in v.reports} == {"fram"}
    assert keys.get("fram").last_seq is None
    tg.verify(wire(t), keys, NOW)  # still fine: nothing was accepted


# -- canonical bytes ---------------------------------------------------------------------------
def _reorder(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _reorder(x[k]) for k in reversed(list(x))}
    if isinstance(x, list):
        return [_reorder(v) for v in x]
    return x


def test_canonical_bytes_are_the_documented_ones(fram: bytes) -> None:
    t = tg.make("fram", 1, [R1, {**R2, "text": "Ægir, 南極 \"quoted\"\n"}], fram, NOW)
    expected = json.dumps({k: v for k, v in t.items() if k != "signature"}, sort_keys=True,
                          separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert tg.canonical_bytes(t) == expected
    public = serialization.load_pem_private_key(fram, None).public_key()
    public.verify(base64.b64decode(t["signature"]), expected)  # raises if not


def test_key_order_and_whitespace_do_not_matter(keys: KeyStore, fram: bytes) -> None:
    t = tg.make("fram", 1, [R1, {**R2, "text": "Ægir, 南極"}], fram, NOW)
    digest = tg.verify(t, keys, NOW).digest
    variants = [
        json.dumps(_reorder(t), indent=3, ensure_ascii=True).encode(),
        json.dumps(_reorder(t), separators=(" , ", " :  ")).encode(),
        ("\n\t " + json.dumps(t, ensure_ascii=False) + "\r\n").encode("utf-8"),
    ]
    assert list(_reorder(t)) != list(t)
    for raw in variants:
        assert raw != wire(t)
        assert tg.verify(raw, keys, NOW).digest == digest
    assert tg.verify(_reorder(t), keys, NOW).digest == digest
    assert tg.verify(json.loads(variants[0]), keys, NOW).digest == digest


# -- any mutation of the signed content is refused (property) ----------------------------------
_CSV = ("report_id,source,force,observed_at,lat,lon,text\n"
        "c1,,amundsen,1911-12-12T12:00:00Z,-89.5,10.25,\"Stopped, fog\"\n")
_no_fixture_reset = settings(max_examples=300, deadline=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture])


def _signed(fram: bytes) -> list[dict[str, Any]]:
    return [tg.make("fram", 12, [R1, R2, {**S1, "text": "Ægir"}], fram, NOW),
            tg.make("fram", 12, _CSV, fram, NOW)]


def _assert_refused_unless_same(raw: bytes, original: dict[str, Any], keys: KeyStore) -> None:
    try:
        tg.verify(raw, keys, NOW)
    except TelegramError as e:
        assert e.status in (400, 401), e
        return
    # Accepted: only possible if the bytes still encode the very same signed values and
    # signature (e.g. 1e+16 written 1E+16); nothing signed changed.
    parsed = json.loads(raw)
    assert tg.canonical_bytes(parsed) == tg.canonical_bytes(original)
    assert parsed["signature"] == original["signature"]


@_no_fixture_reset
@given(data=st.data())
def test_any_byte_mutation_is_refused(keys: KeyStore, fram: bytes, data: st.DataObject) -> None:
    # verify only reads, so one store serves every example
    original = data.draw(st.sampled_from(_signed(fram)))
    raw = json.dumps(original, sort_keys=True, separators=(",", ":"),
                     ensure_ascii=False).encode("utf-8")
    assert tg.verify(raw, keys, NOW).seq == 12
    i = data.draw(st.integers(0, len(raw) - 1))
    b = data.draw(st.integers(0, 255).filter(lambda x: x != raw[i]))
    _assert_refused_unless_same(raw[:i] + bytes([b]) + raw[i + 1:], original, keys)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=6)


def _paths(x: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every member/element path of a JSON value (the signature excluded)."""
    out = []
    items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else []
    for k, v in items:
        if prefix == () and k == "signature":
            continue
        out.append(prefix + (k,))
        out.extend(_paths(v, prefix + (k,)))
    return out


@_no_fixture_reset
@given(data=st.data())
def test_any_field_mutation_is_refused(keys: KeyStore, fram: bytes,
                                       data: st.DataObject) -> None:
    original = data.draw(st.sampled_from(_signed(fram)))
    t = json.loads(json.dumps(original))
    path = data.draw(st.sampled_from(_paths(t)))
    *parent_path, last = path
    parent = t
    for k in parent_path:
        parent = parent[k]
    op = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if op == "replace":
        new = data.draw(_json.filter(lambda v: json.dumps(v) != json.dumps(parent[last])))
        parent[last] = new
    elif op == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        name = data.draw(st.text(max_size=8).filter(lambda n: n not in parent))
        parent[name] = data.draw(_json)
    else:
        parent.insert(last, data.draw(_json))
    assert tg.canonical_bytes(t) != tg.canonical_bytes(original)
    with pytest.raises(TelegramError) as e:
        tg.verify(t, keys, NOW)
    assert e.value.status in (400, 401)


# -- keys ----------------------------------------------------------------------------------------
def test_new_key_signs_telegrams_that_verify(keys: KeyStore) -> None:
    pem, public_b64 = keys.new("polheim", ["amundsen"])
    private = serialization.load_pem_private_key(pem, None)
    assert isinstance(private, Ed25519PrivateKey)
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw)
    assert base64.b64decode(public_b64) == raw_public
    assert keys.get("polheim").public_key == raw_public
    assert keys.get("polheim").forces == ("amundsen",)
    v = tg.verify(tg.make("polheim", 1, [R1], pem, NOW), keys, NOW)
    assert v.source == "polheim"


def test_add_public_keys_as_base64_or_pem(keys: KeyStore) -> None:
    a, b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    pem = b.public_key().public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    raw = a.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    keys.add("a", base64.b64encode(raw).decode(), None)
    keys.add("b", pem.decode(), ["scott"])
    assert tg.verify(tg.make("a", 1, [R1], a, NOW), keys, NOW).seq == 1
    assert tg.verify(tg.make("b", 1, [S1], b, NOW), keys, NOW).seq == 1
    with pytest.raises(KeyStoreError, match="already has a key"):
        keys.add("a", pem.decode(), None)
    private_pem = a.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    with pytest.raises(KeyStoreError, match="private key"):
        keys.add("c", private_pem, None)
    with pytest.raises(KeyStoreError):
        keys.add("c", base64.b64encode(bytes(31)).decode(), None)
    assert keys.get("c") is None


def test_replacing_a_key_keeps_the_seq(store: Store, validator: Validator, keys: KeyStore,
                                       fram: bytes) -> None:
    tg.accept(store, validator, tg.make("fram", 5, [R1], fram, NOW), keys, NOW)
    keys.revoke("fram")
    new = Ed25519PrivateKey.generate()
    keys.add("fram", new.public_key(), None, replace=True)
    assert not keys.get("fram").revoked and keys.get("fram").last_seq == 5
    with pytest.raises(TelegramError) as e:
        tg.verify(tg.make("fram", 5, [R2], new, NOW), keys, NOW)
    assert e.value.status == 409
    with pytest.raises(TelegramError) as e:  # the old key no longer works
        tg.verify(tg.make("fram", 6, [R2], fram, NOW), keys, NOW)
    assert e.value.status == 401
    assert tg.verify(tg.make("fram", 6, [R2], new, NOW), keys, NOW).seq == 6


def test_list_never_holds_private_material(store: Store, keys: KeyStore) -> None:
    pem, public_b64 = keys.new("fram", ["amundsen", "scott"])
    keys.new("terra-nova", None)
    keys.revoke("terra-nova", at=NOW)
    listed = keys.list()
    assert [k["source"] for k in listed] == ["fram", "terra-nova"]
    assert set(listed[0]) == {"source", "public_key", "fingerprint", "forces", "revoked_at",
                              "last_seq", "added_at"}
    assert listed[0]["public_key"] == public_b64 and listed[1]["revoked_at"] == NOW
    private = serialization.load_pem_private_key(pem, None)
    seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    text = json.dumps(listed) + repr(listed) + repr(keys.get("fram"))
    body = b"".join(pem.splitlines()[1:-1]).decode()
    for secret in ("PRIVATE", body, base64.b64encode(seed).decode(), seed.hex()):
        assert secret not in text
    on_disk = b"".join(p.read_bytes() for p in Path(store.path).parent.iterdir()
                       if p.name.startswith(Path(store.path).name))
    assert seed not in on_disk and body.encode() not in on_disk and b"PRIVATE" not in on_disk


def test_write_private_key_is_0600(tmp_path: Path, keys: KeyStore) -> None:
    pem, _ = keys.new("fram", None)
    path = tmp_path / "fram.pem"
    old = os.umask(0)  # even with a permissive umask
    try:
        write_private_key(path, pem)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == pem
    with pytest.raises(FileExistsError):  # never clobbers a key by accident
        write_private_key(path, b"other")
    assert path.read_bytes() == pem
    loose = tmp_path / "loose.pem"
    loose.write_bytes(b"x" * 1000)
    loose.chmod(0o644)
    write_private_key(loose, pem, overwrite=True)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600 and loose.read_bytes() == pem
    link = tmp_path / "link.pem"
    link.symlink_to(tmp_path / "elsewhere.pem")
    with pytest.raises(OSError):
        write_private_key(link, pem)
    assert not (tmp_path / "elsewhere.pem").exists()


def test_sent_at_defaults_to_now_and_time_window_is_inclusive(keys: KeyStore,
                                                              fram: bytes) -> None:
    t = tg.make("fram", 1, [], fram)
    assert abs(parse_time(t["sent_at"]) - int(time.time())) < 5
    for skew in (-300, 300):
        assert tg.verify(tg.make("fram", 1, [], fram, NOW + skew), keys, NOW).reports == []
    for skew in (-301, 301):
        with pytest.raises(TelegramError) as e:
            tg.verify(tg.make("fram", 1, [], fram, NOW + skew), keys, NOW)
        assert e.value.status == 422


# -- group commit (the server's telegram writer) ------------------------------------------------
def test_writer_lands_a_batch_in_one_commit_and_refuses_only_the_bad(
        store: Store, validator: Validator, keys: KeyStore, fram: bytes) -> None:
    """Telegrams that queue up while the store is busy land in one transaction; a forged one in
    the middle is refused (and quarantined) exactly as alone; the others are all stored."""
    import threading

    from warroom.server.telegram_writer import TelegramWriter

    lock = threading.RLock()
    w = TelegramWriter(store, validator, keys, lock)
    before = store.count_reports()
    reps = [{**S1, "report_id": f"g{i}"} for i in range(20)]
    bodies = [wire(tg.make("fram", i + 1, [r], fram, sent_at=NOW)) for i, r in enumerate(reps)]
    forged = json.loads(bodies[10])
    forged["payload"][0]["lat"] = -80.0  # changed after signing
    bodies[10] = wire(forged)
    with lock:  # the store is busy: everything queues
        futs = [w.submit(b, NOW) for b in bodies]
        time.sleep(0.2)
        assert not any(f.done() for f in futs)  # nothing answered before its commit
    results = []
    for f in futs:
        try:
            results.append(f.result(timeout=30))
        except TelegramError as e:
            results.append(e)
    w.close()
    assert isinstance(results[10], TelegramError) and results[10].status == 401
    assert all(r.accepted == 1 for i, r in enumerate(results) if i != 10)
    assert w.batches <= 2 and w.landed == 20  # one waiting for the lock, then the rest
    stored = {r.report_id for r in store.reports() if r.report_id.startswith("g")}
    assert stored == {f"g{i}" for i in range(20)} - {"g10"}
    assert store.count_reports() == before + 19
    assert store.count_quarantined() == 1
    assert keys.get("fram").last_seq == 20


def test_writer_waits_for_the_telegrams_still_being_checked(
        store: Store, validator: Validator, keys: KeyStore, fram: bytes) -> None:
    """Telegrams that arrive together land together, though their signatures are checked one
    after another: the writer takes the first checked one and waits for those queued behind
    it (within ``gather_s``), rather than commit each as the checker hands it over."""
    import threading

    from warroom.server.telegram_writer import TelegramWriter

    w = TelegramWriter(store, validator, keys, threading.RLock(), gather_s=5.0)
    bodies = [wire(tg.make("fram", i + 1, [{**S1, "report_id": f"w{i}"}], fram, sent_at=NOW))
              for i in range(40)]
    futs = [w.submit(b, NOW) for b in bodies]  # (the store is free: nothing holds the lock)
    assert all(f.result(timeout=30).accepted == 1 for f in futs)
    w.close()
    assert w.landed == 40 and w.batches <= 2  # (one, if the first is not taken alone)
    assert keys.get("fram").last_seq == 40


def test_writer_isolates_a_store_failure_and_fails_all_on_a_failed_commit(
        store: Store, validator: Validator, keys: KeyStore, fram: bytes) -> None:
    import sqlite3
    import threading

    from warroom.server.telegram_writer import TelegramWriter

    lock = threading.RLock()
    w = TelegramWriter(store, validator, keys, lock)
    before = store.count_reports()
    # the store fails on one report: only that telegram fails, its batch-mates land
    store.conn.execute("CREATE TRIGGER bad_one BEFORE INSERT ON reports WHEN "
                       "NEW.report_id = 'boom' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
    with lock:
        futs = [w.submit(wire(tg.make("fram", i + 1, [{**S1, "report_id": rid}], fram,
                                      sent_at=NOW)), NOW)
                for i, rid in enumerate(["ok1", "boom", "ok2"])]
    with pytest.raises(sqlite3.IntegrityError, match="disk on fire"):
        futs[1].result(timeout=30)
    assert futs[0].result(timeout=30).accepted == 1 and futs[2].result(timeout=30).accepted == 1
    assert store.count_reports() == before + 2
    # a commit that fails (a deferred constraint checked at COMMIT): nothing is acknowledged,
    # nothing stored, the seq does not advance
    store.conn.execute("CREATE TABLE audit (n INTEGER REFERENCES nowhere(id) "
                       "DEFERRABLE INITIALLY DEFERRED)")
    store.conn.execute("CREATE TABLE nowhere (id INTEGER PRIMARY KEY)")
    store.conn.execute("CREATE TRIGGER audit_it AFTER INSERT ON telegrams "
                       "BEGIN INSERT INTO audit VALUES (42); END")
    with lock:
        futs = [w.submit(wire(tg.make("fram", 10 + i, [{**S1, "report_id": f"c{i}"}], fram,
                                      sent_at=NOW)), NOW) for i in range(3)]
    for f in futs:
        with pytest.raises(sqlite3.IntegrityError):
            f.result(timeout=30)
    w.close()
    assert store.count_reports() == before + 2
    assert keys.get("fram").last_seq == 3


# -- a batch landed jointly is the same as telegram after telegram ------------------------------
_STATIONS = {name: Ed25519PrivateKey.from_private_bytes(hashlib.sha256(name.encode()).digest())
             for name in ("fram", "nimrod", "terra", "discovery", "aurora", "belgica",
                          "endurance", "gauss", "quest", "morning")}


def _twin_stores(tmp: Path, validator: Validator) -> list[tuple[Store, KeyStore]]:
    """Two equal stores (the pole reports, the same station keys; 'terra' revoked, 'discovery'
    limited to Scott's party, and a report of 'nimrod' stored before)."""
    out = []
    for name in ("joint", "one-by-one"):
        s = Store(tmp / f"{name}.db")
        with (POLE / "reports.csv").open("rb") as f:
            ingest_stream(s, validator, f, origin="reports.csv", filename="reports.csv")
        k = KeyStore(s)
        for station, key in _STATIONS.items():
            k.add(station, key.public_key(),
                  forces=["scott"] if station == "discovery" else None)
        k.revoke("terra", at=NOW - 10)
        tg.accept(s, validator, wire(tg.make("nimrod", 1, [{**S1, "report_id": "old"}],
                                             _STATIONS["nimrod"], sent_at=NOW)), k, NOW)
        out.append((s, k))
    return out


_telegram_specs = st.lists(st.tuples(
    st.sampled_from(sorted(_STATIONS)),                         # station
    st.integers(0, 4),                                          # seq
    st.lists(st.sampled_from(["new"] * 4 + ["old", "bad", "amundsen", "repeat"]), max_size=3),
    st.sampled_from(["ok"] * 4 + ["forged", "stale"])), min_size=1, max_size=6)


def _outcome(r: Any) -> tuple[Any, ...]:
    if isinstance(r, TelegramError):
        return ("refused", r.status, r.reason)
    if isinstance(r, Exception):
        return ("failed", type(r).__name__, str(r))
    return ("landed", r.origin, r.accepted, r.duplicate, r.conflict, r.quarantined,
            tuple(r.messages))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=_telegram_specs)
def test_accept_many_equals_accepting_one_after_another(
        tmp_path_factory: pytest.TempPathFactory, validator: Validator,
        specs: list[tuple[str, int, list[str], str]]) -> None:
    """Whatever the mix (distinct and repeated stations, replays, forged, stale, revoked,
    restricted, invalid reports, keys stored before or repeated in a payload), each telegram
    of a batch gets the outcome it gets when the telegrams are accepted one by one, and the
    stores end up equal: reports, quarantine, seqs and audit rows."""
    (joint, jkeys), (single, skeys) = _twin_stores(tmp_path_factory.mktemp("twins"), validator)
    items = []
    for n, (station, seq, kinds, how) in enumerate(specs):
        reps = []
        for j, kind in enumerate(kinds):
            rid = {"old": "old", "repeat": f"rep{n}"}.get(kind, f"n{n}-{j}")
            r = {**S1, "report_id": rid}
            if kind == "bad":
                r["force"] = "nobody"  # an unknown force: the report is invalid
            if kind == "amundsen":
                r["force"] = "amundsen"  # 'discovery' may not report on him
            if kind == "repeat":
                r["lat"] = -85.0 - j / 10  # the same key with other content
            reps.append(r)
        t = tg.make(station, seq, reps, _STATIONS[station],
                    sent_at=NOW - (1000 if how == "stale" else 0))
        if how == "forged":
            t["seq"] += 100
        items.append((wire(t), NOW))
    with joint.transaction():
        got = tg.accept_many(tg._Enlisted(joint), validator, items, jkeys)
    want = []
    for body, now in items:
        try:
            want.append(tg.accept(single, validator, body, skeys, now))
        except Exception as e:
            want.append(e)
    assert [_outcome(r) for r in got] == [_outcome(r) for r in want]

    def facts(s: Store) -> tuple[Any, ...]:
        return (
            sorted(s.conn.execute("SELECT source, report_id, force, lat, text, origin "
                                  "FROM reports")),
            sorted(s.conn.execute("SELECT origin, line, kind, error, raw FROM quarantine")),
            sorted(s.conn.execute("SELECT source, last_seq FROM telegram_keys")),
            sorted(s.conn.execute("SELECT source, seq, sent_at, digest, raw, reports "
                                  "FROM telegrams")))

    assert facts(joint) == facts(single)
    joint.close()
    single.close()


def test_accept_many_lands_distinct_stations_jointly(
        tmp_path: Path, validator: Validator) -> None:
    """The joint path is taken (one insert for all), not only fallen back from: a batch of
    one telegram per station lands with no savepoint per telegram."""
    (s, k), _ = _twin_stores(tmp_path, validator)
    statements: list[str] = []
    s.conn.set_trace_callback(statements.append)
    items = [(wire(tg.make(st_, 2, [{**S1, "report_id": f"j-{st_}"}], _STATIONS[st_],
                           sent_at=NOW)), NOW) for st_ in ("fram", "nimrod", "discovery")]
    with s.transaction():
        got = tg.accept_many(tg._Enlisted(s), validator, items, k)
    s.conn.set_trace_callback(None)
    assert [r.accepted for r in got] == [1, 1, 1]
    assert [r.origin for r in got] == ["telegram:fram:2", "telegram:nimrod:2",
                                       "telegram:discovery:2"]
    assert not any("telegram_land" in q for q in statements)  # no one-by-one savepoint
    assert sum(" INTO reports " in q for q in statements) == 1
    assert dict(s.conn.execute("SELECT report_id, origin FROM reports "
                               "WHERE report_id LIKE 'j-%'")) == {
        "j-fram": "telegram:fram:2", "j-nimrod": "telegram:nimrod:2",
        "j-discovery": "telegram:discovery:2"}
    assert k.get("nimrod").last_seq == 2 and k.get("fram").last_seq == 2
    s.close()
