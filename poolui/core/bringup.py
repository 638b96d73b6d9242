"""Bringing one member up: create its sandbox, wait for readiness, and hand the outcome to the pool.

The choreography (awaits, cancellation, a member doomed while its create still ran) lives here; every
state change it causes is a synchronous call into the Pool, which alone changes member states. And what
creates that fail or work again do to the pool itself: the backoff, and being degraded or not.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .. import backoff
from .member import Member
from .model import MemberState

if TYPE_CHECKING:
    from .pool import Pool

CREATE_BACKOFF = (0.2, 30.0)  # first pause after a failed create, and the longest


def create_failed_again(pool: Pool, why: str) -> None:
    """One more create failed in a row: back off, and past create_retries the pool is degraded (said once)."""
    pool.failures += 1
    pool.metrics.create_failed(why)
    pool.backoff_until = pool.clock.monotonic() + backoff.delay(pool.failures, *CREATE_BACKOFF)
    if pool.failures >= pool.cfg.create_retries and not pool.degraded_reason:
        pool.degraded_reason = f"{pool.failures} creates failed in a row; last: {why}"
        pool.emit("degraded", None, pool.degraded_reason)
    elif pool.degraded_reason:
        pool.degraded_reason = f"{pool.failures} creates failed in a row; last: {why}"


def creates_work(pool: Pool) -> None:
    """A sandbox became ready: the failures in a row are over, and a degraded pool has recovered."""
    if pool.failures or pool.degraded_reason:
        was = pool.degraded_reason
        pool.failures, pool.backoff_until, pool.degraded_reason = 0, 0.0, ""
        if was:
            pool.emit("recovered", None, "a sandbox became ready again")


async def bring_up(pool: Pool, m: Member, ttl: float) -> None:
    try:
        try:
            await pool.store.durable()  # record before create: the member's row is written first
            sb = await pool.provider.create(m.id, ttl)
        except Exception as e:
            pool.create_failed(m, f"create failed: {e}")
            return
        if not pool.created(m, sb):
            return
        try:
            await pool.provider.wait_ready(sb, pool.cfg.readiness.timeout)
        except asyncio.CancelledError:
            if m.doomed:
                pool.kill_later(m)
                return
            raise
        except Exception as e:
            pool.create_failed(m, f"not ready: {e}")
            return
        if m.doomed:
            pool.kill_later(m)
            return
        pool.became_ready(m)
    except asyncio.CancelledError:
        # Only manager shutdown cancels a bring-up without dooming it; kill whatever was started.
        m.doomed = True
        if m.state is not MemberState.TERMINATING:
            pool.stopped_while_starting(m)
        await asyncio.shield(pool.kill(m))
        raise
    finally:
        pool.bringup_done(m)
