"""A claim, start to end: take a ready member, else wait for one with a deadline, optionally check its
health first. Every state change is a synchronous call into the Pool; this module only waits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..bounds import MAX_WAIT
from ..errors import ClaimEnded, ClaimTimeout, InvalidRequest, PoolDraining, PoolExhausted
from . import leases, reuse, use
from .member import Member
from .model import Claim

if TYPE_CHECKING:
    from .pool import Pool

REPEATED = "repeated claim_key"  # the reason of a claim handed back again for its claim key


def empty_reason(pool: Pool) -> str:
    """Why no ready member is there, as a claimer is told."""
    if pool.degraded_reason:
        return f"degraded: {pool.degraded_reason}"
    if pool.mode == "paused":
        return "pool empty and paused (no refill)"
    if pool.live() >= pool.cfg.max_total:
        return f"max_total ({pool.cfg.max_total}) sandboxes already exist"
    if reuse.coming_back(pool):  # a reuse pool at its target waits for a reset, not a create (reuse.py)
        return "all out on claims or on their way to ready (a reuse pool waits for a reset)"
    return "pool empty"


def given_up(pool: Pool, claim_key: str) -> ClaimEnded:
    """The error for a claim whose key was given back (release_claim) before the claim was made."""
    return ClaimEnded(f"pool '{pool.name}': claim key '{claim_key}' was given back (release_claim) before this "
                      "claim was made; a new claim takes a new key")


def claim_of(pool: Pool, m: Member, warm: bool, latency: float, reason: str) -> Claim:
    return Claim(m.id, pool.name, m.url, m.expires_at, warm, latency, m.claim_key, reason, m.lease_expires_at,
                 m.claim_token)


async def claim(pool: Pool, timeout: float | None, check_health: bool, claim_key: str | None,
                lease: float | None = None, env: tuple[tuple[str, str], ...] = (),
                files: dict[str, bytes] | None = None) -> Claim:
    start = pool.clock.monotonic()
    timeout = pool.cfg.claim_timeout if timeout is None else timeout
    if isinstance(timeout, bool) or not 0 <= timeout <= MAX_WAIT:
        raise InvalidRequest(f"timeout = {timeout!r} is not allowed: expected a number of seconds from 0 to "
                             f"{MAX_WAIT:g}")
    leases.check(lease)
    held = pool.handout.held(claim_key)
    if held is not None:
        if held.lease is not None or lease is not None:  # a retry means its holder is alive: renew
            leases.renew(pool, held.id, lease)
        await pool.store.durable()
        return claim_of(pool, held, warm=True, latency=0.0, reason=REPEATED)
    if claim_key is not None and pool.handout.given_up(claim_key, start):  # its client gave up on it
        raise given_up(pool, claim_key)  # nobody would receive it
    pool.sizing.claimed()  # demand, as the sizing policy sees it: every new claim, served or not
    if pool.mode == "draining":
        pool.metrics.claim("failed", None, "draining")
        raise PoolDraining(f"pool '{pool.name}' is draining: no new claims", reason="draining")
    deadline = start + timeout
    warm = True
    reason = ""
    while True:
        m = pool.take_ready(claim_key)
        if m is None:
            warm = False
            reason = reason or empty_reason(pool)
            if pool.cfg.on_empty == "fail":
                pool.metrics.claim("failed", None, reason)
                raise PoolExhausted(f"pool '{pool.name}' has no ready sandbox: {reason}", reason=reason)
            m = await wait_for_member(pool, deadline, claim_key, reason)
        if not check_health or m.sandbox is None:
            break
        try:
            result = await pool.provider.health(m.sandbox)
        except BaseException:
            pool.give_back(m)
            raise
        if result.ok:
            break
        m.health_ok, m.health_detail = False, result.detail
        pool.end_claim(m, f"failed its health check at claim: {result.detail}")
        reason = "health check at claim failed"
        if claim_key is not None and pool.handout.given_up(claim_key, pool.clock.monotonic()):
            raise given_up(pool, claim_key)  # given back while it was checked: nobody would receive the next
    if env or files:
        await use.apply_claim(pool, m, env, files or {})
    leases.start(pool, m, lease)
    try:  # answered only once a restart would find it claimed (its row is written: store.py)
        await pool.store.durable()
    except BaseException:  # an error, or a claimer cancelled while it waited
        pool.give_back(m)  # not recorded, or not received: it must not stay claimed in memory either
        raise
    if claim_key is not None and pool.handout.held(claim_key) is not m:  # release_claim ended it meanwhile
        raise given_up(pool, claim_key)
    latency = pool.clock.monotonic() - start
    pool.metrics.claim("warm" if warm else "cold", latency, reason)
    return claim_of(pool, m, warm, latency, reason)


async def wait_for_member(pool: Pool, deadline: float, claim_key: str | None, reason: str) -> Member:
    """Queue as a waiter (first come, first served) until a member is handed over or the deadline passes."""
    w = pool.handout.wait(claim_key, pool.clock.monotonic())
    pool.kick()
    try:
        async with pool.clock.timeout(max(0.0, deadline - pool.clock.monotonic())):
            return await w.fut
    except TimeoutError:
        pool.abandon(w)
        pool.metrics.claim("timed_out", None, reason)
        # logged, so a claim trace counts the demand the pool missed (sim/trace_events.py)
        pool.emit("claim_timed_out", None, f"waited {pool.clock.monotonic() - w.since:.3f}s: {reason}")
        raise ClaimTimeout(f"pool '{pool.name}': no sandbox became ready in time ({reason})", reason=reason) from None
    except BaseException:
        pool.abandon(w)
        raise
