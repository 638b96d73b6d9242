"""The bare limit for bench/http_claims.py: a Starlette app on uvicorn that answers the claim and release
paths with a constant JSON body, run the way `poolui serve` runs (same uvicorn settings, same event loop).

    .venv/bin/python bench/bare_server.py      # prints "serving http://127.0.0.1:PORT" and serves until killed

Whatever poolui adds (auth, validation, the engine, the store, the disconnect watch) is the gap between
this and `poolui serve` in the same run.
"""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from poolui.server.run import bind, run_loop

CLAIM = (b'{"id":"pu-0123456789","pool":"bench","url":"instant://bench/pu-0123456789","expires_at":1.0,'
         b'"warm":true,"latency":1e-05,"latency_ms":0.01,"claim_key":null,"lease_expires_at":null,"reason":""}')
RELEASE = b'{"id":"pu-0123456789","released":true}'


async def claim(request: Request) -> Response:
    await request.body()
    return Response(CLAIM, media_type="application/json")


async def release(request: Request) -> Response:
    await request.body()
    return Response(RELEASE, media_type="application/json")


app = Starlette(routes=[Route("/pools/{pool}/claim", claim, methods=["POST"]),
                        Route("/pools/{pool}/sandboxes/{sid}/release", release, methods=["POST"])])


async def main() -> None:
    sock = bind("127.0.0.1", 0)
    print(f"serving http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", access_log=False, log_level="warning",
                                           server_header=False))
    await server.serve(sockets=[sock])


if __name__ == "__main__":
    run_loop(main())
