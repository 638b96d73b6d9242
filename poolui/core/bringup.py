"""Bringing one member up: create its sandbox, wait for readiness, and hand the outcome to the pool.

The choreography (awaits, cancellation, a member doomed while its create still ran) lives here; every
state change it causes is a synchronous call into the Pool, which alone changes member states.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .member import Member
from .model import MemberState

if TYPE_CHECKING:
    from .pool import Pool


async def bring_up(pool: Pool, m: Member, ttl: float) -> None:
    try:
        try:
            await pool.store.durable()  # record before create: the member's row is committed first
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
