"""The reconcile loop: keep a pool at its setpoint (sizing.py: the ready sandboxes its policy aims at now,
within the operator's sizes). It decides what to create and what to retire (deadlines passed, surplus over
the setpoint, a drain); the Pool carries each change out.

What counts toward the setpoint: ready members, members on their way to ready (creating, starting, being
reset), and in a reuse pool the members out on claims that will come back (reuse.coming_back).

Refill goes in batches: a deficit smaller than a batch (a quarter of the setpoint, at most REFILL_BATCH)
waits up to GATHER for more while ready members are still there and nobody waits, so under a stream of
claims the pool creates, commits and readies its new members a batch at a time (one transaction for their
new rows, one for their ready rows) instead of one or two per claim. An empty pool, a waiting claimer or a
deficit of a batch refills at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import PoolDraining
from . import reuse
from .eligibility import verdict
from .model import MemberState
from .opening import adopt_when_reachable

if TYPE_CHECKING:
    from .pool import Pool

S = MemberState
IN_FLIGHT = (S.CREATING, S.STARTING)
REFILL_BATCH = 16  # the most creates a refill waits to gather
GATHER = 0.005  # seconds a refill smaller than a batch may wait for more (measured: 2,000+ claims/s fill one)


async def reconcile_loop(pool: Pool) -> None:
    if pool.unadopted is not None:
        await adopt_when_reachable(pool, pool.unadopted)
    while True:
        pool.kicked.clear()
        wake = reconcile(pool)
        try:
            async with pool.clock.timeout(wake):
                await pool.kicked.wait()
        except TimeoutError:
            pass


def reconcile(pool: Pool) -> float:
    """Bring the pool toward what it should be; returns how long it may sleep before looking again."""
    if pool.unadopted is not None:
        return 1.0  # nothing is created before what may still be running has been accounted for
    now = pool.clock.monotonic()
    if now >= pool.next_scan:
        scan_deadlines(pool, now)
    sleep = min(1.0, pool.next_scan - now)
    if pool.mode == "draining":
        drain_step(pool)
        return sleep
    trim(pool)
    if pool.mode == "paused" or pool.stopping:
        return max(sleep, 0.001)
    if now < pool.backoff_until:
        return max(0.001, min(sleep, pool.backoff_until - now))
    cfg, in_flight = pool.cfg, pool.in_flight()
    want = pool.sizing.setpoint(cfg)
    if (moved := pool.sizing.news()) is not None:
        pool.emit("setpoint", None, moved)
    if cfg.on_empty == "create":  # each waiter gets a create of its own (a cold claim)
        want += pool.handout.waiting()
    cap = cfg.max_concurrent_creates if not pool.failures else 1  # slow start after failures
    have = len(pool.handout) + in_flight + reuse.coming_back(pool)
    n = min(want - have, cfg.max_total - pool.live(), cap - in_flight)
    if n <= 0:
        pool.refill_at = None
    elif gather := gathering(pool, n, want, now):
        return min(sleep, gather)
    for _ in range(max(0, n)):
        pool.new_member()
    return max(sleep, 0.001)


def gathering(pool: Pool, n: int, want: int, now: float) -> float:
    """How long a refill of n may still wait for more to gather (0: create now)."""
    if n >= min(REFILL_BATCH, want // 4) or not pool.handout or pool.handout.waiting():
        pool.refill_at = None
        return 0.0
    if pool.refill_at is None:
        pool.refill_at = now + GATHER
    left = pool.refill_at - now
    if left <= 0:
        pool.refill_at = None
        return 0.0
    return left


def scan_deadlines(pool: Pool, now: float) -> None:
    """Retire members past their deadlines and note when the next one falls due. Claims and releases
    do not need this walk over every member: only the passing of time (or a new member) brings a
    deadline closer, and the pool lowers next_scan for every member that becomes ready or claimed."""
    nxt = now + 1.0
    min_ttl = pool.cfg.min_remaining_ttl
    for m in list(pool.members.values()):
        if m.state is S.READY:
            v = verdict(m, pool.cfg, m.expires_mono - now, alive=None)
            if v is not None:
                pool.retire(m, v.reason)
            else:
                nxt = min(nxt, m.expires_mono - min_ttl)
        elif m.state is S.CLAIMED:
            if m.expires_mono <= now:
                pool.end_claim(m, "hard TTL reached while claimed")
            elif m.lease_mono <= now:
                pool.lease_expired(m)
            else:
                nxt = min(nxt, m.expires_mono, m.lease_mono)
    pool.next_scan = max(nxt, now + 0.001)


def trim(pool: Pool) -> None:
    """Surplus beyond the setpoint: not-ready first (newest first), then the newest idle. Never claimed ones.
    A reuse pool goes by reuse.trim_order instead: a sandbox just reset is not taken for the newest."""
    target = pool.sizing.setpoint(pool.cfg)
    have = len(pool.handout) + pool.in_flight() + reuse.coming_back(pool)
    surplus = have - target
    if pool.cfg.on_empty == "create":
        surplus -= pool.handout.waiting()
    if surplus <= 0:
        pool.lowered_target = False  # what a resize asked for is done: a later surplus has another cause
        return
    if pool.cfg.reuse is not None:
        victims = reuse.trim_order(pool)[:surplus]
    else:
        starting = [m for m in pool.members.values() if m.state in IN_FLIGHT and not m.doomed]
        victims = sorted(starting, key=lambda m: -m.created_mono)[:surplus]
        victims += pool.handout.surplus(surplus - len(victims))
    # The reason names the cause: "after resize" only when a resize lowered the target.
    why = (f"surplus after resize to target {target}" if pool.lowered_target else
           f"surplus: {have} ready{', starting or coming back from claims' if pool.cfg.reuse else ' or starting'} "
           f"for a target of {target}")
    for m in victims:
        pool.retire(m, why)


def drain_step(pool: Pool) -> None:
    pool.handout.fail_waiters(PoolDraining(f"pool '{pool.name}' is draining", reason="draining"))
    for m in list(pool.members.values()):
        if m.state in (S.READY, S.CREATING, S.STARTING, S.FAILED):
            pool.retire(m, "pool draining")
    if not pool.members and not pool.drained_said:
        pool.drained_said = True
        pool.emit("drained", None, "no sandboxes left")
