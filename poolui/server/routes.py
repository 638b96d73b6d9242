"""The API's endpoints: each one verb of the control contract (poolui.control), read from the app's state,
so the server speaks to its pools the way the console and the CLI do."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer

from ..control import Control
from . import metrics as prom
from .claims import ClaimDelivery
from .fast import claim_files
from .schemas import (
    ERROR_RESPONSES,
    ClaimIn,
    ClaimOut,
    DrainIn,
    InfoOut,
    LeaseOut,
    ReleaseOut,
    RenewIn,
    ResizeIn,
    TerminateIn,
    TerminateOut,
)
from .sse import EventStream
from .state import ServerState, version

# The token is checked by TokenAuth before routing; the dependency only documents it in the OpenAPI.
bearer = HTTPBearer(auto_error=False, description="the token from the server's token file")


async def no_unknown_query(request: Request) -> None:
    """A query parameter the endpoint does not take is a 422 naming it, never silently ignored (so a token
    or a typo in the URL is seen at once)."""
    route = request.scope.get("route")
    allowed = {p.alias for p in route.dependant.query_params} if route is not None else set()
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise RequestValidationError([{
            "type": "extra_forbidden", "loc": ("query", name), "input": request.query_params[name],
            "msg": f"unknown query parameter; allowed here: {', '.join(sorted(allowed)) or 'none'}"}
            for name in unknown])


api = APIRouter(dependencies=[Security(bearer), Depends(no_unknown_query)], responses=ERROR_RESPONSES)


def _control(request: Request) -> Control:
    control: Control = request.app.state.poolui.control
    return control


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.poolui
    return state


@api.get("/info", response_model=InfoOut, tags=["service"])
async def info(request: Request) -> dict[str, Any]:
    """The server's version, its pools and the pool file it read."""
    control = _control(request)
    return {"version": version(), "pools": await control.names(), "config_path": await control.config_path()}


@api.get("/pools", tags=["pools"])
async def list_pools(request: Request, members: bool = False) -> dict[str, Any]:
    return {"pools": [s.to_dict() for s in await _control(request).list_pools(members=members)]}


@api.get("/pools/{pool}", tags=["pools"])
async def get_pool(request: Request, pool: str, members: bool = True) -> dict[str, Any]:
    return (await _control(request).snapshot(pool, members=members)).to_dict()


@api.post("/pools/{pool}/claim", response_model=ClaimOut, tags=["claims"])
async def claim(request: Request, pool: str, body: ClaimIn | None = None) -> Response:
    b = body or ClaimIn.model_validate({})
    control = _control(request)
    delivery = ClaimDelivery(
        lambda: control.claim(pool, timeout=b.timeout, check_health=b.check_health, claim_key=b.claim_key,
                              lease=b.lease, env=b.env, files=claim_files(b.files, b.files_base64)),
        lambda sandbox_id: control.release(pool, sandbox_id),
        request.receive,
        _state(request).background,
    )
    made = await delivery.run()
    if made is None:  # nobody is listening any more; this answer is never sent
        return JSONResponse({"error": "client_gone", "detail": "client disconnected"}, status_code=408)
    return delivery.response(made)


@api.post("/pools/{pool}/sandboxes/{sandbox_id}/release", response_model=ReleaseOut, tags=["claims"])
async def release(request: Request, pool: str, sandbox_id: str) -> dict[str, Any]:
    return {"id": sandbox_id, "released": await _control(request).release(pool, sandbox_id)}


@api.post("/pools/{pool}/sandboxes/{sandbox_id}/renew", response_model=LeaseOut, tags=["claims"])
async def renew(request: Request, pool: str, sandbox_id: str, body: RenewIn | None = None) -> dict[str, Any]:
    """Extend a claim's lease; 410 once the claim has ended."""
    b = body or RenewIn.model_validate({})
    return (await _control(request).renew(pool, sandbox_id, b.lease)).to_dict()


@api.post("/pools/{pool}/claims/{claim_key}/release", response_model=ReleaseOut, tags=["claims"])
async def release_claim(request: Request, pool: str, claim_key: str) -> dict[str, Any]:
    """Give back whatever claim a key holds; a key that holds none is a no-op (released: false)."""
    return {"id": claim_key, "released": await _control(request).release_claim(pool, claim_key)}


@api.post("/pools/{pool}/terminate", response_model=TerminateOut, tags=["operations"])
async def terminate(request: Request, pool: str, body: TerminateIn) -> dict[str, Any]:
    return {"terminated": await _control(request).terminate(pool, body.ids)}


@api.post("/pools/{pool}/resize", tags=["operations"])
async def resize(request: Request, pool: str, body: ResizeIn) -> dict[str, Any]:
    snap = await _control(request).resize(pool, target=body.target, min_ready=body.min_ready,
                                          max_ready=body.max_ready, persist=body.persist)
    return snap.to_dict()


@api.post("/pools/{pool}/drain", tags=["operations"])
async def drain(request: Request, pool: str, body: DrainIn | None = None) -> dict[str, Any]:
    b = body or DrainIn.model_validate({})
    return (await _control(request).drain(pool, wait=b.wait, timeout=b.timeout if b.wait else None)).to_dict()


@api.post("/pools/{pool}/pause", tags=["operations"])
async def pause(request: Request, pool: str) -> dict[str, Any]:
    return (await _control(request).pause(pool)).to_dict()


@api.post("/pools/{pool}/resume", tags=["operations"])
async def resume(request: Request, pool: str) -> dict[str, Any]:
    return (await _control(request).resume(pool)).to_dict()


@api.post("/pools/{pool}/maintain", tags=["operations"])
async def maintain(request: Request, pool: str) -> dict[str, Any]:
    return (await _control(request).maintain(pool)).to_dict()


@api.get("/events/recent", tags=["events"])
async def recent_events(request: Request, pool: str | None = None,
                        limit: int = Query(200, ge=1, le=1000)) -> dict[str, Any]:
    return {"events": [e.to_dict() for e in await _control(request).recent_events(pool, limit)]}


@api.get("/events", tags=["events"], response_class=Response,
         responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
async def events(request: Request, pool: str | None = None) -> Response:
    state = _state(request)
    feed = state.control.events(pool, state.options.events_queue)  # before any backlog: nothing falls between
    try:
        await state.control.recent_events(pool, limit=1)  # PoolNotFound (404) before the stream starts
    except BaseException:
        await feed.aclose()
        raise
    last = request.headers.get("last-event-id", "")
    return _AsgiResponse(EventStream(state, feed, pool, int(last) if last.isdigit() else None))


@api.get("/metrics", tags=["service"], response_class=Response,
         responses={200: {"content": {prom.CONTENT_TYPE: {}}, "description": "Prometheus text format"}})
async def metrics(request: Request) -> Response:
    state = _state(request)
    store_stats = getattr(state.control, "store_stats", None)  # a remote control has no state file here
    text = prom.render(await state.control.list_pools(members=False), state.stats,
                       store_stats() if store_stats else None)
    return Response(text, media_type=prom.CONTENT_TYPE)


class _AsgiResponse(Response):
    """Hands the connection to an ASGI callable (the events stream writes its own messages)."""

    def __init__(self, asgi: Any) -> None:
        super().__init__()
        self._asgi = asgi

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._asgi(scope, receive, send)
