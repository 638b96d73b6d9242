"""Giving back, by claim key, the claims a client asked for but could not receive.

When a claim call fails after its request may have reached the server (the caller cancelled it, the
connection dropped, the answer came too late), the server may have made the claim and even written its
answer. The client then releases that claim key in the background, with bounded retries; a key the server
never saw is a harmless no-op there. Together with the server's own rollback for a client that left before
the answer (server/claims.py) and leases, no claim is left held by nobody.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from . import backoff
from .errors import PoolError, PoolNotFound

log = logging.getLogger("poolui.client")
TRIES = 4  # with 0.2, 0.4, 0.8 s between them: a server restarting for a few seconds is waited out
FINISH_WITHIN = 5.0  # how long closing a client waits for rollbacks still running


class Rollbacks:
    def __init__(self, release_claim: Callable[[str, str], Awaitable[bool]]) -> None:
        self._release_claim = release_claim
        self._running: set[asyncio.Task[None]] = set()
        self.done = 0  # claims found and given back
        self.failed = 0  # given up on after every try

    def give_back(self, pool: str, claim_key: str) -> None:
        """Release `claim_key` in the background (started at once, even from a cancelled caller)."""
        task = asyncio.get_running_loop().create_task(self._run(pool, claim_key), name=f"rollback-{claim_key}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, pool: str, claim_key: str) -> None:
        retry = backoff.Backoff(0.2, 2.0)
        for attempt in range(TRIES):
            try:
                if await self._release_claim(pool, claim_key):
                    self.done += 1
                    log.info("gave back claim %s of pool %s, whose answer this client did not get", claim_key, pool)
                return
            except PoolNotFound:
                return
            except PoolError as e:
                if attempt == TRIES - 1:
                    self.failed += 1
                    log.warning("could not give back claim %s of pool %s: %s (its lease or TTL ends it)",
                                claim_key, pool, e)
                    return
            await asyncio.sleep(retry.failed())

    async def finish(self) -> None:
        """Wait for the rollbacks still running, at most FINISH_WITHIN seconds."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=FINISH_WITHIN)
