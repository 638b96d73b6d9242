"""The event bus: every state change goes to each subscriber's bounded queue; a slow one loses its oldest."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

from .model import Event


class Subscription:
    def __init__(self, bus: EventBus, size: int) -> None:
        self._bus = bus
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=size)
        self.dropped = 0

    def put(self, event: Event) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            while True:
                yield await self.queue.get()
        finally:
            self.close()

    def close(self) -> None:
        self._bus._subs.discard(self)


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

    def subscribe(self, size: int = 1000) -> Subscription:
        sub = Subscription(self, size)
        self._subs.add(sub)
        return sub
