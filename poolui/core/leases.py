"""Claim leases: a claim that carries one ends when its holder stops renewing it, so a holder that died
or lost the answer never holds a sandbox until its TTL. A lease never outlives the sandbox's own TTL.

The lease is an attribute of the claim, not a member state: setting it is done here; ending a claim whose
lease ran out is the Pool's (refill.scan_deadlines finds it, Pool.lease_expired ends it).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..bounds import MAX_LEASE, MIN_LEASE
from ..errors import ClaimEnded, InvalidRequest, SandboxNotFound
from .member import Member
from .model import Lease, MemberState

if TYPE_CHECKING:
    from .pool import Pool


def check(lease: float | None) -> None:
    """InvalidRequest unless lease is None or a number of seconds in the allowed range."""
    if lease is None:
        return
    if isinstance(lease, bool) or not isinstance(lease, int | float) or not math.isfinite(lease) \
            or not MIN_LEASE <= lease <= MAX_LEASE:
        raise InvalidRequest(f"lease = {lease!r} is not allowed: expected a number of seconds from {MIN_LEASE:g} "
                             f"to {MAX_LEASE:g}")


def start(pool: Pool, m: Member, lease: float | None) -> None:
    """Give m's new claim its lease (the pool's claim_lease when none was asked for; None: no lease)."""
    lease = pool.cfg.claim_lease if lease is None else lease
    m.lease = lease
    if lease is None:
        m.lease_mono, m.lease_expires_at = math.inf, None
        return
    _extend(pool, m, lease)


def clear(m: Member) -> None:
    m.lease, m.lease_mono, m.lease_expires_at = None, math.inf, None


def _extend(pool: Pool, m: Member, lease: float) -> None:
    now = pool.clock.monotonic()
    until = min(now + lease, m.expires_mono)
    m.lease_mono = until
    m.lease_expires_at = pool.clock.time() + (until - now)
    m.view = None
    pool.store.set_state(m)  # a restarted controller still ends a claim its holder abandoned
    if until < pool.next_scan:
        pool.next_scan = until
        pool.kick()


def renew(pool: Pool, member_id: str, lease: float | None) -> Lease:
    """Extend the claim on member_id by `lease` seconds (default: the claim's own lease length).

    SandboxNotFound for an id the pool never had; ClaimEnded when the claim is over (released, lease run
    out, terminated); InvalidRequest when the sandbox is not claimed or the claim has no lease to renew."""
    check(lease)
    m = pool.members.get(member_id)
    if m is None or m.state in (MemberState.TERMINATING, MemberState.GONE):
        why = pool.recently_gone.get(member_id) or (m.reason if m is not None else None)
        if why is None:
            raise SandboxNotFound(f"pool '{pool.name}' has no sandbox '{member_id}'")
        raise ClaimEnded(f"the claim on sandbox '{member_id}' has ended ({why}); claim another", reason=why)
    if m.state is not MemberState.CLAIMED:
        raise InvalidRequest(f"sandbox '{member_id}' is {m.state.value}, not claimed: nothing to renew")
    length = lease if lease is not None else m.lease
    if length is None:
        raise InvalidRequest(f"the claim on sandbox '{member_id}' has no lease: give one to renew with (lease=...)")
    m.lease = length
    _extend(pool, m, length)
    assert m.lease_expires_at is not None
    return Lease(m.id, pool.name, m.lease_expires_at, m.expires_at, m.claim_key)
