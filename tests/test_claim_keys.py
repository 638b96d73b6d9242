"""A claim key given back (release_claim) ends its claim whatever the order things arrive in.

A client that gives up on a claim while its request is on the wire gives the key back on another
connection; that may reach the engine before the claim does. The key then stays refused for a while, a
claimer waiting with it is ended, and one waiting for its commit is told the claim is over, so no claim is
ever made for a client that will not receive it (tests/test_leak_soak.py drives the same race over HTTP).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_fixtures import pool_table, served
from test_engine import config, conserved, virtual_manager

from poolui import virtual_time
from poolui.core import handout
from poolui.core.handout import Handout
from poolui.errors import ClaimEnded
from poolui.providers.base import ProbeResult


def test_a_given_up_key_is_refused_until_its_time_is_up_and_the_memory_is_bounded() -> None:
    h = Handout()
    h.give_up("k", now=0.0)
    assert h.given_up("k", 1.0) and not h.given_up("other", 1.0) and not h.given_up(None, 1.0)
    assert not h.given_up("k", handout.GIVEN_UP_FOR + 0.001)
    for n in range(handout.GIVEN_UP_MAX + 50):
        h.give_up(f"key-{n}", now=10.0)
    assert len(h._given_up) == handout.GIVEN_UP_MAX  # a client sending keys without end cannot grow it
    assert not h.given_up("key-0", 11.0) and h.given_up(f"key-{handout.GIVEN_UP_MAX + 49}", 11.0)


def test_release_claim_ends_a_claimer_waiting_with_that_key_and_refuses_the_key(tmp_path: Path) -> None:
    async def body() -> None:
        cfg = config(target_ready=1, max_ready=1, max_total=1, instant={"create_delay": "1ms"})
        async with virtual_manager(cfg, tmp_path) as (mgr, clock):
            await mgr.warm_up(5)
            held = await mgr.claim("p")
            waiting = asyncio.ensure_future(mgr.claim("p", timeout=30, claim_key="late"))
            await asyncio.sleep(0)  # the claim's first step runs up to its wait (nothing before it awaits)
            assert mgr.pools["p"].handout.waiting() == 1
            assert await mgr.release_claim("p", "late") is False  # nothing held yet: the waiter is ended
            with pytest.raises(ClaimEnded, match="'late' was given back"):
                await waiting
            await mgr.release("p", held.id)
            with pytest.raises(ClaimEnded):
                await mgr.claim("p", claim_key="late")
            await asyncio.sleep(handout.GIVEN_UP_FOR)  # virtual: the refusal ends, the key may claim again
            again = await mgr.claim("p", timeout=5, claim_key="late")
            assert mgr.pools["p"].handout.held("late") is not None and again.claim_key == "late"
            conserved(mgr)

    virtual_time.run(body())


@pytest.mark.parametrize("healthy", [True, False])
async def test_a_claim_given_back_while_it_is_being_made_is_over_not_handed_out(tmp_path: Path,
                                                                                healthy: bool) -> None:
    """The key is given back while the claim checks its sandbox's health: whether the check then passes or
    fails (a failing one would go on to the next sandbox), the claim is over and nothing stays claimed."""
    async with virtual_manager(config(), tmp_path) as (mgr, _):
        await mgr.warm_up(5)
        prov = mgr.pools["p"].provider
        checked = asyncio.get_running_loop().create_future()

        async def slow_health(sb: Any) -> ProbeResult:
            await checked  # the health check at claim takes a while: the claim holds its member meanwhile
            return ProbeResult(healthy, "ok" if healthy else "told to fail")

        prov.health = slow_health  # type: ignore[method-assign]  # the check that runs at this claim
        claiming = asyncio.ensure_future(mgr.claim("p", claim_key="k", check_health=True))
        await asyncio.sleep(0)  # the claim's first step takes a member and holds it, then checks its health
        assert mgr.pools["p"].handout.held("k") is not None and not claiming.done()
        assert await mgr.release_claim("p", "k") is True
        checked.set_result(None)
        with pytest.raises(ClaimEnded):
            await claiming
        assert (await mgr.snapshot("p")).counts["claimed"] == 0
        conserved(mgr)


async def test_over_http_a_key_given_back_first_refuses_the_claim_that_arrives_after(tmp_path: Path) -> None:
    with served({"p": pool_table("instant", target_ready=2)}) as s:
        async with s.client() as c:
            assert await c.release_claim("p", "on-the-wire") is False
        headers = {"authorization": f"Bearer {s.token}"}
        async with httpx.AsyncClient(base_url=s.url, headers=headers, timeout=10) as http:
            r = await http.post("/pools/p/claim", json={"claim_key": "on-the-wire", "timeout": 5})
            assert r.status_code == 410, r.text
            assert "'on-the-wire' was given back (release_claim)" in r.json()["detail"]
        async with s.client() as c:
            assert (await c.snapshot("p")).counts["claimed"] == 0
