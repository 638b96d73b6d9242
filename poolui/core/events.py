"""The event bus: every state change goes to each subscriber's bounded queue; a slow one loses its oldest."""

from __future__ import annotations

import asyncio
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
    def __init__(self, recent: int = 1000, sink: Callable[[Event], None] | None = None) -> None:
        self._subs: set[Subscription] = set()
        self.recent: deque[Event] = deque(maxlen=recent)
        self._seq = 0
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
