"""Refill in batches (core/refill.py): a deficit smaller than a batch waits a moment for more, so a stream
of claims is refilled a batch at a time; an empty pool or a waiting claimer is refilled at once. On the
engine's virtual clock, so every wait is exact."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from poolui import virtual_time
from poolui.clock import LoopClock
from poolui.core import refill
from poolui.core.manager import PoolManager
from poolui.pool_file import parse_config


def pools(target: int) -> dict[str, object]:
    return {"pools": {"p": {"provider": "instant", "target_ready": target, "min_ready": 0, "max_ready": 64,
                            "max_total": 200, "max_concurrent_creates": 64, "health": {"enabled": False}}}}


async def turns_until(cond: Callable[[], bool], limit: int = 10_000) -> None:
    for _ in range(limit):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def test_a_stream_of_claims_is_refilled_a_batch_at_a_time_and_an_empty_pool_at_once() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with PoolManager(parse_config(pools(16), "t.toml"), store="memory", clock=LoopClock(loop)) as mgr:
            await mgr.warm_up(5)
            p = mgr.pool("p")
            creates = p.metrics.creates
            for _ in range(3):  # a batch is a quarter of the setpoint: 4
                await mgr.claim("p")
            for _ in range(100):  # the loop runs on; no virtual time passes
                await asyncio.sleep(0)
            assert p.metrics.creates == creates and p.refill_at is not None  # gathering
            await mgr.claim("p")
            await turns_until(lambda: p.metrics.creates == creates + 4)  # the batch, in one go
            await turns_until(lambda: len(p.handout) == 16)
            await mgr.claim("p")  # a deficit of one is refilled too, once GATHER has passed on the pool's clock
            await asyncio.sleep(refill.GATHER / 2)
            assert p.metrics.creates == creates + 4
            await asyncio.sleep(refill.GATHER / 2 + 0.001)
            await turns_until(lambda: p.metrics.creates == creates + 5)
            # An empty pool gathers nothing: a waiting claimer gets its create at once.
            await turns_until(lambda: len(p.handout) == 16)
            await mgr.pause("p")
            for _ in range(16):
                await mgr.claim("p")
            start = loop.time()
            await mgr.resume("p")
            waiter = asyncio.ensure_future(mgr.claim("p", timeout=5))
            await turns_until(lambda: waiter.done())
            assert loop.time() == start and p.metrics.creates == creates + 5 + 16  # the whole deficit at once

    virtual_time.run(main())
