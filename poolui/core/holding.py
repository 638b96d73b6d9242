"""`async with control.claimed(pool, lease=...) as claim:` — a claim held for the length of a block: its
lease renewed while the block runs, the claim released at the end, also when the block is cancelled.

Written once for both sides of the control contract (PoolManager and PoolClient call it with themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from ..errors import ClaimEnded, PoolError
from .model import Claim, Lease

log = logging.getLogger("poolui.claims")
RENEW_FRACTION = 1 / 3  # renew when a third of the lease has passed: two renews may fail before it ends


class Holder(Protocol):
    async def claim(self, pool: str, timeout: float | None = None, check_health: bool = False,
                    claim_key: str | None = None, lease: float | None = None) -> Claim: ...

    async def renew(self, pool: str, sandbox_id: str, lease: float | None = None) -> Lease: ...

    async def release(self, pool: str, sandbox_id: str) -> bool: ...


@contextlib.asynccontextmanager
async def claimed(holder: Holder, pool: str, timeout: float | None, check_health: bool, claim_key: str | None,
                  lease: float | None, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                  now: Callable[[], float] = time.time) -> AsyncIterator[Claim]:
    claim = await holder.claim(pool, timeout=timeout, check_health=check_health, claim_key=claim_key, lease=lease)
    keeper = None
    if claim.lease_expires_at is not None:
        length = lease if lease is not None else max(0.1, claim.lease_expires_at - now())
        keeper = asyncio.ensure_future(_keep(holder, pool, claim.id, length, sleep))
    try:
        yield claim
    finally:
        if keeper is not None:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        # Shielded: a block that was cancelled still gives its sandbox back.
        await asyncio.shield(_release(holder, pool, claim.id))


async def _keep(holder: Holder, pool: str, sandbox_id: str, length: float,
                sleep: Callable[[float], Awaitable[None]]) -> None:
    while True:
        await sleep(length * RENEW_FRACTION)
        try:
            await holder.renew(pool, sandbox_id, length)
        except ClaimEnded:
            log.warning("the claim on %s of pool %s ended while held; its lease could not be kept", sandbox_id, pool)
            return
        except PoolError as e:  # a missed renew: the next one may get through before the lease runs out
            log.warning("renewing the claim on %s of pool %s failed: %s", sandbox_id, pool, e)


async def _release(holder: Holder, pool: str, sandbox_id: str) -> None:
    try:
        await holder.release(pool, sandbox_id)
    except PoolError as e:
        log.warning("releasing %s of pool %s at the end of its block failed: %s", sandbox_id, pool, e)
