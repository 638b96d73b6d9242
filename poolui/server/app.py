"""The HTTP API over a PoolManager (FastAPI).

Every answer is JSON; every error is `{"error": code, "detail": message}` with the code and status of the
poolui error behind it (poolui.errors), so the client can raise the very same error type on its side.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.manager import PoolManager
from ..errors import PoolError, Unauthorized
from . import metrics as prom
from .claims import ClaimDelivery
from .middleware import BoundedBody, TokenAuth
from .sse import EventStream, StreamStats

log = logging.getLogger("poolui.server")

MAX_WAIT = 3600.0  # longest claim or drain wait one request may ask for


@dataclass
class ServerOptions:
    events_queue: int = 1000  # per events client
    events_write_timeout: float = 10.0  # a client whose socket takes no write for this long is dropped
    events_heartbeat: float = 15.0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimIn(_Body):
    timeout: float | None = Field(None, ge=0, le=MAX_WAIT, allow_inf_nan=False,
                                  description="seconds to wait for a sandbox; default: the pool's claim_timeout")
    check_health: bool = Field(False, description="probe the sandbox before handing it out")
    claim_key: str | None = Field(None, min_length=1, max_length=200,
                                  description="idempotency key: repeating it returns the same claim")


class ClaimOut(BaseModel):
    id: str
    pool: str
    url: str
    expires_at: float
    warm: bool
    latency: float
    latency_ms: float
    claim_key: str | None = None
    reason: str = ""


class ReleaseOut(BaseModel):
    id: str
    released: bool


class TerminateIn(_Body):
    ids: list[str] = Field(min_length=1, max_length=1000)


class TerminateOut(BaseModel):
    terminated: list[str]


class ResizeIn(_Body):
    target: int | None = Field(None, ge=0, le=100_000)
    min_ready: int | None = Field(None, ge=0, le=100_000)
    max_ready: int | None = Field(None, ge=0, le=100_000)
    persist: bool = Field(False, description="also write the new sizes into the pool file")


class DrainIn(_Body):
    wait: bool = Field(False, description="answer only once the pool has no sandboxes left")
    timeout: float | None = Field(None, ge=0, le=MAX_WAIT, allow_inf_nan=False)


class ErrorOut(BaseModel):
    error: str
    detail: str
    reason: str | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in ((401, "missing or wrong bearer token"), (404, "no such pool or sandbox"),
                         (409, "no sandbox can be handed out (exhausted, draining, degraded)"),
                         (413, "request body too large"), (422, "bad request body or value"),
                         (504, "timed out waiting"))
}


def error_response(e: PoolError) -> JSONResponse:
    body: dict[str, Any] = {"error": e.code, "detail": e.message}
    if e.reason:
        body["reason"] = e.reason
    headers = {"www-authenticate": 'Bearer realm="poolui"'} if isinstance(e, Unauthorized) else None
    return JSONResponse(body, status_code=e.http_status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        if err.get("type") == "json_invalid":
            parts.append(f"body: not valid JSON ({(err.get('ctx') or {}).get('error', 'decode error')})")
            continue
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "body_too_large"}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("poolui")
    except PackageNotFoundError:
        return "0"


def create_app(manager: PoolManager, token: str, options: ServerOptions | None = None) -> FastAPI:
    """The ASGI app. The caller starts and stops `manager`; the app only serves it."""
    opts = options or ServerOptions()
    stats = StreamStats()
    bearer = HTTPBearer(auto_error=False, description="the token from the server's token file")
    app = FastAPI(title="poolui", version=_version(),
                  description="Pools of warm sandboxes: claim one, get the URL of a server that is already up.")
    # The token is checked by TokenAuth before routing; the dependency only documents it in the OpenAPI.
    api = APIRouter(dependencies=[Security(bearer)], responses=ERROR_RESPONSES)

    @app.exception_handler(PoolError)
    async def _pool_error(request: Request, exc: PoolError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = _validation_detail(exc)
        ctype = request.headers.get("content-type", "")
        if request.method == "POST" and "json" not in ctype and int(request.headers.get("content-length") or 0):
            # FastAPI reads a body of another type as form data, which then fails as "not a dictionary"
            detail = f"the body must be JSON sent with 'Content-Type: application/json' (got {ctype or 'none'})"
        return JSONResponse({"error": "invalid_request", "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's "error parsing the body": a bad body, like any other
            return JSONResponse({"error": "invalid_request", "detail": f"body: {exc.detail} (expected JSON)"},
                                status_code=422)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "detail": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal_error", "detail": f"{type(exc).__name__}: {exc}"},
                            status_code=500)

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Liveness, without a token; says nothing about the pools."""
        return {"ok": True, "stopping": opts.stopping.is_set()}

    @api.get("/pools", tags=["pools"])
    async def list_pools(members: bool = False) -> dict[str, Any]:
        return {"pools": [s.to_dict() for s in await manager.list_pools(members=members)]}

    @api.get("/pools/{pool}", tags=["pools"])
    async def get_pool(pool: str, members: bool = True) -> dict[str, Any]:
        return (await manager.get(pool, members=members)).to_dict()

    @api.post("/pools/{pool}/claim", response_model=ClaimOut, tags=["claims"])
    async def claim(pool: str, request: Request, body: ClaimIn | None = None) -> Response:
        b = body or ClaimIn.model_validate({})
        manager.pool(pool)  # 404 before waiting on anything
        delivery = ClaimDelivery(
            lambda: manager.claim(pool, timeout=b.timeout, check_health=b.check_health, claim_key=b.claim_key),
            lambda sandbox_id: manager.release(pool, sandbox_id),
            request.receive,
        )
        made = await delivery.run()
        if made is None:  # nobody is listening any more; this answer is never sent
            return JSONResponse({"error": "client_gone", "detail": "client disconnected"}, status_code=408)
        return delivery.response(made)

    @api.post("/pools/{pool}/sandboxes/{sandbox_id}/release", response_model=ReleaseOut, tags=["claims"])
    async def release(pool: str, sandbox_id: str) -> dict[str, Any]:
        return {"id": sandbox_id, "released": await manager.release(pool, sandbox_id)}

    @api.post("/pools/{pool}/terminate", response_model=TerminateOut, tags=["operations"])
    async def terminate(pool: str, body: TerminateIn) -> dict[str, Any]:
        return {"terminated": await manager.terminate(pool, body.ids)}

    @api.post("/pools/{pool}/resize", tags=["operations"])
    async def resize(pool: str, body: ResizeIn) -> dict[str, Any]:
        snap = await manager.resize(pool, target=body.target, min_ready=body.min_ready,
                                    max_ready=body.max_ready, persist=body.persist)
        return snap.to_dict()

    @api.post("/pools/{pool}/drain", tags=["operations"])
    async def drain(pool: str, body: DrainIn | None = None) -> dict[str, Any]:
        b = body or DrainIn.model_validate({})
        return (await manager.drain(pool, wait=b.wait, timeout=b.timeout if b.wait else None)).to_dict()

    @api.post("/pools/{pool}/pause", tags=["operations"])
    async def pause(pool: str) -> dict[str, Any]:
        return (await manager.pause(pool)).to_dict()

    @api.post("/pools/{pool}/resume", tags=["operations"])
    async def resume(pool: str) -> dict[str, Any]:
        return (await manager.resume(pool)).to_dict()

    @api.post("/pools/{pool}/maintain", tags=["operations"])
    async def maintain(pool: str) -> dict[str, Any]:
        return (await manager.maintain(pool)).to_dict()

    @api.get("/events/recent", tags=["events"])
    async def recent_events(pool: str | None = None, limit: int = Query(200, ge=1, le=1000)) -> dict[str, Any]:
        if pool is not None:
            manager.pool(pool)
        return {"events": [e.to_dict() for e in manager.recent_events(pool, limit)]}

    @api.get("/events", tags=["events"], response_class=Response,
             responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
    async def events(request: Request, pool: str | None = None) -> Response:
        if pool is not None:
            manager.pool(pool)
        last = request.headers.get("last-event-id", "")
        stream = EventStream(manager, pool, int(last) if last.isdigit() else None,
                             queue_size=opts.events_queue, write_timeout=opts.events_write_timeout,
                             heartbeat=opts.events_heartbeat, stopping=opts.stopping, stats=stats)
        return _AsgiResponse(stream)

    @api.get("/metrics", tags=["service"], response_class=Response,
             responses={200: {"content": {prom.CONTENT_TYPE: {}}, "description": "Prometheus text format"}})
    async def metrics() -> Response:
        text = prom.render(await manager.list_pools(members=False))
        text += (
            "# HELP poolui_event_clients Clients on /events now.\n# TYPE poolui_event_clients gauge\n"
            f"poolui_event_clients {stats.open}\n"
            "# HELP poolui_event_clients_dropped_total Events clients dropped for not keeping up.\n"
            f"# TYPE poolui_event_clients_dropped_total counter\npoolui_event_clients_dropped_total {stats.dropped}\n"
        )
        return Response(text, media_type=prom.CONTENT_TYPE)

    app.include_router(api)
    app.add_middleware(BoundedBody)
    app.add_middleware(TokenAuth, token=token)
    return app


class _AsgiResponse(Response):
    """Hands the connection to an ASGI callable (the events stream writes its own messages)."""

    def __init__(self, asgi: Any) -> None:
        super().__init__()
        self._asgi = asgi

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._asgi(scope, receive, send)
