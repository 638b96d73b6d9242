"""A store in this process only: the same rows and events as the SQLite store, nothing on disk.

For the simulator and tests: a manager given it (`PoolManager(cfg, store="memory")`) takes no directory
lock, writes no state file, and marks its sandboxes with a namespace of its own, so it never adopts or
kills another manager's. What it holds ends with the process: a restart adopts nothing.
"""

from __future__ import annotations

from collections import deque

from .member import Member
from .model import Event
from .store_api import StoredMember, row_of


class MemoryStore:
    """StateStore (store_api.py) in a dict; every write is kept at once, so durable() never waits."""

    def __init__(self, max_events: int = 10_000) -> None:
        self.rows: dict[str, StoredMember] = {}
        self._events: deque[Event] = deque(maxlen=max_events)
        self.commits = 0  # writes kept, as the SQLite store counts its commits

    def put(self, m: Member) -> None:
        """Keep m's whole row."""
        self.rows[m.id] = row_of(m)
        self.commits += 1

    def set_state(self, m: Member) -> None:
        """Keep m's state and claim fields; a member with no row (gone meanwhile) stays without one, as an
        UPDATE of a deleted row changes nothing."""
        row = self.rows.get(m.id)
        if row is None:
            return
        row.state, row.ready_at, row.claimed_at, row.claim_key = m.state.value, m.ready_at, m.claimed_at, m.claim_key
        row.lease, row.lease_expires_at, row.token_hash = m.lease, m.lease_expires_at, m.token_hash
        self.commits += 1

    def delete(self, member_id: str) -> None:
        """Forget a member's row."""
        self.rows.pop(member_id, None)
        self.commits += 1

    def members(self, pool: str) -> list[StoredMember]:
        """One pool's rows, oldest first."""
        return sorted((r for r in self.rows.values() if r.pool == pool), key=lambda r: r.created_at)

    def add_event(self, e: Event) -> None:
        """Keep an event under the bus's number (every kind: the simulator's accounting reads them all);
        the oldest go first."""
        self._events.append(e)

    def events(self, pool: str | None = None, limit: int = 200) -> list[Event]:
        """The last `limit` events (of one pool, or all), oldest first."""
        picked = [e for e in self._events if not pool or e.pool == pool]
        return picked[-limit:] if limit > 0 else []

    async def durable(self) -> None:
        """At once: every write is kept when made."""

    async def commit_now(self) -> None:
        """At once, without yielding: every write is kept when made."""

    def close(self) -> None:
        """Nothing to let go of; the rows stay readable for whoever holds the store."""
