"""Reuse pools (reuse = true): a released sandbox is reset and handed out again, up to max_uses claims.

The reset is the provider's: every process but the sandbox's own server killed, the work directory (and
a private /tmp) wiped, then the pool's `reset` command run, and readiness probed again. Whatever fails
or takes longer than reset_timeout terminates the sandbox instead: nothing of one claim (files, env,
processes) may reach the next. The claim's env and token live in the engine only and end with the
claim (claim_scope.py). A member being reset is "starting": it counts as on its way to ready.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from . import leases
from .member import Member

if TYPE_CHECKING:
    from .pool import Pool


def wanted(pool: Pool, m: Member) -> bool:
    """Reset m for another claim (else it is terminated, as in a single-use pool)."""
    r = pool.cfg.reuse
    return (r is not None and m.uses < r.max_uses and m.sandbox is not None and pool.mode == "normal"
            and not pool.stopping and hasattr(pool.provider, "reset")
            and pool.ttl_left(m) > pool.cfg.min_remaining_ttl + r.reset_timeout)


def forget_claim(m: Member) -> None:
    m.claimed_at, m.claim_key = None, None
    leases.clear(m)


async def reset(pool: Pool, m: Member) -> None:
    r = pool.cfg.reuse
    assert r is not None and m.sandbox is not None
    m.created_mono = pool.clock.monotonic()  # create_to_ready then also counts the time a reset takes
    try:
        async with asyncio.timeout(r.reset_timeout):
            await pool.provider.reset(m.sandbox, r.reset)  # type: ignore[attr-defined]
        await pool.provider.wait_ready(m.sandbox, pool.cfg.readiness.timeout)
    except asyncio.CancelledError:
        if m.doomed:  # retired meanwhile (a terminate, a drain, the manager stopping)
            pool.bringup_done(m)
            pool.kill_later(m)
            return
        raise
    except Exception as e:
        pool.bringup_done(m)  # so the retire below kills it at once
        pool.metrics.reset_failures += 1
        pool.retire(m, f"reset failed: {type(e).__name__ if not str(e) else e}")
        return
    pool.bringup_done(m)
    if m.doomed:
        pool.kill_later(m)
        return
    pool.metrics.resets += 1
    pool.became_ready(m)
