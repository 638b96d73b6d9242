"""A small HTTP/1.1 keep-alive client for PoolClient's request/answer calls.

httpx costs several hundred microseconds of Python per request, more than the server's whole claim path
now; a claim's round trip needs none of what that buys (redirects, cookies, proxies, HTTP/2). This keeps a
set of open connections, writes one request, reads one answer (Content-Length or chunked), and puts the
connection back. A connection whose request was cancelled or timed out is closed, never reused: that is
also what tells the server its client left (server/claims.py gives such a claim back). The events stream
and test transports stay on httpx.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

IDLE_FOR = 4.0  # below uvicorn's 5 s keep-alive: never reuse a connection the server is about to close
MAX_HEAD = 64 * 1024


class Broken(Exception):
    """The connection failed, or the server closed it before its answer was whole."""


@dataclass(eq=False)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self, now: float) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof() and now - self.idle_since < IDLE_FOR

    def close(self) -> None:
        self.writer.close()


class Http11:
    """Requests to one server over kept-alive connections (at most `limit` open at once)."""

    def __init__(self, url: str, headers: dict[str, str], limit: int = 100) -> None:
        u = urlsplit(url)
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.tls = u.scheme == "https"
        self._ssl: ssl.SSLContext | None = None
        self._host_header = u.netloc.rsplit("@", 1)[-1]  # never user:password, should the URL carry one
        self._prefix = u.path.rstrip("/")  # a server behind a path (https://host/poolui)
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._idle: deque[_Conn] = deque()
        self._slots = asyncio.Semaphore(limit)
        self._open: set[_Conn] = set()

    async def _connect(self) -> _Conn:
        if self.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()  # loaded once, and only for https
        reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self._ssl, limit=MAX_HEAD)
        conn = _Conn(reader, writer)
        self._open.add(conn)
        return conn

    def _take(self) -> _Conn | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable(now):
                return conn
            self._drop(conn)
        return None

    def _drop(self, conn: _Conn) -> None:
        self._open.discard(conn)
        conn.close()

    async def request(self, method: str, target: str, body: bytes | None) -> tuple[int, bytes]:
        """(status, body). Broken when the connection fails; the caller's cancel or timeout closes it."""
        head = (f"{method} {self._prefix}{target} HTTP/1.1\r\nhost: {self._host_header}\r\n{self._fixed}"
                f"content-length: {len(body or b'')}\r\n"
                + ("content-type: application/json\r\n" if body else "") + "\r\n").encode("latin-1")
        async with self._slots:
            for attempt in (1, 2):
                reused = self._take() if attempt == 1 else None  # the retry: always a new connection
                conn = reused or await self._connect()
                done = keep = False
                try:
                    conn.writer.write(head + (body or b""))
                    status, answer, keep = await _read_answer(conn.reader)
                    done = True
                    return status, answer
                except _NoAnswer as e:
                    # A kept-alive connection the server closed as we sent: not one byte of an answer came
                    # back. Once more on a new connection (a claim carries its claim key, so even a request
                    # the server did read gives back the same claim).
                    if reused is not None:
                        continue
                    raise Broken(f"the server closed the connection without answering ({e})") from None
                except asyncio.IncompleteReadError as e:
                    raise Broken(f"the connection closed mid-answer ({len(e.partial)} bytes in)") from None
                except (OSError, ValueError, asyncio.LimitOverrunError) as e:
                    raise Broken(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from None
                finally:
                    if done and keep:
                        conn.idle_since = time.monotonic()
                        self._idle.append(conn)
                    else:
                        self._drop(conn)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close every connection, idle or not."""
        for conn in list(self._open):
            self._drop(conn)
        self._idle.clear()


class _NoAnswer(Exception):
    """Nothing at all came back: the connection ended (or was reset) before the answer's first byte."""


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise
        raise _NoAnswer("end of stream") from None
    except ConnectionResetError as e:
        raise _NoAnswer(str(e) or "reset") from None
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    keep = headers.get("connection", "").lower() != "close"
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return status, await _read_chunked(reader), keep
    return status, await reader.readexactly(int(headers.get("content-length", "0"))), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return bytes(out)
        out += await reader.readexactly(size)
        await reader.readexactly(2)
