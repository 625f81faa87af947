"""API tokens for the HTTP server: roles, storage, the FastAPI dependency and a rate limit.

Roles (each request needs a token whose role is in the endpoint's list):

============  ===================================================================
``reporter``  ``POST /reports`` only. A token with a ``sources`` list may send only
              telegrams whose ``source`` is listed, and plain bodies whose every
              report names a listed ``source`` (anything else: 403, nothing stored).
``analyst``   every ``GET``, ``POST /alerts/{id}/ack``, ``POST /briefings``.
``admin``     everything (also future key and token endpoints).
============  ===================================================================

A token is ``wrt_<id>_<secret>``: ``id`` is 8 hex digits (shown by ``warroom tokens list``,
used to revoke), ``secret`` is ``secrets.token_urlsafe(32)``. The whole token is shown once, at
creation; the store keeps only its SHA-256 (hex) in the table ``api_tokens`` (created with
``CREATE TABLE IF NOT EXISTS`` in the store's SQLite file). A presented token is looked up by its
id and its hash compared with :func:`hmac.compare_digest`. No message or log line contains a
token: errors name the token id at most.

Callers serialise access to the store's connection (the app holds its lock around
:meth:`TokenStore.check`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from warroom.store import Store

ROLES: tuple[str, ...] = ("reporter", "analyst", "admin")
PREFIX = "wrt"
SCHEMA = ("CREATE TABLE IF NOT EXISTS api_tokens ("
          "id TEXT PRIMARY KEY, hash TEXT NOT NULL, role TEXT NOT NULL, sources TEXT, "
          "created_at INTEGER NOT NULL, revoked_at INTEGER, label TEXT)")
_ID = re.compile(r"^[0-9a-f]{8}$")
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()

DEFAULT_RATE_PER_S = 200.0
DEFAULT_BURST = 400.0


class TokenError(ValueError):
    """A token request that cannot be done (unknown id, bad role, ...)."""


@dataclass(frozen=True)
class TokenInfo:
    """A token's public facts (never its secret). ``sources`` None = any source."""

    id: str
    role: str
    sources: tuple[str, ...] | None
    created_at: int
    revoked_at: int | None
    label: str | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def may_send_for(self, source: Any) -> bool:
        """Whether reports or telegrams of ``source`` may be posted with this token."""
        if self.sources is None:
            return True
        return isinstance(source, str) and source.strip() in self.sources

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role,
                "sources": None if self.sources is None else list(self.sources),
                "label": self.label, "created_at": self.created_at,
                "revoked_at": self.revoked_at}


def token_hash(token: str) -> str:
    """SHA-256 (hex) of a token: what the store keeps."""
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).hexdigest()


class TokenStore:
    """API tokens in ``store``'s SQLite file (hashes only)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn
        self.conn.execute(SCHEMA)

    def new(self, role: str, sources: Iterable[str] | None = None, label: str | None = None
            ) -> tuple[str, str]:
        """Create a token; ``(token_id, token)``. The token is returned only here."""
        if role not in ROLES:
            raise TokenError(f"role {role!r}; expected one of {', '.join(ROLES)}")
        src: list[str] | None = None
        if sources is not None:
            if isinstance(sources, str):
                raise TokenError("sources: expected a list of source names")
            src = sorted({s.strip() for s in sources})
            if not src or any(not s for s in src):
                raise TokenError("sources: expected non-empty source names")
            if role != "reporter":
                raise TokenError(f"sources apply to reporter tokens only, not {role!r}")
        now = int(time.time())
        for _ in range(10):
            token_id = secrets.token_hex(4)
            token = f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO api_tokens (id, hash, role, sources, created_at, "
                "revoked_at, label) VALUES (?, ?, ?, ?, ?, NULL, ?)",
                (token_id, token_hash(token), role, None if src is None else json.dumps(src),
                 now, label))
            if cur.rowcount == 1:
                return token_id, token
        raise TokenError("could not draw a fresh token id")  # pragma: no cover

    def revoke(self, token_id: str, at: int | None = None) -> TokenInfo:
        """Revoke a token (the first revocation time is kept); its facts."""
        when = int(time.time()) if at is None else int(at)
        cur = self.conn.execute("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) "
                                "WHERE id = ?", (when, token_id))
        if cur.rowcount != 1:
            raise TokenError(f"no token with id {token_id!r}")
        info = self.get(token_id)
        assert info is not None
        return info

    def get(self, token_id: str) -> TokenInfo | None:
        row = self.conn.execute("SELECT id, role, sources, created_at, revoked_at, label "
                                "FROM api_tokens WHERE id = ?", (token_id,)).fetchone()
        return None if row is None else _info(row)

    def list(self) -> list[TokenInfo]:
        """Every token's public facts, oldest first."""
        return [_info(r) for r in self.conn.execute(
            "SELECT id, role, sources, created_at, revoked_at, label FROM api_tokens "
            "ORDER BY created_at, id")]

    def check(self, token: str) -> TokenInfo | None:
        """The live token's facts, or None (unknown, malformed or revoked)."""
        parts = token.split("_", 2)
        token_id = parts[1] if len(parts) == 3 and parts[0] == PREFIX else ""
        row = None
        if _ID.match(token_id):
            row = self.conn.execute("SELECT id, role, sources, created_at, revoked_at, label, "
                                    "hash FROM api_tokens WHERE id = ?",
                                    (token_id,)).fetchone()
        stored = row[6] if row is not None else _DUMMY_HASH
        ok = hmac.compare_digest(stored.encode("ascii"), token_hash(token).encode("ascii"))
        if row is None or not ok:
            return None
        info = _info(row[:6])
        return None if info.revoked else info


def _info(row: tuple[Any, ...]) -> TokenInfo:
    token_id, role, sources, created_at, revoked_at, label = row
    return TokenInfo(id=token_id, role=role,
                     sources=None if sources is None else tuple(json.loads(sources)),
                     created_at=created_at, revoked_at=revoked_at, label=label)


class RateLimiter:
    """A token bucket per key: ``rate_per_s`` refill, at most ``burst`` at once."""

    def __init__(self, rate_per_s: float = DEFAULT_RATE_PER_S, burst: float = DEFAULT_BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate = float(rate_per_s)
        self.burst = float(burst)
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last time)

    def take(self, key: str) -> float:
        """Spend one unit of ``key``'s bucket: 0.0 if allowed, else seconds until allowed."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


_bearer = HTTPBearer(auto_error=False, description="an API token: `warroom tokens new`")


class Authenticator:
    """Builds the FastAPI dependencies that check a bearer token's role and rate.

    ``lock`` is the app's lock on the store connection."""

    def __init__(self, tokens: TokenStore, lock: Any, limiter: RateLimiter) -> None:
        self.tokens = tokens
        self.lock = lock
        self.limiter = limiter

    def require(self, *roles: str) -> Callable[..., TokenInfo]:
        """A dependency: the request's token if its role is in ``roles`` (admin always is);
        401 (missing, unknown or revoked token), 403 (role), 429 (rate) otherwise."""
        check = self.authorizer(*roles)

        def dependency(request: Request, creds: Annotated[
                HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> TokenInfo:
            info = check(None if creds is None else creds.credentials, request.method,
                         request.url.path)
            request.state.token = info
            return info

        return dependency

    def authorizer(self, *roles: str) -> Callable[[str | None, str, str], TokenInfo]:
        """``authorize(credentials, method, path)``: the token of those bearer credentials if
        its role is in ``roles`` (admin always is), spending one unit of its rate; else raises
        the HTTPException to answer (401 missing, unknown or revoked; 403 role; 429 rate)."""
        allowed = frozenset(roles) | {"admin"}
        needs = " or ".join(r for r in ROLES if r in allowed)

        def authorize(credentials: str | None, method: str, path: str) -> TokenInfo:
            if credentials is None:
                raise HTTPException(401, "missing bearer token (Authorization: Bearer TOKEN)",
                                    headers={"WWW-Authenticate": "Bearer"})
            with self.lock:
                info = self.tokens.check(credentials)
            if info is None:
                raise HTTPException(401, "invalid, unknown or revoked token", headers={
                    "WWW-Authenticate": 'Bearer error="invalid_token"'})
            if info.role not in allowed:
                raise HTTPException(403, f"token {info.id} has role {info.role!r}; "
                                         f"{method} {path} needs {needs}")
            wait = self.limiter.take(info.id)
            if wait > 0:
                raise HTTPException(429, f"rate limit of token {info.id}: "
                                         f"{self.limiter.rate:g} requests/s",
                                    headers={"Retry-After": str(max(1, math.ceil(wait)))})
            return info

        return authorize
