"""Reuse pools (reuse = true): a released sandbox is reset and handed out again, up to max_uses claims.

The reset is the provider's: the claim's processes killed (locally the server too, started again fresh),
the places it could write wiped and checked, then the pool's `reset` command run, and readiness probed
again. Whatever fails
or takes longer than reset_timeout terminates the sandbox instead: nothing of one claim (files, env,
processes) may reach the next. The claim's env and token live in the engine only and end with the
claim (claim_scope.py). A member being reset is "starting": it counts as on its way to ready.

Sizing: a member out on a claim that will be reset when released is expected back, and counts toward the
target like a ready one (refill.py); else every claim would start a replacement, and every reset would
leave the pool over target with the reset one trimmed. So with more concurrent claims than the target, and
on_empty = "wait", claimers wait for a reset instead of a create; a member that will not come back (its
last use, too little TTL left) is replaced as soon as it is claimed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from . import leases
from .member import Member
from .model import MemberState

if TYPE_CHECKING:
    from .pool import Pool


def not_reused(pool: Pool, m: Member) -> str | None:
    """Why m, once released, is terminated rather than reset for another claim (None: it is reset). The
    reason is the one its events and `recently_gone` give."""
    r = pool.cfg.reuse
    if r is None or m.sandbox is None or not hasattr(pool.provider, "reset"):
        return "released"
    if pool.mode != "normal" or pool.stopping:
        return f"released while the pool is {'stopping' if pool.stopping else pool.mode}"
    if m.uses >= r.max_uses:
        return f"released after its last use (max_uses = {r.max_uses})"
    if pool.ttl_left(m) <= pool.cfg.min_remaining_ttl + r.reset_timeout:
        return "released with too little TTL left for a reset and another claim"
    return None


def coming_back(pool: Pool) -> int:
    """Members out on claims that will be reset and come back when released (0 in a single-use pool).
    A walk over the members, but only in reuse pools, whose members are few (max_total)."""
    if pool.cfg.reuse is None:
        return 0
    return sum(1 for m in pool.members.values() if m.state is MemberState.CLAIMED and not_reused(pool, m) is None)


def forget_claim(m: Member) -> None:
    m.claimed_at, m.claim_key = None, None
    leases.clear(m)


def trim_order(pool: Pool) -> list[Member]:
    """The members a reuse pool over its target retires first: creates still under way (newest first:
    the least spent on), then idle ones with the fewest claims left (most uses, then least TTL), then ones
    being reset, in the same order. Each is ranked by its real age and uses, never by when its last reset
    ended (that ranked the one just reset as the newest, and trimmed it first)."""
    def worn(m: Member) -> tuple[int, float]:
        return -m.uses, m.expires_mono

    starting = [m for m in pool.members.values() if m.state is MemberState.STARTING and not m.doomed]
    creating = [m for m in pool.members.values() if m.state is MemberState.CREATING and not m.doomed]
    fresh = sorted(creating + [m for m in starting if not m.uses], key=lambda m: -m.created_mono)
    resetting = sorted((m for m in starting if m.uses), key=worn)
    return fresh + sorted(pool.handout.members(), key=worn) + resetting


async def reset(pool: Pool, m: Member) -> None:
    r = pool.cfg.reuse
    assert r is not None and m.sandbox is not None
    began = pool.clock.monotonic()  # created_mono stays: the trim and the hand-out order go by true age
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
    pool.became_ready(m, reset_began=began)
