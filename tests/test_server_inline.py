"""A warm claim is made in its request's own task (server/claims.py): the client's leaving is looked at
before claiming and before writing, and every place it can leave still gives the claim back. The ASGI side
is driven by hand, so each case is exact; a response's head and body go out in one write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from server_fixtures import pool_table

from poolui.core.manager import PoolManager
from poolui.pool_file import parse_config
from poolui.server.app import create_app
from poolui.server.claims import client_gone
from poolui.server.deadlines import JoinedWrites

TOKEN = "t0ken"
DISCONNECT = {"type": "http.disconnect"}


@pytest.fixture
async def mgr(tmp_path: Path) -> AsyncIterator[PoolManager]:
    """A warm instant pool of 2 behind the real SQLite store."""
    pools = {"pools": {"p": pool_table("instant", target_ready=2, max_ready=5)}}
    async with PoolManager(parse_config(pools, "inline.toml"), state_dir=tmp_path) as m:
        await m.warm_up(5)
        yield m


def scope() -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/pools/p/claim", "query_string": b"",
            "headers": [(b"authorization", f"Bearer {TOKEN}".encode()), (b"content-type", b"application/json")]}


def receiver(gone: Callable[[], bool]) -> Any:
    """The body first, then the disconnect once gone() holds (else a wait for ever, as a live client's)."""
    body = [{"type": "http.request", "body": b'{"timeout": 5}', "more_body": False}]

    async def receive() -> dict[str, Any]:
        if body:
            return body.pop()
        if gone():
            return DISCONNECT
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


async def claim_over_asgi(mgr: PoolManager, gone: Callable[[], bool]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await create_app(mgr, TOKEN)(scope(), receiver(gone), send)
    return sent


def claimed(mgr: PoolManager) -> int:
    return mgr.pool("p").counts()["claimed"]


async def test_a_warm_claim_starts_no_task_of_its_own(mgr: PoolManager) -> None:
    loop = asyncio.get_running_loop()
    made: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
        made.append(getattr(coro, "__qualname__", "?"))
        return asyncio.Task(coro, loop=loop, **kw)

    loop.set_task_factory(factory)
    try:
        sent = await claim_over_asgi(mgr, lambda: False)
    finally:
        loop.set_task_factory(None)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"] and sent[0]["status"] == 200
    assert claimed(mgr) == 1
    assert made == [] or all(name.startswith(("bring_up", "Pool.kill")) for name in made), made  # refill's only


async def test_a_client_gone_before_the_claim_gets_none(mgr: PoolManager) -> None:
    sent = await claim_over_asgi(mgr, lambda: True)
    assert sent[0]["status"] == 408 and claimed(mgr) == 0
    assert (await mgr.snapshot("p")).metrics["claims"]["warm"] == 0  # no claim was made at all


async def test_a_client_gone_once_the_claim_is_made_is_never_answered_and_the_claim_goes_back(
        mgr: PoolManager) -> None:
    sent = await claim_over_asgi(mgr, lambda: claimed(mgr) >= 1)  # leaves the moment the claim exists
    assert sent == [] and claimed(mgr) == 0
    assert (await mgr.snapshot("p")).metrics["claims"]["warm"] == 1


async def test_client_gone_looks_without_waiting_and_leaves_nothing_behind() -> None:
    event = asyncio.Event()

    async def waiting() -> dict[str, Any]:
        await event.wait()
        return DISCONNECT

    async def left() -> dict[str, Any]:
        return DISCONNECT

    assert client_gone(waiting) is False
    assert not event._waiters  # the wait it began is undone
    assert client_gone(left) is True


async def test_client_gone_reads_uvicorns_own_flag_without_making_a_coroutine() -> None:
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    # what it reads is uvicorn's own (were it renamed, client_gone would step receive() as above: slower)
    assert "disconnected" in RequestResponseCycle.__init__.__code__.co_names

    class Cycle:
        disconnected = False

        async def receive(self) -> dict[str, Any]:
            raise AssertionError("receive() was called")

    cycle = Cycle()
    assert client_gone(cycle.receive) is False
    cycle.disconnected = True
    assert client_gone(cycle.receive) is True


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


async def test_a_response_head_and_body_go_out_in_one_write() -> None:
    t = Transport()
    w = JoinedWrites(t, asyncio.get_running_loop())  # type: ignore[arg-type]
    w.write(HEAD)
    assert t.writes == []
    w.write(b"{}")
    assert t.writes == [HEAD + b"{}"]
    w.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # an interim answer is never held
    assert t.writes[-1] == b"HTTP/1.1 100 Continue\r\n\r\n"
    w.write(HEAD)  # a head with nothing after it in this turn goes out at the next
    await asyncio.sleep(0)
    assert t.writes[-1] == HEAD and len(t.writes) == 3
    w.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    w.close()  # a head, then the close: written first
    assert t.writes[-1] == b"HTTP/1.1 400 Bad Request\r\n\r\n" and t.closed
    assert w.get_extra_info("peername") == "extra peername"
