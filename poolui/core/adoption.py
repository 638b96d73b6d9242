"""What a new manager does with what the last one left: a pure plan from the stored rows, what the
provider finds running, the time and the pool's config (so it can be tested with plain data)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config import PoolConfig
from ..providers.base import Sandbox
from .member import Member
from .model import MemberState
from .store_api import StoredMember


@dataclass
class Keep:
    row: StoredMember
    sandbox: Sandbox
    left: float  # seconds of TTL left


@dataclass
class AdoptionPlan:
    keep: list[Keep] = field(default_factory=list)  # adopted: ready and claimed ones still good
    kill: list[Sandbox] = field(default_factory=list)  # running but not to keep (strays, expired, stale)
    lost: list[StoredMember] = field(default_factory=list)  # recorded but not running any more


def plan_adoption(rows: list[StoredMember], live: list[Sandbox], now: float, cfg: PoolConfig) -> AdoptionPlan:
    """Claimed members stay claimed while their TTL lasts; ready ones are kept only when made from the
    current config with at least min_remaining_ttl left; everything else running is killed."""
    known = {r.id: r for r in rows}
    plan = AdoptionPlan()
    seen: set[str] = set()
    for sb in live:
        seen.add(sb.member_id)
        row = known.get(sb.member_id)
        left = (sb.expires_at or (row.expires_at if row else 0)) - now
        keep = row is not None and row.state in (MemberState.READY.value, MemberState.CLAIMED.value) and left > 0
        if keep and row is not None and row.state == MemberState.READY.value:
            keep = row.revision == cfg.revision and left >= cfg.min_remaining_ttl
        if keep and row is not None:
            plan.keep.append(Keep(row, sb, left))
        else:
            plan.kill.append(sb)
    plan.lost = [r for r in rows if r.id not in seen]
    return plan


def adopted_member(k: Keep, pool: str, now_wall: float, now_mono: float) -> Member:
    """The member a kept sandbox becomes, its TTL carried over onto this process's monotonic clock."""
    row = k.row
    return Member(
        id=row.id, pool=pool, revision=row.revision, state=MemberState(row.state),
        created_at=row.created_at, ready_at=row.ready_at, claimed_at=row.claimed_at,
        expires_at=now_wall + k.left, expires_mono=now_mono + k.left,
        created_mono=now_mono - (now_wall - row.created_at), sandbox=k.sandbox, claim_key=row.claim_key,
        adopted=True, holders=1 if row.state == MemberState.CLAIMED.value else 0,
        lease=row.lease, lease_expires_at=row.lease_expires_at, token_hash=row.token_hash,
        lease_mono=now_mono + (row.lease_expires_at - now_wall) if row.lease_expires_at is not None else math.inf,
    )
