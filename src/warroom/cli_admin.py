"""Admin commands: telegram keys (``warroom keys``), API tokens (``warroom tokens``) and the
field station's client (``warroom send``). Mounted on the main app in :mod:`warroom.cli`.

Exit codes as in :mod:`warroom.cli`: 0 good; 1 ``send`` was accepted but some rows were
quarantined or conflicted; 2 a usage error or a refusal, one line on stderr. Secrets (private
keys, API tokens) are written only where asked: a key to its 0600 file, a new token to stdout
once; never to stderr or a log.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from warroom import telegram
from warroom.keystore import KeyStore, KeyStoreError, write_private_key
from warroom.timeutil import to_iso
from warroom.workspace import UsageError, Workspace, open_workspace

if TYPE_CHECKING:
    import httpx

    from warroom.server.auth import TokenStore

ROLES = ("reporter", "analyst", "admin")  # as warroom.server.auth.ROLES (not imported: slow)

keys_app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                       help="Field stations' telegram keys (public keys in the store).")
tokens_app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                         help="API tokens for `warroom serve --auth` (hashes in the store).")

out = Console(width=None if Console().is_terminal else 120, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DbOpt = Annotated[str | None, typer.Option("--db", help="SQLite store (default: WARROOM_DB, "
                                           "else warroom.db)")]
ScenarioOpt = Annotated[str | None, typer.Option("--scenario", help="scenario folder or "
                                                 "built-in name (default: the store's)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
ForcesOpt = Annotated[str | None, typer.Option("--forces", help="comma-separated force ids "
                                               "the station may report on (default: any)")]


@contextmanager
def _guard() -> Iterator[None]:
    """The CLI's error convention (one stderr line, exit 2), also for key and token errors."""
    from warroom.cli import _guard as cli_guard  # here: warroom.cli imports this module

    with cli_guard():
        try:
            yield
        except KeyStoreError as e:  # TokenError is a ValueError too
            raise UsageError(str(e)) from None
        except ValueError as e:
            from warroom.server.auth import TokenError

            if not isinstance(e, TokenError):
                raise
            raise UsageError(str(e)) from None


def _tokens(ws: Workspace) -> TokenStore:
    """The workspace's token store (imported here: FastAPI is slow to import)."""
    from warroom.server.auth import TokenStore

    return TokenStore(ws.store)


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [x.strip() for x in text.split(",") if x.strip()]
    return items


def _open(db: str | None, scenario: str | None) -> Workspace:
    """The workspace of a store file (keys and tokens in a throw-away store make no sense)."""
    ws = open_workspace(db, scenario)
    if ws.store.path == ":memory:":
        ws.store.close()
        raise UsageError("keys and tokens need a store file: pass --db PATH or set WARROOM_DB")
    return ws


def _when(t: int | None) -> str:
    return "" if t is None else to_iso(t)


# -- keys ----------------------------------------------------------------------------------------
@keys_app.command("new")
def keys_new(
    source: Annotated[str, typer.Argument(help="the station's name (its reports' source)")],
    forces: ForcesOpt = None,
    out_file: Annotated[str | None, typer.Option("--out", help="private key file to create "
                                                 "(mode 0600; default SOURCE.key)")] = None,
    db: DbOpt = None, scenario: ScenarioOpt = None,
) -> None:
    """Make a key pair for a station: store the public key, write the private key to a new
    0600 file for the station, print the public key."""
    with _guard():
        path = Path(out_file or f"{source}.key")
        if path.exists() or path.is_symlink():
            raise UsageError(f"{path} exists; choose another --out (a key file is never "
                             "overwritten)")
        ws = _open(db, scenario)
        try:
            pem, public = KeyStore(ws.store).new(source, _split(forces))
            try:
                write_private_key(path, pem)
            except OSError as e:
                KeyStore(ws.store).revoke(source)
                raise UsageError(f"{path}: cannot write the private key ({e.strerror}); the "
                                 f"new key of {source!r} was revoked") from None
        finally:
            ws.store.close()
    err.print(f"private key of {source!r} written to {path} (mode 0600): give it to the "
              "station only", markup=False)
    print(public)


@keys_app.command("add")
def keys_add(
    source: Annotated[str, typer.Argument(help="the station's name")],
    pubkey: Annotated[str, typer.Argument(help="its Ed25519 public key: base64 of the 32 raw "
                                          "bytes, or a PEM file")],
    forces: ForcesOpt = None, db: DbOpt = None, scenario: ScenarioOpt = None,
) -> None:
    """Register a station's public key (made by the station itself)."""
    with _guard():
        key: str = pubkey
        if not pubkey.strip().startswith("-----") and Path(pubkey).is_file():
            key = Path(pubkey).read_text()
        ws = _open(db, scenario)
        try:
            rec = KeyStore(ws.store).add(source, key, _split(forces))
        finally:
            ws.store.close()
    out.print(f"key of {rec.source!r} added (fingerprint {rec.fingerprint})", markup=False)


@keys_app.command("list")
def keys_list(db: DbOpt = None, scenario: ScenarioOpt = None, json_out: JsonOpt = False) -> None:
    """Every station's public key, allowed forces, state and last seq."""
    with _guard():
        ws = _open(db, scenario)
        try:
            rows = KeyStore(ws.store).list()
        finally:
            ws.store.close()
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    t = Table("source", "fingerprint", "forces", "state", "last seq", "added",
              header_style="bold")
    for r in rows:
        state = f"revoked {_when(r['revoked_at'])}" if r["revoked_at"] else "live"
        t.add_row(r["source"], r["fingerprint"],
                  "any" if r["forces"] is None else ",".join(r["forces"]) or "none", state,
                  "" if r["last_seq"] is None else str(r["last_seq"]), _when(r["added_at"]))
    out.print(t)


@keys_app.command("revoke")
def keys_revoke(source: Annotated[str, typer.Argument(help="the station's name")],
                db: DbOpt = None, scenario: ScenarioOpt = None) -> None:
    """Revoke a station's key: its telegrams are refused from now on."""
    with _guard():
        ws = _open(db, scenario)
        try:
            rec = KeyStore(ws.store).revoke(source)
        finally:
            ws.store.close()
    out.print(f"key of {rec.source!r} revoked at {_when(rec.revoked_at)}", markup=False)


# -- tokens --------------------------------------------------------------------------------------
@tokens_app.command("new")
def tokens_new(
    role: Annotated[str, typer.Option("--role", help=" | ".join(ROLES))],
    sources: Annotated[str | None, typer.Option("--sources", help="reporter only: "
                                                "comma-separated sources it may send")] = None,
    label: Annotated[str | None, typer.Option("--label", help="a note for people")] = None,
    db: DbOpt = None, scenario: ScenarioOpt = None,
) -> None:
    """Create an API token; the token is printed once on stdout (the store keeps a hash)."""
    with _guard():
        ws = _open(db, scenario)
        try:
            token_id, token = _tokens(ws).new(role, _split(sources), label)
        finally:
            ws.store.close()
    err.print(f"token {token_id} ({role}) created; it is shown only this once", markup=False)
    print(token)


@tokens_app.command("list")
def tokens_list(db: DbOpt = None, scenario: ScenarioOpt = None,
                json_out: JsonOpt = False) -> None:
    """Every token's id, role, sources, label and state (never the token)."""
    with _guard():
        ws = _open(db, scenario)
        try:
            rows = [t.as_dict() for t in _tokens(ws).list()]
        finally:
            ws.store.close()
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    t = Table("id", "role", "sources", "label", "created", "state", header_style="bold")
    for r in rows:
        state = f"revoked {_when(r['revoked_at'])}" if r["revoked_at"] else "live"
        t.add_row(r["id"], r["role"], "any" if r["sources"] is None else ",".join(r["sources"]),
                  r["label"] or "", _when(r["created_at"]), state)
    out.print(t)


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(metavar="ID", help="the token's id")],
                  db: DbOpt = None, scenario: ScenarioOpt = None) -> None:
    """Revoke a token: refused (401) from its next request on."""
    with _guard():
        ws = _open(db, scenario)
        try:
            info = _tokens(ws).revoke(token_id)
        finally:
            ws.store.close()
    out.print(f"token {info.id} revoked at {_when(info.revoked_at)}", markup=False)


# -- send ----------------------------------------------------------------------------------------
def send(
    file: Annotated[str, typer.Argument(help="reports as CSV (with a source column, values "
                                        "may be empty) or NDJSON; - reads stdin")],
    key: Annotated[str, typer.Option("--key", help="the station's private key file")],
    source: Annotated[str, typer.Option("--source", help="the station's name")],
    url: Annotated[str, typer.Option("--url", help="the server, e.g. http://host:8000")],
    seq: Annotated[int | None, typer.Option("--seq", min=0, help="telegram number (default: "
                                            "now in milliseconds, always increasing)")] = None,
    token: Annotated[str | None, typer.Option("--token", envvar="WARROOM_TOKEN",
                                              show_envvar=True, help="API token (reporter), "
                                              "better given as WARROOM_TOKEN")] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="seconds")] = 60.0,
) -> None:
    """Send reports to a war room as one signed telegram; print the server's counts."""
    import httpx

    with _guard():
        body = _telegram_bytes(file, key, source, seq)
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        target = url.rstrip("/") + "/reports"
        try:
            r = httpx.post(target, content=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as e:
            raise UsageError(f"{target}: {type(e).__name__}: {e}") from None
    if not r.is_success:
        err.print(f"error: {r.status_code} {_reason(r)}", markup=False)
        raise typer.Exit(2)
    try:
        answer: Any = r.json()
    except ValueError:
        answer = {"answer": r.text}
    print(json.dumps(answer))
    if isinstance(answer, dict):
        for m in answer.get("errors") or []:
            err.print(m, markup=False)
        if answer.get("quarantined") or answer.get("conflict"):
            raise typer.Exit(1)


def _telegram_bytes(file: str, key_file: str, source: str, seq: int | None) -> bytes:
    if file == "-":
        raw = sys.stdin.buffer.read()
    else:
        if not Path(file).is_file():
            raise UsageError(f"{file}: no such file")
        raw = Path(file).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{file}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        pem = Path(key_file).read_bytes()
        private = telegram.load_private_key(pem)
    except OSError as e:
        raise UsageError(f"--key {key_file}: {e.strerror}") from None
    except (ValueError, TypeError) as e:
        raise UsageError(f"--key {key_file}: not an Ed25519 private key in PEM ({e})") from None
    number = time.time_ns() // 1_000_000 if seq is None else seq
    try:
        t = telegram.make(source, number, text, private)
    except ValueError as e:
        raise UsageError(f"cannot make a telegram: {e}") from None
    return json.dumps(t, ensure_ascii=False).encode("utf-8")


def _reason(r: httpx.Response) -> str:
    """The server's reason for a refusal: its ``detail``, else its text."""
    try:
        detail = r.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, str):
        return detail
    return json.dumps(detail) if detail is not None else (r.text.strip()[:500] or r.reason_phrase)
