"""A member and a pool as the outside sees them (MemberView, PoolSnapshot): what snapshots, the server,
the console and `check` show."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import cost
from .member import Member
from .model import MemberState, MemberView, PoolSnapshot, PoolState

if TYPE_CHECKING:
    from .pool import Pool


def member_view(m: Member, ttl_left: float) -> MemberView:
    """A member's view; an unchanged member keeps its view between snapshots with only ttl_left renewed,
    which keeps a snapshot of 10,000 members cheap enough for a once-a-second console tick."""
    if m.view is not None:
        m.view.ttl_left = max(0.0, ttl_left)
        return m.view
    health = "unknown" if m.health_ok is None else "ok" if m.health_ok else "failing"
    m.view = MemberView(
        id=m.id, state=m.state.value, url=m.url, created_at=m.created_at, ready_at=m.ready_at,
        claimed_at=m.claimed_at, expires_at=m.expires_at, ttl_left=max(0.0, ttl_left),
        health=health, health_detail=m.health_detail, last_probe_at=m.last_probe_at,
        claim_key=m.claim_key, reason=m.reason, adopted=m.adopted, lease_expires_at=m.lease_expires_at,
    )
    return m.view


def pool_state(pool: Pool) -> PoolState:
    if pool.mode == "draining":
        return PoolState.DRAINED if not pool.members else PoolState.DRAINING
    if pool.mode == "paused":
        return PoolState.PAUSED
    if pool.degraded_reason:
        return PoolState.DEGRADED
    return PoolState.HEALTHY if len(pool.handout) >= pool.sizing.setpoint(pool.cfg) else PoolState.WARMING


def near_ttl(pool: Pool, now: float) -> int:
    """Ready or claimed members with less than min_remaining_ttl left: no longer handed out, or soon gone
    under their claimer (one pass over the members, like the counts a console asks for every second)."""
    edge = now + pool.cfg.min_remaining_ttl
    live = (MemberState.READY, MemberState.CLAIMED)
    return sum(1 for m in pool.members.values() if m.expires_mono < edge and m.state in live)


def _metrics(pool: Pool) -> dict[str, Any]:
    """The pool's counters, with its cost (cost.py) priced over the claims handed out, warm or cold."""
    out = pool.metrics.to_dict()
    out["cost"] = cost.report(pool.tally, pool.cfg.price_per_hour, out["claims"]["warm"] + out["claims"]["cold"])
    return out


def pool_snapshot(pool: Pool, members: bool = True) -> PoolSnapshot:
    cfg = pool.cfg
    state = pool.state()
    now = pool.clock.monotonic()
    return PoolSnapshot(
        name=pool.name, provider=cfg.provider, isolation=pool.provider.isolation,
        shield=getattr(pool.provider, "shield", None), state=state.value,
        reason=pool.degraded_reason if state is PoolState.DEGRADED else "", target_ready=cfg.target_ready,
        min_ready=cfg.min_ready, max_ready=cfg.max_ready, max_total=cfg.max_total, counts=pool.counts(),
        waiting=pool.handout.waiting(),
        members=[member_view(m, m.expires_mono - now) for m in pool.members.values()] if members else [],
        metrics=_metrics(pool),
        config={
            "ttl": cfg.ttl, "min_remaining_ttl": cfg.min_remaining_ttl, "on_empty": cfg.on_empty,
            "claim_timeout": cfg.claim_timeout, "max_concurrent_creates": cfg.max_concurrent_creates,
            "max_execs": cfg.max_execs,
            "command": list(cfg.command), "revision": cfg.revision,
            "health_interval": cfg.health.interval if cfg.health else None,
            "maintenance_interval": cfg.maintenance_interval,
        },
        taken_at=pool.clock.time(), read_only=cfg.read_only,
        longest_wait=pool.handout.longest_wait(now), near_ttl=near_ttl(pool, now),
        setpoint=pool.sizing.setpoint(cfg), sizing=pool.sizing.source,
    )
