"""``POST /reports`` served as plain ASGI, ahead of FastAPI's middleware, routing and
dependency resolution.

Field stations post one small signed telegram at a time, thousands a second; FastAPI's layers
cost about as much per request as landing the telegram. :class:`ReportsRoute` answers that one
route itself with the same rules the FastAPI route declares (it stays declared, for the
OpenAPI schema and for apps mounted elsewhere):

- with authentication on, the bearer token is checked by the same
  :meth:`warroom.server.auth.Authenticator.authorize` as every other route (401, 403, 429 with
  the same details and headers);
- the body is read with the same limit (413), then handed to the app's own handler (the one
  the FastAPI route calls too), whose :class:`~fastapi.HTTPException` or
  :class:`~warroom.telegram.TelegramError` becomes ``{"detail": reason}`` with its status, as
  the app's exception handlers write it;
- an unexpected error is logged and answered 500, as Starlette's error middleware does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import HTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response

from warroom.telegram import TelegramError

log = logging.getLogger("warroom.server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[bytes, Any], Awaitable[dict[str, Any]]]
Authorize = Callable[[str | None, str, str], Any]


class Disconnected(Exception):
    """The client went away before its body was read: there is no one to answer."""


async def read_body(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """The request body from its ``chunks``; 413 (:class:`HTTPException`) when the declared
    ``Content-Length`` or the bytes received go over ``limit`` bytes."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body of {declared} bytes is over the limit of {limit} bytes")
    buf = bytearray()
    async for chunk in chunks:
        if len(buf) + len(chunk) > limit:
            raise HTTPException(413, f"body over the limit of {limit} bytes")
        buf += chunk
    return bytes(buf)


def bearer(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer ...`` header, else None (as FastAPI's
    ``HTTPBearer(auto_error=False)`` reads it: the scheme is case-insensitive)."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


class ReportsRoute:
    """The ASGI callable for ``POST /reports``: ``handle(body, token)`` gives the JSON answer;
    ``authorize(credentials, method, path)`` (None without authentication) gives the token or
    raises the HTTPException to answer."""

    def __init__(self, handle: Handler, authorize: Authorize | None, max_body_bytes: int
                 ) -> None:
        self.handle = handle
        self.authorize = authorize
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        try:
            token = (None if self.authorize is None else
                     self.authorize(bearer(headers.get("authorization")), "POST", scope["path"]))
            body = await read_body(_chunks(receive), headers.get("content-length"),
                                   self.max_body_bytes)
            answer: Response = JSONResponse(await self.handle(body, token))
        except Disconnected:
            return
        except HTTPException as e:
            answer = JSONResponse({"detail": e.detail}, e.status_code, e.headers)
        except TelegramError as e:
            answer = JSONResponse({"detail": e.reason}, e.status)
        except Exception:
            log.exception("POST /reports failed")
            answer = PlainTextResponse("Internal Server Error", 500)
        await answer(scope, receive, send)


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers we read, by lower-case name (latin-1, as HTTP defines them)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
            if k in (b"authorization", b"content-length")}


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
