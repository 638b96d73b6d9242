"""Reuse pools on real bubblewrap sandboxes: a released sandbox is reset and handed out again, and nothing
of one claim (files, env, processes, /tmp) reaches the next; a failing reset terminates it; max_uses holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import wait_for
from server_fixtures import HTTP_SERVER

from poolui.core.manager import PoolManager
from poolui.core.pool import Pool
from poolui.errors import ConfigError
from poolui.pool_file import parse_config
from poolui.sandbox_io import collect

POOL = "r"


def config(**reuse: Any) -> Any:
    return parse_config({"pools": {POOL: {
        "provider": "local", "command": HTTP_SERVER, "target_ready": 1, "min_ready": 0, "max_ready": 1,
        "max_total": 1, "claim_timeout": "30s", "readiness": {"http": "/", "timeout": "15s", "interval": "20ms"},
        "health": {"enabled": False}, "reuse": True, **reuse}}}, "test.toml")


def sized(target: int, **more: Any) -> Any:
    """A reuse pool of `target` with room to grow (max_total 20, the default): what the pool does with that
    room is what these tests are about."""
    return config(target_ready=target, max_ready=target, max_total=20, **more)


@pytest.fixture
async def mgr(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[PoolManager]:
    async with PoolManager(config(**getattr(request, "param", {})), state_dir=tmp_path / "state") as m:
        await m.warm_up(30)
        yield m


async def _ready_again(m: PoolManager) -> None:
    await wait_for(lambda: len(m.pools[POOL].handout) == 1, 30, what="the member ready again")


async def test_nothing_of_one_claim_reaches_the_next(mgr: PoolManager) -> None:
    a = await mgr.claim(POOL, env={"SECRET": "from-a"}, files={"a.txt": "A's file"})
    script = ("echo hidden > /tmp/a-tmp; mkdir -p d; echo x > d/y; setsid sleep 600 & "
              "echo $! > bg.pid; sleep 600 & echo started")
    assert (await collect(mgr.exec(POOL, a.id, ["sh", "-c", script]))).stdout == b"started\n"
    assert await mgr.release(POOL, a.id) is True
    await _ready_again(mgr)
    b = await mgr.claim(POOL)
    assert b.id == a.id and b.token != a.token  # the same sandbox, a new claim
    assert a.token is not None and mgr.token_holder(a.token) is None  # A's token opens nothing now
    listing = await collect(mgr.exec(POOL, b.id, ["sh", "-c", "ls -A; ls -A /tmp; echo env=$SECRET; "
                                                              "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"]))
    out = listing.stdout.decode()
    assert "a.txt" not in out and "bg.pid" not in out and "a-tmp" not in out and "env=\n" in out
    assert "sleep 600" not in out and "http.server" in out  # the server lived on, A's processes did not
    async with httpx.AsyncClient() as h:
        assert (await h.get(b.url)).status_code == 200
    await mgr.release(POOL, b.id)
    await _ready_again(mgr)
    assert (mgr.pools[POOL].metrics.resets, mgr.pools[POOL].metrics.creates) == (2, 1)


@pytest.mark.parametrize("mgr", [{"max_uses": 2}], indirect=True)
async def test_max_uses_is_kept(mgr: PoolManager) -> None:
    first = await mgr.claim(POOL)
    await mgr.release(POOL, first.id)
    await _ready_again(mgr)
    second = await mgr.claim(POOL)
    assert second.id == first.id
    await mgr.release(POOL, second.id)  # its second use was its last
    await _ready_again(mgr)
    third = await mgr.claim(POOL)
    assert third.id != first.id
    await mgr.release(POOL, third.id)
    await wait_for(lambda: first.id not in mgr.pools[POOL].members, 30, what="the worn-out member gone")
    # One event per state it went through: each release moved it on (to a reset, then out) in one event.
    life = [(e.kind, e.state) for e in mgr.bus.recent if e.member_id == first.id]
    assert life == [("created", "creating"), ("starting", "starting"), ("ready", "ready"), ("claimed", "claimed"),
                    ("released", "starting"), ("ready", "ready"), ("claimed", "claimed"),
                    ("released", "terminating"), ("terminated", "gone")]


@pytest.mark.parametrize("mgr", [{"reset": ["sh", "-c", "exit 3"]}], indirect=True)
async def test_a_failing_reset_terminates_the_sandbox(mgr: PoolManager) -> None:
    first = await mgr.claim(POOL)
    await mgr.release(POOL, first.id)
    p = mgr.pools[POOL]
    await wait_for(lambda: first.id not in p.members and p.metrics.reset_failures == 1, 30,
                   what="the member whose reset failed to be terminated")
    assert "reset failed" in p.recently_gone[first.id] and "exited 3" in p.recently_gone[first.id]
    replacement = await mgr.claim(POOL)
    assert replacement.id != first.id
    await mgr.release(POOL, replacement.id)


async def test_reuse_needs_a_provider_that_can_reset(tmp_path: Path) -> None:
    cfg = parse_config({"pools": {POOL: {"provider": "instant", "reuse": True, "health": {"enabled": False}}}}, "t")
    with pytest.raises(ConfigError, match="cannot reset"):
        async with PoolManager(cfg, state_dir=tmp_path / "state"):
            pass


def test_reuse_keys_without_reuse_are_refused() -> None:
    with pytest.raises(ConfigError, match="max_uses"):
        parse_config({"pools": {POOL: {"provider": "instant", "max_uses": 3}}}, "t")


async def _settled(p: Pool, n: int) -> None:
    await wait_for(lambda: len(p.handout) == n and p.in_flight() == 0, 30, what=f"{n} members ready, none resetting")


def _surplus_reasons(mgr: PoolManager) -> list[str]:
    assert mgr.store is not None
    return [e.detail for e in mgr.store.events(POOL, 10_000) if "surplus" in e.detail]


async def test_more_concurrent_runs_than_the_target_reuse_instead_of_creating(tmp_path: Path) -> None:
    """8 callers in a loop of one-shot runs on a reuse pool of 4: a sandbox out on a claim is expected back,
    so claims wait for a reset rather than start a create, and a reset one is never trimmed as surplus.
    Before: 191 creates and 12 resets in 200 runs."""
    callers, runs = 8, 10
    async with PoolManager(sized(4, max_uses=1000), state_dir=tmp_path / "state") as mgr:
        await mgr.warm_up(30)
        p = mgr.pools[POOL]

        async def caller() -> None:
            for _ in range(runs):
                assert (await collect(mgr.run(POOL, ["true"], claim_timeout=30))).exit_code == 0

        await asyncio.gather(*(caller() for _ in range(callers)))
        await _settled(p, 4)
        assert (p.metrics.creates, p.metrics.resets, p.metrics.terminated) == (4, callers * runs, 0)
        assert p.snapshot(members=False).metrics["resets"] == callers * runs
        assert _surplus_reasons(mgr) == []


async def test_sequential_claims_create_nothing_after_warm_up(tmp_path: Path) -> None:
    """Claim, release, claim again: the released one counts as coming back, so no replacement is started
    (before: 200 new sandboxes for 200 claims)."""
    async with PoolManager(sized(2, max_uses=1000), state_dir=tmp_path / "state") as mgr:
        await mgr.warm_up(30)
        p = mgr.pools[POOL]
        seen = set()
        for _ in range(20):
            c = await mgr.claim(POOL)
            seen.add(c.id)
            assert await mgr.release(POOL, c.id)
        await _settled(p, 2)
        assert (p.metrics.creates, p.metrics.resets, len(seen)) == (2, 20, 2)
        assert _surplus_reasons(mgr) == []


async def test_over_its_target_a_reuse_pool_trims_by_real_age_and_uses(tmp_path: Path) -> None:
    """Two sandboxes; A serves two claims, B one, and B is reset last. Resized to 1, the pool keeps B: it
    ranks A (more uses, older) first, where it used to take the one just reset for the newest. The
    reason names the resize."""
    async with PoolManager(sized(2, max_uses=1000), state_dir=tmp_path / "state") as mgr:
        await mgr.warm_up(30)
        p = mgr.pools[POOL]
        a = await mgr.claim(POOL)
        b = await mgr.claim(POOL)
        await mgr.release(POOL, a.id)
        await wait_for(lambda: a.id in p.handout, 30, what="A reset")
        assert (await mgr.claim(POOL)).id == a.id
        await mgr.release(POOL, a.id)
        await wait_for(lambda: a.id in p.handout, 30, what="A reset again")
        await mgr.release(POOL, b.id)
        await _settled(p, 2)
        await mgr.resize(POOL, target=1, max_ready=1)
        await wait_for(lambda: a.id not in p.members, 30, what="A trimmed")
        assert b.id in p.members and p.recently_gone[a.id] == "surplus after resize to target 1"
        assert p.metrics.creates == 2


@pytest.mark.parametrize("mgr", [{"max_uses": 1}], indirect=True)
async def test_a_last_use_is_replaced_at_claim_and_says_why_it_ends(mgr: PoolManager) -> None:
    """max_uses = 1: the claimed sandbox will not come back, so its replacement starts at once (here, with
    max_total = 1, once it has gone), and its release says why it was not reset."""
    first = await mgr.claim(POOL)
    await mgr.release(POOL, first.id)
    p = mgr.pools[POOL]
    await wait_for(lambda: first.id not in p.members, 30, what="the used-up sandbox gone")
    assert p.recently_gone[first.id] == "released after its last use (max_uses = 1)"
    await _ready_again(mgr)
    assert (p.metrics.creates, p.metrics.resets) == (2, 0)
