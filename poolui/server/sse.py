"""GET /events: server-sent events of every state change.

Each client has its own bounded queue filled synchronously by the event bus, so the pool never waits for a
client. A client that falls so far behind that its queue overflows, or whose socket stops taking writes for
`write_timeout`, is dropped: it gets a final `dropped` event when it can still take one, and can reconnect
with Last-Event-ID to continue from the server's recent-events buffer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from ..control import EventFeed
from ..core.model import Event
from .claims import wait_disconnect
from .state import ServerState

log = logging.getLogger("poolui.server")


def encode(event: Event) -> bytes:
    data = json.dumps(event.to_dict(), separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n".encode()


class EventStream:
    def __init__(self, state: ServerState, feed: EventFeed, pool: str | None, last_id: int | None) -> None:
        """feed: subscribed before the backlog is read, so no event falls between the two."""
        self.control = state.control
        self.feed = feed
        self.pool = pool
        self.last_id = last_id
        self.queue_size = state.options.events_queue
        self.write_timeout = state.options.events_write_timeout
        self.heartbeat = state.options.events_heartbeat
        self.stopping = state.options.stopping
        self.stats = state.stats

    async def _write(self, send: Send, body: bytes, more: bool = True) -> bool:
        """False when the client did not take the write in time (it is then dropped)."""
        message: Message = {"type": "http.response.body", "body": body, "more_body": more}
        try:
            async with asyncio.timeout(self.write_timeout):
                await send(message)
        except TimeoutError:
            return False
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.stats.open += 1
        gone = asyncio.ensure_future(wait_disconnect(receive))
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
            ]})
            outcome = await self._stream(send, gone, stop)
            if outcome == "stalled":
                self.stats.dropped += 1
                log.warning("events client %s dropped: its socket took no writes for %gs", _peer(scope),
                            self.write_timeout)
                return  # the server closes the connection; the response stays incomplete on purpose
            if outcome == "ended" and not gone.done():
                await self._write(send, b"", more=False)
        finally:
            await self.feed.aclose()
            gone.cancel()
            stop.cancel()
            self.stats.open -= 1

    async def _stream(self, send: Send, gone: asyncio.Future[Any], stop: asyncio.Future[Any]) -> str:
        """Writes events until the client leaves or the server stops ("ended"), the client is dropped for
        falling behind ("closed", final event sent) or its socket stalls ("stalled")."""
        seen = 0
        if self.last_id is not None:
            for event in await self.control.recent_events(self.pool, limit=self.queue_size):
                if event.seq > self.last_id and (self.pool is None or event.pool == self.pool):
                    if not await self._write(send, encode(event)):
                        return "stalled"
                    seen = event.seq
        if not await self._write(send, b": connected\n\n"):
            return "stalled"
        while not gone.done() and not stop.done():
            get: asyncio.Future[Event] = asyncio.ensure_future(anext(self.feed))
            try:
                await asyncio.wait({get, gone, stop}, timeout=self.heartbeat,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not get.done():
                    get.cancel()
            if self.feed.dropped:
                dropped = json.dumps({"dropped": self.feed.dropped, "detail": "client too slow; reconnect with "
                                      "Last-Event-ID to continue from the recent-events buffer"})
                await self._write(send, f"event: dropped\ndata: {dropped}\n\n".encode(), more=False)
                self.stats.dropped += 1
                log.warning("events client dropped: %d events behind", self.feed.dropped)
                return "closed"
            if get.done() and not get.cancelled():
                event = get.result()
                if event.seq <= seen or (self.pool is not None and event.pool != self.pool):
                    continue
                if not await self._write(send, encode(event)):
                    return "stalled"
            elif not gone.done() and not stop.done() and not await self._write(send, b": keep-alive\n\n"):
                return "stalled"
        return "ended"


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"
