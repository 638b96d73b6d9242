"""Claims that never leak, under load and faults, against a real `poolui serve` (bounded: a few seconds).

Many concurrent PoolClient claimers, 30% of them cancelled at a random moment: once they are done and the
client has closed (its rollbacks finished), nothing is left claimed and no sandbox was handed out twice.
Raw HTTP claimers with leases that abandon their claims: every abandoned claim ends within lease + 1 s and
claims keep succeeding afterwards (the pool never starves)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import httpx
import pytest
from helpers import wait_for
from server_fixtures import Served, pool_table, served

from poolui.errors import PoolError

POOLS = {"p": pool_table("instant", target_ready=8, min_ready=2, max_ready=16, max_total=24,
                         claim_timeout="5s", max_concurrent_creates=16)}
WORKERS, ROUNDS, CANCEL = 16, 25, 0.3


@pytest.fixture
def srv() -> Iterator[Served]:
    with served(POOLS) as s:
        yield s


async def claimed_count(s: Served) -> int:
    async with s.client() as c:
        return (await c.snapshot("p", members=False)).counts["claimed"]


async def test_pool_client_with_random_cancels_leaks_nothing(srv: Served) -> None:
    handed: list[str] = []
    cancels = 0
    rng = random.Random(7)
    async with srv.client() as c:
        async def worker() -> None:
            nonlocal cancels
            for _ in range(ROUNDS):
                # Only the claim is cancelled: a caller that cancels its own release leaks by its own hand.
                task = asyncio.ensure_future(c.claim("p", timeout=5))
                if rng.random() < CANCEL:
                    # a random moment: before the request, while it is on the wire, or as the answer comes
                    await asyncio.wait({task}, timeout=rng.random() * 0.004)
                    if not task.done():
                        task.cancel()
                        cancels += 1
                try:
                    claim = await task
                except (asyncio.CancelledError, PoolError):
                    continue
                handed.append(claim.id)
                await c.release("p", claim.id)

        await asyncio.gather(*(worker() for _ in range(WORKERS)))
    # The client has closed: its background rollbacks are done. Nothing may stay claimed.
    await wait_for(lambda: _zero(srv), 10, what="no claim left held")
    assert cancels > 0 and len(handed) > WORKERS * ROUNDS // 2
    assert len(handed) == len(set(handed)), "a sandbox was handed out twice"


async def _zero(s: Served) -> bool:
    return await claimed_count(s) == 0


async def test_abandoned_leases_are_reclaimed_and_the_pool_never_starves(srv: Served) -> None:
    headers = {"authorization": f"Bearer {srv.token}"}
    lease = 1.0
    async with httpx.AsyncClient(base_url=srv.url, headers=headers, timeout=10) as http:
        async def abandon() -> None:  # claims with a lease, never renews, never releases
            r = await http.post("/pools/p/claim", json={"lease": lease, "timeout": 5})
            assert r.status_code == 200, r.text

        await asyncio.gather(*(abandon() for _ in range(30)))  # more than max_total: leases free the slots
        await wait_for(lambda: _zero(srv), lease + 1 + 5, what="every abandoned claim reclaimed")
        r = await http.post("/pools/p/claim", json={"timeout": 5})
        assert r.status_code == 200, r.text  # still serving
        events = (await http.get("/events/recent", params={"pool": "p", "limit": 1000})).json()["events"]
        assert sum(e["kind"] == "lease_expired" for e in events) >= 30
