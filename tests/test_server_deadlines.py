"""Slow and silent clients are dropped by a real `poolui serve` on 127.0.0.1, over real sockets: one that
never sends a byte, one that sends its headers or its body a byte at a time, an idle keep-alive
connection, and fifty of them at once, while an ordinary request is still answered. Every wait is for
the server's answer or close, with a deadline; the drip's pace is the attack's, not a synchronisation."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from server_fixtures import Served, pool_table, served

from poolui.config import ServerConfig
from poolui.errors import ConfigError
from poolui.pool_file import parse_config

DEADLINE = 1.0  # the server's header, body and keep-alive timeouts here
WAIT = 20.0  # how long a test waits for the server to act before it fails


@pytest.fixture(scope="module")
def srv() -> Iterator[Served]:
    with served({"i": pool_table("instant", target_ready=1)}, header_timeout=f"{DEADLINE}s",
                body_timeout=f"{DEADLINE}s", keep_alive=f"{DEADLINE}s") as s:
        yield s


def connect(s: Served) -> socket.socket:
    u = urlsplit(s.url)
    assert u.hostname is not None and u.port is not None
    return socket.create_connection((u.hostname, u.port), timeout=WAIT)


def until_closed(sock: socket.socket, drip: bytes = b"") -> bytes:
    """Send `drip` a byte at a time (one every 50 ms) until the server closes the connection; what it
    said before closing. AssertionError if it has not closed within WAIT seconds."""
    said, end = b"", time.monotonic() + WAIT
    while time.monotonic() < end:
        if drip:
            try:
                sock.send(drip[:1])
            except (BrokenPipeError, ConnectionResetError):
                return said
            drip = drip[1:] or drip  # the attacker never runs out
        readable, _, _ = select.select([sock], [], [], 0.05)
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return said
            if not chunk:
                return said
            said += chunk
    raise AssertionError(f"the server kept the connection for {WAIT}s (it said {said[:200]!r})")


def test_a_connection_that_never_sends_a_byte_is_closed(srv: Served) -> None:
    with connect(srv) as sock:
        assert until_closed(sock) == b""


def test_headers_sent_a_byte_at_a_time_get_a_408_and_the_close(srv: Served) -> None:
    with connect(srv) as sock:
        said = until_closed(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 10_000)
    assert said.startswith(b"HTTP/1.1 408 ") and b"header_timeout" in said


def test_a_body_sent_a_byte_at_a_time_is_cut_off(srv: Served) -> None:
    with connect(srv) as sock:
        sock.sendall(f"POST /pools/i/claim HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {srv.token}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n".encode())
        assert until_closed(sock, b'{"timeout": 1' + b" " * 100_000) == b""  # no claim was made for it
    snap = httpx.get(f"{srv.url}/pools/i", headers={"authorization": f"Bearer {srv.token}"}, timeout=WAIT).json()
    assert snap["counts"]["claimed"] == 0


def test_an_idle_keep_alive_connection_is_closed_after_its_answer(srv: Served) -> None:
    with connect(srv) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        said = until_closed(sock)
    assert said.startswith(b"HTTP/1.1 200 ") and said.endswith(b'"stopping":false}')


def test_fifty_slow_clients_are_all_dropped_and_others_are_served_meanwhile(srv: Served) -> None:
    socks = [connect(srv) for _ in range(50)]
    try:
        for sock in socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        assert httpx.get(f"{srv.url}/healthz", timeout=WAIT).json()["ok"] is True
        for sock in socks:
            assert until_closed(sock).startswith(b"HTTP/1.1 408 ")
    finally:
        for sock in socks:
            sock.close()


def test_the_timeouts_are_checked_in_the_pool_file() -> None:
    pools = {"i": {"provider": "instant"}}
    assert parse_config({"pools": pools}, "f.toml").server == ServerConfig()
    assert ServerConfig().header_timeout == 10 and ServerConfig().body_timeout == 60
    for key, bad in (("header_timeout", "0s"), ("body_timeout", "forever"), ("keep_alive", True)):
        with pytest.raises(ConfigError, match=f"key '{key}' = .* is not allowed: expected .*from 100ms to 1h"):
            parse_config({"pools": pools, "server": {key: bad}}, "f.toml")
