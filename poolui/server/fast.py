"""The claim path without the framework: claim, release and renew served as plain ASGI in one pass.

These three are what callers do all day; through FastAPI each paid for about ten layers (middleware,
routing, dependency solving, pydantic, the response model) for a body of four fields. Here one function
does the token check, the body bound, strict decoding into typed structs (msgspec), the call into the
control contract, the disconnect watch of a claim, and the same error shape as every other endpoint.
Everything else, and the OpenAPI document that still describes these three (routes.py), is FastAPI's;
tests/test_fast_path.py holds both to the same answers.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import parse_qsl

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from ..bounds import MAX_LEASE, MAX_WAIT, MIN_LEASE
from ..control import Control
from ..errors import InvalidRequest, PoolError
from .claims import ClaimDelivery, client_gone, deliver
from .fast_exec import ExecBody, serve_exec
from .middleware import (
    MAX_BODY,
    MAX_CLAIM_BODY,
    BodyTooLarge,
    Holder,
    auth_refusal,
    error_body,
    read_body,
    send_error,
    send_json,
)
from .state import ServerState

Wait = Annotated[float, msgspec.Meta(ge=0, le=MAX_WAIT)]
LeaseSeconds = Annotated[float, msgspec.Meta(ge=MIN_LEASE, le=MAX_LEASE)]
ClaimKey = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ClaimBody(msgspec.Struct, forbid_unknown_fields=True):
    timeout: Wait | None = None
    check_health: bool = False
    claim_key: ClaimKey | None = None
    lease: LeaseSeconds | None = None
    env: dict[str, str] | None = None
    files: dict[str, str] | None = None  # path -> text
    files_base64: dict[str, str] | None = None  # path -> base64 of the bytes


class RenewBody(msgspec.Struct, forbid_unknown_fields=True):
    lease: LeaseSeconds | None = None


class Invalid(Exception):
    """A 422: the detail names the field and what is allowed."""


def claim_files(text: dict[str, str] | None, b64: dict[str, str] | None) -> dict[str, bytes | str] | None:
    """A claim's files from its two JSON forms (text, and base64 for bytes that are not text)."""
    if not text and not b64:
        return None
    files: dict[str, bytes | str] = dict(text or {})
    for path, data in (b64 or {}).items():
        try:
            files[path] = base64.b64decode(data, validate=True)
        except ValueError:
            raise InvalidRequest(f"files_base64.{path}: not valid base64") from None
    return files


log = logging.getLogger("poolui.server")
_ROUTES = re.compile(r"^/pools/([^/]+)/(?:(claim)|sandboxes/([^/]+)/(release|renew|exec))$")


def _detail(e: msgspec.ValidationError) -> str:
    text = str(e)
    msg, _, where = text.partition(" - at `$")
    field = where.rstrip("`").lstrip(".") if where else ""
    if not field and "unknown field" in msg:
        field = msg.rsplit("`", 2)[-2] if msg.count("`") >= 2 else ""
    return f"{field or 'body'}: {msg}"


_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def _decoder(kind: type[Any]) -> msgspec.json.Decoder[Any]:
    """One decoder per body type, made once: building one per request is most of msgspec's cost."""
    if kind not in _DECODERS:
        _DECODERS[kind] = msgspec.json.Decoder(kind | None)
    return _DECODERS[kind]


def is_json(ctype: str) -> bool:
    """application/json or application/*+json, parameters aside (as FastAPI decides it)."""
    main, _, sub = ctype.split(";", 1)[0].strip().lower().partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def decode(body: bytes, headers: list[tuple[bytes, bytes]], kind: type[Any]) -> Any:
    """A request body as `kind` with strict types (a bool is not a number, "5" is not one either).

    No body, or JSON null, means every default; a body must come as application/json (or a +json type),
    as the FastAPI routes require."""
    if not body:
        return kind()
    ctype = next((v for k, v in headers if k == b"content-type"), b"").decode("latin-1")
    if not is_json(ctype):
        raise Invalid(f"the body must be JSON sent with 'Content-Type: application/json' (got {ctype or 'none'})")
    try:
        got = _decoder(kind).decode(body)
    except msgspec.ValidationError as e:
        raise Invalid(_detail(e)) from None
    except msgspec.DecodeError as e:
        try:  # Infinity and NaN are not JSON, but a careless client sends them: name the field they are in
            loose = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Invalid(f"body: not valid JSON ({e})") from None
        try:
            got = msgspec.convert(loose, type=kind | None, strict=True)
        except msgspec.ValidationError as e2:
            raise Invalid(_detail(e2)) from None
    return kind() if got is None else got


class FastPath:
    """ASGI: the hot routes (claim, release, renew, exec) answered here; every other request goes on to
    `app` (FastAPI)."""

    def __init__(self, app: ASGIApp, state: ServerState, token: str, holder: Holder | None = None) -> None:
        self.app = app
        self.state = state
        self.control: Control = state.control
        self._token = token
        self._holder = holder
        # Whether a claim now would be warm: the engine's (PoolManager.has_ready); a control without it
        # (a remote one) claims through ClaimDelivery always.
        self._ready: Callable[[str], bool] = getattr(state.control, "has_ready", lambda pool: False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _ROUTES.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        refused = auth_refusal(scope, self._token, self._holder)
        if refused is not None:
            await send_error(send, *refused)
            return
        try:
            await self._serve(scope, receive, send, match)
        except PoolError as e:
            body, headers = error_body(e)
            extra = [(k.encode(), v.encode()) for k, v in headers.items()]
            await send_json(send, e.http_status, msgspec.json.encode(body), extra)
        except Invalid as e:
            await send_error(send, 422, "invalid_request", str(e))
        except BodyTooLarge as e:
            await send_error(send, 413, "body_too_large", str(e))
        except Exception as e:  # as FastAPI's last handler (app.py): logged, and a JSON 500 that says what
            log.exception("unexpected error answering POST %s", scope["path"])
            await send_error(send, 500, "internal_error", f"{type(e).__name__}: {e}")

    async def _serve(self, scope: Scope, receive: Receive, send: Send, match: re.Match[str]) -> None:
        if scope.get("query_string"):
            names = sorted({k for k, _ in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)})
            raise Invalid("; ".join(f"query.{n}: unknown query parameter; allowed here: none" for n in names)
                          or "unknown query parameter; allowed here: none")
        raw = await read_body(receive, MAX_CLAIM_BODY if match[2] else MAX_BODY)
        if raw is None:
            return  # the client left before its request was whole
        pool, sandbox_id = match[1], match[3] or ""  # the server decoded the path already
        if match[2]:
            await self._claim(pool, decode(raw, scope["headers"], ClaimBody), scope, receive, send)
        elif match[4] == "exec":
            await serve_exec(self.control, pool, sandbox_id, decode(raw, scope["headers"], ExecBody), receive, send)
        elif match[4] == "release":  # takes no body, as its FastAPI route
            released = await self.control.release(pool, sandbox_id)
            await send_json(send, 200, msgspec.json.encode({"id": sandbox_id, "released": released}))
        else:
            b = decode(raw, scope["headers"], RenewBody)
            lease = await self.control.renew(pool, sandbox_id, b.lease)
            await send_json(send, 200, msgspec.json.encode(lease.to_dict()))

    async def _claim(self, pool: str, b: ClaimBody, scope: Scope, receive: Receive, send: Send) -> None:
        control = self.control
        files = claim_files(b.files, b.files_base64)
        if not b.check_health and not files and self._ready(pool):  # warm: made here (claims.py)
            if client_gone(receive):
                await send_error(send, 408, "client_gone", "client disconnected")  # dropped by the server
                return
            warm = await control.claim(pool, timeout=b.timeout, claim_key=b.claim_key, lease=b.lease, env=b.env)
            await deliver(warm, lambda sandbox_id: control.release(pool, sandbox_id), receive, send)
            return
        delivery = ClaimDelivery(
            lambda: control.claim(pool, timeout=b.timeout, check_health=b.check_health, claim_key=b.claim_key,
                                  lease=b.lease, env=b.env, files=files),
            lambda sandbox_id: control.release(pool, sandbox_id),
            receive,
            self.state.background,
        )
        made = await delivery.run()
        if made is None:  # nobody is listening any more; the server drops this answer (as the FastAPI route's)
            await send_error(send, 408, "client_gone", "client disconnected")
            return
        await delivery.response(made)(scope, receive, send)
