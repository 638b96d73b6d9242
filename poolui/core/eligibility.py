"""The rules for handing a member out, written once for the claim, the deadline scan and maintenance."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import PoolConfig
from .member import Member

STALE, EXPIRING, UNHEALTHY, EXITED = "stale", "expiring", "unhealthy", "exited"


@dataclass(frozen=True)
class Verdict:
    kind: str  # stale | expiring | unhealthy | exited: the bucket a maintenance report puts it in
    reason: str  # what the terminating event says


def verdict(m: Member, cfg: PoolConfig, ttl_left: float, alive: bool | None) -> Verdict | None:
    """None when m may be handed out now, else why not. `alive` None: not asked (the deadline scan leaves
    the provider out: deaths reach it through on_exit, and every claim still asks)."""
    if m.revision != cfg.revision:
        return Verdict(STALE, "made from an old config revision")
    if ttl_left < cfg.min_remaining_ttl:
        return Verdict(EXPIRING, "less than min_remaining_ttl left")
    if m.health_ok is False:
        return Verdict(UNHEALTHY, f"failed its last health check ({m.health_detail})")
    if alive is False:
        return Verdict(EXITED, "its sandbox has exited")
    return None
