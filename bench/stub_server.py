"""The HTTP layer alone, for bench/http_claims.py --stub: `poolui serve`'s own app (fast path, token check,
read deadlines, joined writes, uvicorn and uvloop as `poolui serve` runs them) in front of a stub engine
that answers every claim and release at once, with nothing behind it.

    .venv/bin/python bench/stub_server.py TOKEN   # prints "serving http://127.0.0.1:PORT" and serves until killed

Between the bare app (bench/bare_server.py) and this one is what poolui's HTTP layer costs; between this one
and `poolui serve` is what the engine costs.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from poolui.core.model import Claim
from poolui.server.app import create_app
from poolui.server.deadlines import deadline_protocol
from poolui.server.run import bind, freeze_heap, run_loop


class StubEngine:
    """Just what the fast path asks of the control contract for a warm claim and a release."""

    def has_ready(self, pool: str) -> bool:
        return True

    async def claim(self, pool: str, **_: Any) -> Claim:
        return Claim("pu-0123456789", pool, f"instant://{pool}/pu-0123456789", 1.0, True, 1e-5)

    async def release(self, pool: str, sandbox_id: str) -> bool:
        return True


async def main(token: str) -> None:
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(StubEngine(), token), lifespan="off",  # type: ignore[arg-type]
                                           access_log=False, log_level="warning", server_header=False,
                                           http=deadline_protocol(10.0, 30.0)))  # type: ignore[arg-type]
    server.config.load()
    freeze_heap()
    print(f"serving http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    await server.serve(sockets=[sock])


if __name__ == "__main__":
    run_loop(main(sys.argv[1]))
