"""What the engine asks of the place a pool's state is kept (StateStore), and the row it gets back.

Two implementations: store.Store, SQLite in the state directory, the one durable store (a controller that
restarts adopts what its rows describe); store_memory.MemoryStore, the same rows in this process only, for
the simulator and tests. The manager alone picks one (PoolManager's `store`); the pool and its parts
(claims, leases, opening, bringup) see only this interface.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from .member import Member
from .model import Event


@dataclass
class StoredMember:
    """A member as it was last written: what a restarted controller adopts from (adoption.py)."""

    id: str
    pool: str
    state: str
    revision: str
    created_at: float
    ready_at: float | None
    claimed_at: float | None
    expires_at: float
    url: str
    ref: dict[str, Any]
    claim_key: str | None
    lease: float | None = None
    lease_expires_at: float | None = None
    token_hash: str | None = None


# The event log a store keeps is the pool's history past a restart: what the console's event log shows,
# what `events --follow` resumes from (Last-Event-ID: the bus goes on numbering past every number given),
# and what `events --format trace` makes a claim trace of (each 'claimed' event and what ends its claim:
# released, lease_expired, returned, terminating; claims that timed out; every pool-level event). The steps
# of a member's way up and out (created, starting, ready, terminated) are not kept on disk: the member rows
# say where each member is, and live subscribers get those events all the same. They were most of the rows
# written per claim (7 for a single-use claim and its replacement, now 2). Being history, not state, they
# are written within a tenth of a second rather than in each claim's commit (store.Store.add_event).
NOT_KEPT = frozenset({"created", "starting", "ready", "terminated"})


class StateStore(Protocol):
    """One row per member, written before its provider is asked (record before create), and a bounded
    event log. Writes are cheap and may be grouped; `durable` and `commit_now` say when they are kept."""

    def put(self, m: Member) -> None:
        """Write m's whole row (a new member, or one whose sandbox or URL changed)."""
        ...

    def set_state(self, m: Member) -> None:
        """Write m's state and its claim's fields (claim key, lease, token hash)."""
        ...

    def delete(self, member_id: str) -> None:
        """The member is gone: nothing is left to adopt."""
        ...

    def members(self, pool: str) -> list[StoredMember]:
        """The rows of one pool, oldest first."""
        ...

    def add_event(self, e: Event) -> None:
        """Keep an event (the bus's sink), bounded: the oldest go first."""
        ...

    def events(self, pool: str | None = None, limit: int = 200) -> list[Event]:
        """The last `limit` events kept (of one pool, or all), oldest first."""
        ...

    async def durable(self) -> None:
        """Return once everything written so far is kept."""
        ...

    async def commit_now(self) -> None:
        """Keep what was written so far before returning, without yielding to the loop when it can."""
        ...

    def close(self) -> None:
        """Keep what was written and let go of the store."""
        ...


def row_of(m: Member) -> StoredMember:
    """m as a row (what put writes); the ref goes through JSON as SQLite's does, so a row read back from
    either store is the same."""
    sb = m.sandbox
    ref = json.loads(json.dumps(sb.ref)) if sb else {}
    return StoredMember(m.id, m.pool, m.state.value, m.revision, m.created_at, m.ready_at, m.claimed_at,
                        m.expires_at, sb.url if sb else "", ref, m.claim_key, m.lease, m.lease_expires_at, m.token_hash)
