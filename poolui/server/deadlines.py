"""Read deadlines for `poolui serve`'s HTTP connections: a client that is slow or silent is dropped.

uvicorn drops an idle keep-alive connection after `timeout_keep_alive`, but that timer only runs between
a response and the next request's first byte: a connection that never sends a byte, or sends its
headers or its body a byte at a time, is kept for ever, each one a socket and a parser, so a few
thousand of them take the server's descriptors. Here uvicorn's own protocol (httptools) gets two
deadlines of its own:
- header_timeout: from the connection's start, and again from the end of each response, until the next
  request's headers are whole. Past it a client that had begun a request gets a 408, then the close.
- body_timeout: from the end of a request's headers until its body is whole. Past it the connection is
  closed, and the handler waiting for the body sees the client gone.
Neither runs while a response is being made or streamed (an exec, /events), however long it takes.

The protocol also writes a response's head and its body in one write (JoinedWrites): uvicorn writes them
apart, two syscalls and, with TCP_NODELAY, two segments for an answer of a few hundred bytes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config import ServerConfig


class JoinedWrites:
    """A connection's transport whose response heads wait for what follows them: the head is kept until the
    next write (the body, usually in the same turn) and goes out with it; should nothing follow in this turn
    (a stream that has nothing yet, a HEAD answer), it goes out alone at the next. Writes keep their order;
    everything else is the transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        """Send data, after a head kept back; a response's head (not a 1xx) is itself kept back."""
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif data[:9] == b"HTTP/1.1 " and data[9:10] != b"1" and data[-4:] == b"\r\n\r\n":
            self._head = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send a head still kept back."""
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        """Close after what was kept back (a 400 or 408 written, then the connection closed)."""
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class DeadlineProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a header and a body deadline (made by `deadline_protocol`)."""

    header_timeout = ServerConfig.header_timeout  # the pool file's [server] defaults
    body_timeout = ServerConfig.body_timeout

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._begun = False  # a request's first byte has come, its headers not all

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = JoinedWrites(transport, self.loop)  # type: ignore[assignment]  # the same interface
        self._arm(self.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True

    def on_headers_complete(self) -> None:
        self._begun = False
        super().on_headers_complete()
        self._arm(self.body_timeout, self._body_late)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._idle():
            self._arm(self.header_timeout, self._headers_late)

    def _idle(self) -> bool:
        """No request is being answered (a pipelined one may have started in on_response_complete)."""
        return self.cycle is None or self.cycle.response_complete

    def _arm(self, seconds: float, then: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, then)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or not self._idle():
            return
        if self._begun:  # nothing else is being written on this connection: a 408 says why it ends
            body = json.dumps({"error": "request_timeout", "detail": "the request's headers did not all come "
                               f"within {self.header_timeout:g}s ([server] header_timeout)"}).encode()
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        self.transport.close()

    def _body_late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()  # the handler reading the body gets http.disconnect


def deadline_protocol(header_timeout: float, body_timeout: float) -> type[DeadlineProtocol]:
    """The protocol class for uvicorn.Config(http=...), with these deadlines in seconds."""
    return type("DeadlineProtocol", (DeadlineProtocol,), {"header_timeout": header_timeout,
                                                           "body_timeout": body_timeout})
