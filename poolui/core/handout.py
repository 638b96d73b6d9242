"""The hand-out structure: which ready member goes next, who waits, which claim key holds what.

The policy lives here alone: the oldest ready member is handed out first (it has the least TTL left, so
the newest stay warm longest); a member given back unused goes to the front; surplus is taken from the
newest. It knows nothing of providers or the store and is unit-tested on its own; the Pool calls it
inside its synchronous steps, so nothing here awaits.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass

from .member import Member

# A claim key given back by release_claim before its claim was made stays refused this long: its claim's
# request may still be on its way (the client gave up while it was on the wire), and must not then make a
# claim nobody will receive. Far longer than a request takes to arrive; at most GIVEN_UP_MAX keys are kept
# (the oldest forgotten first), so no client can grow this without bound.
GIVEN_UP_FOR = 300.0
GIVEN_UP_MAX = 10_000


@dataclass(eq=False)
class Waiter:
    """One claimer waiting for a member; the pool resolves `fut`."""

    fut: asyncio.Future[Member]
    claim_key: str | None
    since: float = 0.0  # monotonic: when it began to wait


class Handout:
    def __init__(self) -> None:
        self._ready: OrderedDict[str, Member] = OrderedDict()  # the next one handed out first
        self._waiters: deque[Waiter] = deque()
        self._by_key: dict[str, Member] = {}
        self._given_up: OrderedDict[str, float] = OrderedDict()  # claim key -> monotonic end of its refusal

    # ------------------------------------------------------------ ready members

    def __len__(self) -> int:
        return len(self._ready)

    def __contains__(self, member_id: object) -> bool:
        return member_id in self._ready

    def __iter__(self) -> Iterator[str]:
        return iter(self._ready)

    def members(self) -> list[Member]:
        """Ready members in hand-out order."""
        return list(self._ready.values())

    def add(self, m: Member) -> None:
        """A member that just became ready: handed out after every one already waiting to be."""
        self._ready[m.id] = m

    def give_back(self, m: Member) -> None:
        """A member that went out and came back unused: handed out next."""
        self._ready[m.id] = m
        self._ready.move_to_end(m.id, last=False)

    def take(self) -> Member | None:
        """The next member to hand out, removed from the ready set (None when there is none)."""
        if not self._ready:
            return None
        return self._ready.popitem(last=False)[1]

    def remove(self, member_id: str) -> None:
        self._ready.pop(member_id, None)

    def surplus(self, n: int) -> list[Member]:
        """The n ready members to retire when there are too many: the newest idle first."""
        if n <= 0:
            return []
        return sorted(self._ready.values(), key=lambda m: -(m.ready_at or 0))[:n]

    def order_by_ready_time(self) -> None:
        """After adoption: ready members in the order they became ready."""
        self._ready = OrderedDict((m.id, m) for m in sorted(self._ready.values(), key=lambda m: m.ready_at or 0))

    # ------------------------------------------------------------ waiters

    def wait(self, claim_key: str | None, since: float = 0.0) -> Waiter:
        w = Waiter(asyncio.get_running_loop().create_future(), claim_key, since)
        self._waiters.append(w)
        return w

    def next_waiter(self) -> Waiter | None:
        """The longest-waiting claimer still waiting (first come, first served), removed from the queue."""
        while self._waiters:
            w = self._waiters.popleft()
            if not w.fut.done():
                return w
        return None

    def forget_waiter(self, w: Waiter) -> None:
        try:
            self._waiters.remove(w)
        except ValueError:
            pass

    def waiting(self) -> int:
        """Claimers waiting now."""
        return sum(1 for w in self._waiters if not w.fut.done())

    def longest_wait(self, now: float) -> float | None:
        """How long the first claimer still waiting has waited (None: nobody waits). Waiters queue in
        arrival order, so it is the first one not yet served."""
        for w in self._waiters:
            if not w.fut.done():
                return max(0.0, now - w.since)
        return None

    def fail_waiters(self, error: BaseException) -> None:
        """Every waiting claimer gets `error`; the queue is emptied."""
        for w in self._waiters:
            if not w.fut.done():
                w.fut.set_exception(error)
        self._waiters.clear()

    # ------------------------------------------------------------ claim keys

    def held(self, claim_key: str | None) -> Member | None:
        """The member a claim key holds now, if any."""
        return self._by_key.get(claim_key) if claim_key is not None else None

    def hold(self, claim_key: str, m: Member) -> None:
        self._by_key[claim_key] = m

    def unhold(self, m: Member) -> None:
        """The member's claim key no longer holds it."""
        if m.claim_key is not None and self._by_key.get(m.claim_key) is m:
            del self._by_key[m.claim_key]

    def give_up(self, claim_key: str, now: float) -> list[Waiter]:
        """The key's claimer is gone: a claim with it is refused for GIVEN_UP_FOR seconds. Returns the
        claimers waiting with this key (removed from the queue), for the caller to end."""
        self._given_up.pop(claim_key, None)
        self._given_up[claim_key] = now + GIVEN_UP_FOR
        while self._given_up and (len(self._given_up) > GIVEN_UP_MAX or next(iter(self._given_up.values())) <= now):
            self._given_up.popitem(last=False)
        ended = [w for w in self._waiters if w.claim_key == claim_key and not w.fut.done()]
        for w in ended:
            self._waiters.remove(w)
        return ended

    def given_up(self, claim_key: str | None, now: float) -> bool:
        """Whether a claim with this key must be refused (give_up, not yet expired)."""
        until = self._given_up.get(claim_key) if claim_key is not None else None
        return until is not None and until > now
