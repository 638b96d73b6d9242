"""A claim whose answer cannot be delivered is given back: every place the client's leaving can land.

The ASGI side is driven by hand (receive/send functions), so each case is exact rather than a race."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_fixtures import pool_table, served, until
from test_client import pool_file

from poolui import virtual_time
from poolui.clock import LoopClock
from poolui.core.manager import PoolManager
from poolui.pool_file import load_config
from poolui.server.claims import ClaimDelivery
from poolui.server.sse import EventStream
from poolui.server.state import ServerOptions, ServerState, StreamStats


@pytest.fixture
async def mgr(tmp_path: Path) -> AsyncIterator[PoolManager]:
    path = pool_file(tmp_path, p=pool_table("instant", target_ready=1, min_ready=0, max_ready=3))
    async with PoolManager(load_config(path), state_dir=tmp_path / "state") as m:
        await m.warm_up(5)
        yield m


async def turns_until(cond: Any, limit: int = 100_000) -> None:
    """Let the loop run until cond() holds: a bounded number of turns, no wall-clock sleeping."""
    for _ in range(limit):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def receiver(gone: asyncio.Event) -> Any:
    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    return receive


def delivery(mgr: PoolManager, gone: asyncio.Event, **claim: Any) -> ClaimDelivery:
    return ClaimDelivery(lambda: mgr.claim("p", **claim), lambda i: mgr.release("p", i), receiver(gone), set())


def counts(mgr: PoolManager) -> dict[str, int]:
    return mgr.pool("p").counts()


async def test_gone_while_waiting_then_the_sandbox_arrives(mgr: PoolManager) -> None:
    await mgr.pause("p")  # before the claim: no refill replaces the one it takes
    held = await mgr.claim("p")
    gone = asyncio.Event()
    d = delivery(mgr, gone, timeout=30)
    run = asyncio.ensure_future(d.run())
    await turns_until(lambda: mgr.pool("p").snapshot().waiting == 1)
    gone.set()
    assert await run is None
    assert (await mgr.snapshot("p")).waiting == 0
    await mgr.resume("p")
    await mgr.warm_up(5)
    assert counts(mgr)["ready"] == 1 and counts(mgr)["claimed"] == 1  # only `held`
    await mgr.release("p", held.id)


async def test_gone_before_the_claim_was_made(mgr: PoolManager) -> None:
    gone = asyncio.Event()
    gone.set()
    assert await delivery(mgr, gone).run() is None
    assert counts(mgr)["claimed"] == 0


async def test_gone_just_before_the_answer_is_written(mgr: PoolManager) -> None:
    gone = asyncio.Event()
    d = delivery(mgr, gone)
    claim = await d.run()
    assert claim is not None and counts(mgr)["claimed"] == 1
    gone.set()
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await d.response(claim)({"type": "http"}, receiver(gone), send)
    assert sent == [] and counts(mgr)["claimed"] == 0
    assert claim.id not in mgr.pools["p"].members or mgr.pools["p"].members[claim.id].state.value == "terminating"


async def test_the_write_fails(mgr: PoolManager) -> None:
    gone = asyncio.Event()
    d = delivery(mgr, gone)
    claim = await d.run()
    assert claim is not None

    async def send(message: Any) -> None:
        raise OSError("connection reset")

    with pytest.raises(OSError):
        await d.response(claim)({"type": "http"}, receiver(gone), send)
    assert counts(mgr)["claimed"] == 0


async def test_the_handler_is_cancelled_mid_claim(mgr: PoolManager) -> None:
    await mgr.pause("p")
    await mgr.claim("p")  # the only one: the next claim waits
    run = asyncio.ensure_future(delivery(mgr, asyncio.Event(), timeout=30).run())
    await turns_until(lambda: mgr.pool("p").snapshot().waiting == 1)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert (await mgr.snapshot("p")).waiting == 0 and counts(mgr)["claimed"] == 1


async def test_delivered_answer_keeps_the_claim_and_a_repeat_is_never_rolled_back(mgr: PoolManager) -> None:
    gone = asyncio.Event()
    d = delivery(mgr, gone, claim_key="k")
    claim = await d.run()
    assert claim is not None
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await d.response(claim)({"type": "http"}, receiver(gone), send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert counts(mgr)["claimed"] == 1
    # A retry with the same key whose client vanishes must not release the claim the first one delivered.
    gone2 = asyncio.Event()
    gone2.set()
    again = ClaimDelivery(lambda: mgr.claim("p", claim_key="k"), lambda i: mgr.release("p", i),
                          receiver(gone2), set())
    assert await again.run() is None
    assert counts(mgr)["claimed"] == 1


def stream_of(mgr: PoolManager, queue_size: int = 20, write_timeout: float = 0.2) -> tuple[EventStream, StreamStats]:
    state = ServerState(mgr, ServerOptions(events_queue=queue_size, events_write_timeout=write_timeout,
                                           events_heartbeat=30.0))
    return EventStream(state, mgr.events(None, queue_size), None, None), state.stats


def test_events_client_whose_socket_stalls_is_dropped(tmp_path: Path) -> None:
    """On virtual time: claims take no time at all, so a client dropped only after its write timeout
    (0.2 s) is still there when 200 claims are done, unless claiming waited on it."""

    async def main() -> None:
        cfg = load_config(pool_file(tmp_path, p=pool_table("instant", target_ready=2, min_ready=1, max_ready=5)))
        async with PoolManager(cfg, state_dir=tmp_path / "state", clock=LoopClock(asyncio.get_running_loop())) as mgr:
            await mgr.warm_up(5)
            stream, stats = stream_of(mgr)
            sent: list[Any] = []
            stalled = asyncio.Event()

            async def send(message: Any) -> None:
                if len(sent) >= 3:  # takes the headers and two writes, then never again (a full socket)
                    stalled.set()
                    await asyncio.Event().wait()
                sent.append(message)

            task = asyncio.ensure_future(stream({"type": "http"}, receiver(asyncio.Event()), send))
            await turns_until(lambda: stats.open == 1)
            start = asyncio.get_running_loop().time()
            for _ in range(200):  # the pool keeps claiming: emitting never waits for the stalled client
                c = await mgr.claim("p", timeout=5)
                await mgr.release("p", c.id)
            assert stalled.is_set() and stats.open == 1 and stats.dropped == 0
            assert asyncio.get_running_loop().time() - start < 0.2  # no claim waited out the write timeout
            await asyncio.wait_for(task, 5)
            assert stats.dropped == 1 and stats.open == 0
            assert not mgr.bus._subs  # its queue is gone with it

    virtual_time.run(main())


async def test_events_client_that_falls_behind_gets_a_dropped_event(mgr: PoolManager) -> None:
    stream, stats = stream_of(mgr, queue_size=5, write_timeout=5.0)
    sent: list[Any] = []
    slow = asyncio.Event()

    async def send(message: Any) -> None:
        sent.append(message)
        if len(sent) == 2:  # after ": connected", each write takes until the test lets go
            await slow.wait()

    task = asyncio.ensure_future(stream({"type": "http"}, receiver(asyncio.Event()), send))
    await turns_until(lambda: stats.open == 1 and len(sent) >= 2)
    for _ in range(10):
        mgr.bus.emit(0.0, "p", "test")
    slow.set()
    await asyncio.wait_for(task, 5)
    last = sent[-1]
    assert last["more_body"] is False and last["body"].startswith(b"event: dropped\ndata: {\"dropped\": ")
    assert stats.dropped == 1 and stats.open == 0


def test_reader_that_stops_reading_does_not_slow_claims() -> None:
    pools = {"p": pool_table("instant", target_ready=4, min_ready=0, max_ready=8, max_total=50)}
    with served(pools) as s:
        auth = {"authorization": f"Bearer {s.token}"}
        host, port = s.url.removeprefix("http://").rsplit(":", 1)
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect((host, int(port)))
        slow.sendall(f"GET /events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {s.token}\r\n\r\n".encode())

        def metric(name: str) -> int:
            text = httpx.get(s.url + "/metrics", headers=auth).text
            return int(float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " "))))

        until(lambda: metric("poolui_event_clients") == 1, 10, "the reader to subscribe")
        with httpx.Client(base_url=s.url, headers=auth) as http:
            for _ in range(300):  # far more events than the reader's socket and queue hold
                r = http.post("/pools/p/claim", json={"timeout": 5})
                assert r.status_code == 200, r.text
                assert http.post(f"/pools/p/sandboxes/{r.json()['id']}/release").status_code == 200
        # Every claim was answered while the reader, which read nothing, stayed subscribed: the events it
        # did not take waited in its own bounded queue, never in front of a claim. (Speed: bench/.)
        assert metric("poolui_event_clients") == 1
        slow.close()
        until(lambda: metric("poolui_event_clients") == 0, 30, "the server to notice the reader left")


async def test_cancelled_between_the_endpoint_and_the_answer(mgr: PoolManager) -> None:
    gone = asyncio.Event()
    d = delivery(mgr, gone)
    claim = await d.run()
    assert claim is not None and counts(mgr)["claimed"] == 1
    # The response is never called (the request task was cancelled); the connection then ends.
    gone.set()
    await turns_until(lambda: counts(mgr)["claimed"] == 0)
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await d.response(claim)({"type": "http"}, receiver(gone), send)  # late and harmless: nothing sent, once
    assert sent == [] and (await mgr.snapshot("p")).metrics["claims"]["warm"] == 1
