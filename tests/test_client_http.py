"""PoolClient's own HTTP/1.1 connections (poolui/client_http.py) against small real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from helpers import wait_for

from poolui.client_http import Broken, Http11

Handler = Callable[[int, int, bytes], Awaitable[bytes | None]]  # (connection no., request no. on it, head)


@dataclass
class Server:
    url: str
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> Server:
        info = Server("")

        async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            info.connections += 1
            conn, n = info.connections, 0
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(next((ln.split(b":")[1] for ln in head.split(b"\r\n")
                                       if ln.lower().startswith(b"content-length")), b"0"))
                    await reader.readexactly(length)
                    n += 1
                    info.heads.append(head)
                    answer = await handler(conn, n, head)
                    if answer is None:
                        return  # close without answering
                    writer.write(answer)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            finally:
                writer.close()

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        servers.append(server)
        info.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return info

    yield start
    for s in servers:
        s.close()
        await s.wait_closed()


def ok(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in extra)
    return f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{head}\r\n".encode() + body


async def test_keeps_one_connection_alive_and_sends_the_headers(serve: Callable[[Handler], Awaitable[Server]]) -> None:
    async def handler(conn: int, n: int, head: bytes) -> bytes:
        return ok(b'{"n": %d}' % n)

    s = await serve(handler)
    http = Http11(s.url, {"authorization": "Bearer t"})
    try:
        answers = [await http.request("POST", "/x?a=1", b'{"k": 1}') for _ in range(3)]
    finally:
        await http.aclose()
    assert answers == [(200, b'{"n": 1}'), (200, b'{"n": 2}'), (200, b'{"n": 3}')]
    assert s.connections == 1
    assert s.heads[0].startswith(b"POST /x?a=1 HTTP/1.1\r\n") and b"authorization: Bearer t\r\n" in s.heads[0]
    assert b"content-type: application/json\r\n" in s.heads[0]


async def test_a_kept_alive_connection_closed_by_the_server_is_retried_once(
    serve: Callable[[Handler], Awaitable[Server]]
) -> None:
    async def handler(conn: int, n: int, head: bytes) -> bytes | None:
        return None if n == 2 else ok(b"{}")  # each connection's second request: closed unanswered

    s = await serve(handler)
    http = Http11(s.url, {})
    try:
        assert await http.request("GET", "/a", None) == (200, b"{}")
        assert await http.request("GET", "/b", None) == (200, b"{}")  # sent on conn 1, answered on conn 2
    finally:
        await http.aclose()
    assert s.connections == 2 and [h.split(b" ")[1] for h in s.heads] == [b"/a", b"/b", b"/b"]


async def test_a_fresh_connection_closed_unanswered_is_broken(serve: Callable[[Handler], Awaitable[Server]]) -> None:
    async def handler(conn: int, n: int, head: bytes) -> None:
        return None

    s = await serve(handler)
    http = Http11(s.url, {})
    try:
        with pytest.raises(Broken, match="without answering"):
            await http.request("POST", "/claim", b"{}")
    finally:
        await http.aclose()
    assert s.connections == 1  # a request that may have been read is never sent twice by itself


async def test_chunked_answers_and_connection_close(serve: Callable[[Handler], Awaitable[Server]]) -> None:
    async def handler(conn: int, n: int, head: bytes) -> bytes:
        return (b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                b"5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n")

    s = await serve(handler)
    http = Http11(s.url, {})
    try:
        assert await http.request("GET", "/", None) == (404, b'{"a": 1}')
        assert await http.request("GET", "/", None) == (404, b'{"a": 1}')
    finally:
        await http.aclose()
    assert s.connections == 2  # "connection: close" is honoured


async def test_a_cancelled_request_closes_its_connection(serve: Callable[[Handler], Awaitable[Server]]) -> None:
    gate = asyncio.Event()

    async def handler(conn: int, n: int, head: bytes) -> bytes:
        if conn == 1:
            await gate.wait()
        return ok(b"{}")

    s = await serve(handler)
    http = Http11(s.url, {})
    try:
        task = asyncio.ensure_future(http.request("POST", "/claim", b"{}"))
        await wait_for(lambda: s.heads, 5, what="the server to have the request")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        assert await http.request("GET", "/", None) == (200, b"{}")
    finally:
        await http.aclose()
    assert s.connections == 2  # the cancelled one's connection was not reused


async def test_a_url_path_prefixes_every_request_and_credentials_stay_out_of_host(
    serve: Callable[[Handler], Awaitable[Server]]
) -> None:
    async def handler(conn: int, n: int, head: bytes) -> bytes:
        return ok(b"{}")

    s = await serve(handler)
    http = Http11(s.url.replace("http://", "http://user:pw@") + "/poolui/", {})
    try:
        assert await http.request("GET", "/info", None) == (200, b"{}")
    finally:
        await http.aclose()
    assert s.heads[0].startswith(b"GET /poolui/info HTTP/1.1\r\n")
    assert b"user" not in s.heads[0] and b"host: 127.0.0.1:" in s.heads[0]
