"""The event bus: every state change goes to each subscriber's bounded queue; a slow one loses its oldest."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable

from .model import Event


class Subscription:
    """One subscriber (an EventFeed of the control contract): events of one pool, or of all, from the
    moment it was made, in a bounded queue that drops the oldest when the subscriber falls behind."""

    def __init__(self, bus: EventBus, size: int, pool: str | None = None) -> None:
        self._bus = bus
        self.pool = pool
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=max(1, size))
        self.dropped = 0
        self.closed = False

    def put(self, event: Event) -> None:
        if self.pool is not None and event.pool != self.pool:
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        if self.closed and self.queue.empty():
            raise StopAsyncIteration
        return await self.queue.get()

    def close(self) -> None:
        self.closed = True
        self._bus._subs.discard(self)

    async def aclose(self) -> None:
        self.close()


class EventBus:
    """Numbers every event (seq, monotonic, also across restarts: a bus opened on a store goes on from the
    last event it kept), keeps the last `recent` in memory and hands each to the sink (the store) and to
    every subscriber."""

    def __init__(self, recent: int = 1000, sink: Callable[[Event], None] | None = None,
                 history: list[Event] | None = None, seq: int = 0) -> None:
        """history: the events a store kept, oldest first: the recent ones start from them; seq: the number
        the last event had (the next is one more)."""
        self._subs: set[Subscription] = set()
        self.recent: deque[Event] = deque(history or (), maxlen=recent)
        self._seq = max(seq, history[-1].seq if history else 0)
        self._sink = sink

    def emit(self, ts: float, pool: str, kind: str, member_id: str | None = None,
             state: str | None = None, detail: str = "") -> Event:
        self._seq += 1
        event = Event(self._seq, ts, pool, kind, member_id, state, detail)
        self.recent.append(event)
        if self._sink is not None:
            self._sink(event)
        for sub in list(self._subs):
            sub.put(event)
        return event

    def subscribe(self, size: int = 1000, pool: str | None = None) -> Subscription:
        sub = Subscription(self, size, pool)
        self._subs.add(sub)
        return sub


_WAITED = re.compile(r"(?:^| \()waited ([0-9.]+)s\)?$")


def claimed_detail(claim_key: str | None, waited: float) -> str:
    """A 'claimed' event's detail: its claim key, and how long a claim that had to wait waited (so a claim
    trace puts its arrival where it was, not where it was served)."""
    if waited <= 0:
        return claim_key or ""
    return f"{claim_key} (waited {waited:.3f}s)" if claim_key else f"waited {waited:.3f}s"


def waited_of(detail: str) -> float:
    """The wait a 'claimed' or 'claim_timed_out' event's detail tells (0 when none)."""
    found = _WAITED.search(detail.split(": ", 1)[0] if detail.startswith("waited ") else detail)
    return float(found[1]) if found else 0.0
