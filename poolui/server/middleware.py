"""Pure ASGI middleware (no BaseHTTPMiddleware, which runs the app in another task and changes how
cancellation and disconnects reach it): the bearer token check and a bound on request bodies."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.claim_scope import TOKEN_PREFIX
from ..errors import PoolError, Unauthorized
from ..sandbox_io import MAX_FILE
from .auth import QUERY_TOKEN_NAMES, bearer_matches

log = logging.getLogger("poolui.server")

PUBLIC_PATHS = frozenset({"/healthz"})
MAX_BODY = 64 * 1024
MAX_CLAIM_BODY = 8 << 20  # a claim or run may carry files


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """One whole JSON answer."""
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or []),
    ]})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, status: int, code: str, detail: str,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """The API's error shape: {"error": code, "detail": message}."""
    await send_json(send, status, json.dumps({"error": code, "detail": detail}).encode(), headers)


def _query_keys(scope: Scope) -> list[str]:
    from urllib.parse import parse_qsl

    raw = scope.get("query_string", b"").decode("latin-1")
    return [k for k, _ in parse_qsl(raw, keep_blank_values=True)]


def error_body(e: PoolError) -> tuple[dict[str, Any], dict[str, str]]:
    """The API's answer to a poolui error: its JSON body and extra headers (a challenge for Unauthorized)."""
    body: dict[str, Any] = {"error": e.code, "detail": e.message}
    if e.reason:
        body["reason"] = e.reason
    return body, ({"www-authenticate": 'Bearer realm="poolui"'} if isinstance(e, Unauthorized) else {})


Refusal = tuple[int, str, str, list[tuple[bytes, bytes]]]  # status, error code, detail, extra headers
CHALLENGE = [(b"www-authenticate", b'Bearer realm="poolui"')]


Holder = Callable[[str], "tuple[str, str] | None"]  # a claim token -> (pool, sandbox id) it is for
# What a claim's token allows: its own sandbox's exec, files, renew and release.
CLAIM_SCOPED = re.compile(r"^/pools/([^/]+)/sandboxes/([^/]+)/(?:exec|renew|release|files/.+|tar/.*)$")


def _claim_refusal(scope: Scope, given: str, holder: Holder | None) -> Refusal | None:
    """None when `given` is the token of a claim this request is about; a 403 for a claim token used on
    anything else; an ordinary 401 for a token that is no claim's."""
    held = holder(given) if holder is not None and given.startswith(TOKEN_PREFIX) else None
    if held is None:
        return (401, "unauthorized", "wrong bearer token: send 'Authorization: Bearer <token>' with the token "
                "from the server's token file (or $POOLUI_TOKEN), or a claim's own token", CHALLENGE)
    match = CLAIM_SCOPED.match(scope["path"])
    if match is not None and (match[1], match[2]) == held:
        return None
    return (403, "forbidden", f"this is the token of a claim of sandbox '{held[1]}' in pool '{held[0]}': it "
            "allows exec, files, renew and release of that sandbox only", [])


def auth_refusal(scope: Scope, token: str, holder: Holder | None = None) -> Refusal | None:
    """Why this request may not pass the token check, or None when it may (the admin token, or a claim's
    token on its own sandbox)."""
    if scope.get("query_string") and any(k.lower() in QUERY_TOKEN_NAMES for k in _query_keys(scope)):
        return (401, "unauthorized", "a token is never accepted in the query string (it would end up in logs); "
                "send the header 'Authorization: Bearer <token>'", CHALLENGE)
    given = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"authorization"]
    if len(given) > 1:
        # Which one a proxy, a framework or a logger reads differs; refuse rather than guess.
        return 400, "bad_request", f"{len(given)} Authorization headers; send exactly one", []
    header = given[0] if given else None
    if bearer_matches(header, token):
        return None
    if header is not None and header[:7].lower() == "bearer ":
        refused = _claim_refusal(scope, header[7:].strip(), holder)
    else:
        refused = (401, "unauthorized", f"{'missing' if header is None else 'wrong'} bearer token: send "
                   "'Authorization: Bearer <token>' with the token from the server's token file "
                   "(or $POOLUI_TOKEN)", CHALLENGE)
    if refused is not None:
        log.info("refused %s %s: %s", scope.get("method"), scope["path"], refused[2].split(":")[0])
    return refused


class TokenAuth:
    """Every path but /healthz needs `Authorization: Bearer <token>`; checked before anything else, the body
    included, so a caller without the token learns nothing (not even whether its JSON was valid)."""

    def __init__(self, app: ASGIApp, token: str, holder: Holder | None = None) -> None:
        self.app = app
        self._token = token
        self._holder = holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        refused = auth_refusal(scope, self._token, self._holder)
        if refused is not None:
            await send_error(send, *refused)
            return
        await self.app(scope, receive, send)


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int = MAX_BODY) -> bytes | None:
    """The whole request body (None when the client left first); BodyTooLarge past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class BoundedBody:
    """Reads a request body up front, refusing more than MAX_BODY with 413, then replays it; after the
    replay, receive() goes to the server again, so handlers can still see the client disconnect."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        limit = self.limit
        if scope.get("method") == "PUT" and CLAIM_SCOPED.match(scope["path"]):
            limit = MAX_FILE  # a file into a sandbox: its own cap, checked again by the engine
        elif scope["path"].endswith(("/run", "/claim")):
            limit = MAX_CLAIM_BODY
        try:
            body = await read_body(receive, limit)
        except BodyTooLarge as e:
            await send_error(send, 413, "body_too_large", str(e))
            return
        if body is None:
            return
        replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

        async def replaying_receive() -> Any:
            if replay:
                return replay.pop()
            return await receive()

        await self.app(scope, replaying_receive, send)
