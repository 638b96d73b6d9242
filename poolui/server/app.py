"""The HTTP API over a control object (a PoolManager when served by `poolui serve`), on FastAPI.

Every answer is JSON; every error is `{"error": code, "detail": message}` with the code and status of the
poolui error behind it (poolui.errors), so the client can raise the very same error type on its side.
The endpoints are in routes.py; this module wires them, the error handlers and the middleware.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..control import Control
from ..errors import PoolError
from .fast import FastPath, is_json
from .middleware import BoundedBody, TokenAuth, error_body
from .routes import api
from .state import ServerOptions, ServerState, version
from .use_routes import use_api

log = logging.getLogger("poolui.server")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "body_too_large"}


def error_response(e: PoolError) -> JSONResponse:
    body, headers = error_body(e)
    return JSONResponse(body, status_code=e.http_status, headers=headers or None)


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        if err.get("type") == "json_invalid":
            parts.append(f"body: not valid JSON ({(err.get('ctx') or {}).get('error', 'decode error')})")
            continue
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _pool_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PoolError)
    return error_response(exc)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = _validation_detail(exc)
    ctype = request.headers.get("content-type", "")
    if request.method == "POST" and not is_json(ctype) and int(request.headers.get("content-length") or 0):
        # FastAPI reads a body of another type as form data, which then fails as "not a dictionary"
        detail = f"the body must be JSON sent with 'Content-Type: application/json' (got {ctype or 'none'})"
    return JSONResponse({"error": "invalid_request", "detail": detail}, status_code=422)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # FastAPI's "error parsing the body": a bad body, like any other
        return JSONResponse({"error": "invalid_request", "detail": f"body: {exc.detail} (expected JSON)"},
                            status_code=422)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse({"error": code, "detail": str(exc.detail)}, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error answering %s %s", request.method, request.url.path)
    return JSONResponse({"error": "internal_error", "detail": f"{type(exc).__name__}: {exc}"}, status_code=500)


def create_app(control: Control, token: str, options: ServerOptions | None = None) -> FastPath:
    """The ASGI app: claim, release and renew on the fast path (fast.py), the rest on FastAPI (`.app`).
    The caller starts and stops what `control` runs; the app only serves it."""
    opts = options or ServerOptions()
    app = FastAPI(title="poolui", version=version(),
                  description="Pools of warm sandboxes: claim one, get the URL of a server that is already up.")
    app.state.poolui = ServerState(control, opts)
    app.add_exception_handler(PoolError, _pool_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _bug)

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Liveness, without a token; says nothing about the pools."""
        return {"ok": True, "stopping": opts.stopping.is_set()}

    app.include_router(api)
    app.include_router(use_api)
    app.add_middleware(BoundedBody)
    holder = getattr(control, "token_holder", None)  # claim tokens are the engine's: PoolManager has it
    app.add_middleware(TokenAuth, token=token, holder=holder)
    return FastPath(app, app.state.poolui, token, holder)
