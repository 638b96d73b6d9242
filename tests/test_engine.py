"""The engine's rules, driven through the instant provider so faults can be injected exactly.

The same rules are exercised with real local sandboxes in test_engine_local.py.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for

from poolui import virtual_time
from poolui.clock import LoopClock
from poolui.core.manager import PoolManager
from poolui.core.model import MemberState
from poolui.errors import ClaimTimeout, PoolDraining, PoolError, PoolExhausted, SandboxNotFound, WarmUpTimeout
from poolui.pool_file import parse_config
from poolui.providers.instant import InstantProvider


def config(**pool: Any) -> Any:
    base: dict[str, Any] = {"provider": "instant", "target_ready": 3, "min_ready": 1, "max_ready": 10,
                            "max_total": 20, "health": {"http": "/", "interval": "1h", "timeout": "1s"}}
    base.update(pool)
    return parse_config({"pools": {"p": base}}, "test")


@asynccontextmanager
async def virtual_manager(cfg: Any, state_dir: Path) -> AsyncIterator[tuple[PoolManager, LoopClock]]:
    """A manager on the virtual-time loop's clock: waits take no real time, and times are exact."""
    clock = LoopClock(asyncio.get_running_loop())
    async with PoolManager(cfg, state_dir=state_dir, clock=clock) as mgr:
        yield mgr, clock


def provider(mgr: PoolManager) -> InstantProvider:
    prov = mgr.pools["p"].provider
    assert isinstance(prov, InstantProvider)
    return prov


def conserved(mgr: PoolManager) -> None:
    """Every member is in exactly one state; the provider holds nothing the pool does not know."""
    pool = mgr.pools["p"]
    counts = pool.counts()
    assert sum(counts.values()) == len(pool.members)
    assert len(pool.handout) == counts["ready"]
    assert all(m.holders == (1 if m.state is MemberState.CLAIMED else 0) for m in pool.members.values())
    assert set(provider(mgr).live) <= set(pool.members)


async def test_warm_claim_release_and_refill(tmp_path: Path) -> None:
    async with PoolManager(config(), state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        assert (await mgr.snapshot("p")).state == "healthy"
        claim = await mgr.claim("p")
        assert claim.warm and claim.url.startswith("instant://")
        assert (await mgr.snapshot("p")).counts["claimed"] == 1
        assert await mgr.release("p", claim.id) is True
        await mgr.warm_up(5)
        await wait_for(lambda: claim.id not in provider(mgr).live, 5)
        snap = await mgr.snapshot("p")
        assert snap.metrics["claims"]["warm"] == 1 and snap.metrics["hit_rate"] == 1.0
        assert snap.counts["ready"] == 3 and snap.counts["claimed"] == 0
        conserved(mgr)
    assert provider(mgr).live == {}


async def test_oldest_ready_is_handed_out_first(tmp_path: Path) -> None:
    async with PoolManager(config(), state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        order = list(mgr.pools["p"].handout)
        got = [(await mgr.claim("p")).id for _ in range(3)]
        assert got == order


async def test_a_claims_token_is_made_as_its_sandbox_became_ready_and_opens_nothing_before_or_after(
        tmp_path: Path) -> None:
    async with PoolManager(config(), state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        pool = mgr.pools["p"]
        first = pool.handout.members()[0]
        assert first.next_token is not None and first.claim_token is None
        made = first.next_token[0]
        assert mgr.token_holder(made) is None  # a ready sandbox's next token opens nothing yet
        m = pool.take_ready(None)
        assert m is first and m.claim_token == made and mgr.token_holder(made) == ("p", m.id)
        assert m.next_token is None  # used once
        pool.give_back(m)  # its claimer never got it: the token it would have had goes with it
        assert mgr.token_holder(made) is None
        again = await mgr.claim("p")
        assert again.id == m.id and again.token is not None and again.token != made
        assert mgr.token_holder(again.token) == ("p", m.id)
        await mgr.release("p", again.id)
        assert mgr.token_holder(again.token) is None
        tokens = [(await mgr.claim("p")).token for _ in range(3)]
        assert len(set(tokens)) == 3 and made not in tokens and again.token not in tokens
        held = await mgr.claim("p", env={"SECRET": "s3cr3t-value"})
        member = pool.members[held.id]
        assert held.token and member.next_token is None and pool.handout.members()[0].next_token is not None
        for shown in (repr(held), repr(member), repr(pool.handout.members()[0])):  # a log line, a traceback
            assert held.token not in shown and "s3cr3t-value" not in shown and "pc_" not in shown, shown


async def test_no_double_hand_out_under_cancellations_and_timeouts(tmp_path: Path) -> None:
    cfg = config(target_ready=4, max_ready=4, max_total=8, max_concurrent_creates=2,
                 instant={"create_delay": "1ms"})
    holders: Counter[str] = Counter()
    handed: Counter[str] = Counter()
    rng = random.Random(7)

    async with PoolManager(cfg, state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)

        async def claimer() -> None:
            for _ in range(40):
                try:
                    claim = await mgr.claim("p", timeout=rng.choice([0.0, 0.002, 0.02, 0.2]))
                except ClaimTimeout:
                    continue
                holders[claim.id] += 1
                handed[claim.id] += 1
                assert holders[claim.id] == 1, f"{claim.id} held twice"
                await asyncio.sleep(rng.random() / 500)
                holders[claim.id] -= 1
                await mgr.release("p", claim.id)

        async def canceller() -> None:
            for _ in range(150):
                t = asyncio.create_task(mgr.claim("p", timeout=1))
                await asyncio.sleep(rng.random() / 1000)
                t.cancel()
                try:
                    claim = await t
                except (asyncio.CancelledError, ClaimTimeout):
                    continue
                assert handed[claim.id] == 0
                handed[claim.id] += 1
                await mgr.release("p", claim.id)

        await asyncio.gather(*(claimer() for _ in range(32)), canceller(), canceller())
        assert max(handed.values()) == 1  # single use: nobody ever got a sandbox someone else had
        assert sum(handed.values()) > 100
        await mgr.warm_up(10)
        pool = mgr.pools["p"]
        await wait_for(lambda: pool.counts()["terminating"] == 0 and not pool.handout.waiting(), 5)
        conserved(mgr)
        assert pool.counts()["claimed"] == 0
    assert provider(mgr).live == {}


async def test_on_empty_fail_says_why(tmp_path: Path) -> None:
    async with PoolManager(config(target_ready=1, on_empty="fail"), state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        await mgr.pause("p")
        await mgr.claim("p")
        with pytest.raises(PoolExhausted, match="no ready sandbox: pool empty and paused"):
            await mgr.claim("p")
        snap = await mgr.snapshot("p")
        assert snap.metrics["claims"]["failed"] == 1
        assert any(r["reason"].startswith("pool empty") for r in snap.metrics["claims_by_reason"])


async def test_on_empty_create_gives_a_cold_claim(tmp_path: Path) -> None:
    cfg = config(target_ready=1, max_ready=2, on_empty="create", instant={"create_delay": "20ms"})
    async with PoolManager(cfg, state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        first = await mgr.claim("p")
        second = await mgr.claim("p", timeout=5)
        assert first.warm and not second.warm and second.reason == "pool empty"
        assert (await mgr.snapshot("p")).metrics["claims"] == {"warm": 1, "cold": 1, "failed": 0, "timed_out": 0}


async def test_waiters_are_served_first_come_first_served(tmp_path: Path) -> None:
    cfg = config(target_ready=1, max_ready=1, max_total=1, instant={"create_delay": "30ms"})
    async with PoolManager(cfg, state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        held = await mgr.claim("p")
        served: list[int] = []

        async def wait(n: int) -> None:
            claim = await mgr.claim("p", timeout=5)
            served.append(n)
            await mgr.release("p", claim.id)

        tasks = []
        for n in range(4):
            tasks.append(asyncio.create_task(wait(n)))
            await wait_for(lambda: mgr.pools["p"].handout.waiting() == len(tasks), 2)
        await mgr.release("p", held.id)
        await asyncio.gather(*tasks)
        assert served == [0, 1, 2, 3]


def test_claim_timeout_is_bounded_when_nothing_gets_ready(tmp_path: Path) -> None:
    cfg = config(target_ready=1, readiness={"http": "/", "timeout": "10s"})

    async def main() -> None:
        async with virtual_manager(cfg, tmp_path) as (mgr, clock):
            provider(mgr).never_ready = True
            start = clock.monotonic()
            with pytest.raises(ClaimTimeout, match="no sandbox became ready in time"):
                await mgr.claim("p", timeout=0.3)
            assert clock.monotonic() - start == pytest.approx(0.3)  # the deadline, on the engine's clock
            assert (await mgr.snapshot("p")).metrics["claims"]["timed_out"] == 1

    virtual_time.run(main())


def test_failing_creates_degrade_back_off_and_recover(tmp_path: Path) -> None:
    async def main() -> None:
        async with virtual_manager(config(target_ready=2, create_retries=2, instant={"fail": True}), tmp_path) \
                as (mgr, clock):
            await wait_for(lambda: mgr.pool("p").snapshot().metrics["create_failures"] >= 5, 10)
            snap = await mgr.snapshot("p")
            assert snap.state == "degraded" and "instant provider told to fail" in snap.reason
            created = [e.ts for e in await mgr.recent_events("p") if e.kind == "created"]
            gaps = [b - a for a, b in zip(created, created[1:], strict=False)]
            # Two at once, both fail; then one create at a time, each after a doubled pause.
            assert gaps[:4] == pytest.approx([0.0, 0.4, 0.8, 1.6], abs=0.005), gaps
            provider(mgr).fail = False
            await wait_for(lambda: mgr.pool("p").snapshot().state == "healthy", 10)
            kinds = [e.kind for e in await mgr.recent_events("p")]
            assert "degraded" in kinds and "recovered" in kinds

    virtual_time.run(main())


async def test_resize_up_and_down_never_touches_claimed(tmp_path: Path) -> None:
    async with PoolManager(config(target_ready=2, max_ready=6), state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        held = await mgr.claim("p")
        await mgr.resize("p", target=5)
        await mgr.warm_up(5)
        pool = mgr.pools["p"]
        assert len(pool.handout) == 5
        newest = sorted(pool.handout.members(), key=lambda m: m.ready_at or 0)[-4:]
        await mgr.resize("p", target=1)
        await wait_for(lambda: len(pool.handout) == 1 and pool.counts()["terminating"] == 0, 5)
        assert all(m.id not in pool.members for m in newest)  # the newest idle ones went
        assert {pool.recently_gone[m.id] for m in newest} == {"surplus after resize to target 1"}
        assert pool.members[held.id].state is MemberState.CLAIMED
        with pytest.raises(PoolError, match="min_ready <= target_ready <= max_ready"):
            await mgr.resize("p", target=7)
        assert pool.cfg.target_ready == 1


def test_a_surplus_nobody_resized_for_says_what_it_is(tmp_path: Path) -> None:
    """on_empty = "create": a claimer that gave up leaves the create made for it over the target. It is
    trimmed, and the reason says so; it does not claim a resize that never happened."""

    async def main() -> None:
        cfg = config(target_ready=1, max_ready=2, on_empty="create", instant={"create_delay": "1s"})
        async with virtual_manager(cfg, tmp_path) as (mgr, clock):
            await mgr.warm_up(5)
            await mgr.claim("p")
            with pytest.raises(ClaimTimeout):
                await mgr.claim("p", timeout=0.1)
            pool = mgr.pools["p"]
            await wait_for(lambda: any("surplus" in why for why in pool.recently_gone.values()), 10)
            assert [why for why in pool.recently_gone.values() if "surplus" in why] == \
                ["surplus: 2 ready or starting for a target of 1"]

    virtual_time.run(main())


async def test_resize_down_retires_not_ready_members_first(tmp_path: Path) -> None:
    cfg = config(target_ready=2, max_ready=6, instant={"ready_delay": "300ms"})
    async with PoolManager(cfg, state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        pool = mgr.pools["p"]
        ready_before = set(pool.handout)
        await mgr.resize("p", target=5)
        await wait_for(lambda: pool.counts()["starting"] == 3, 2)
        await mgr.resize("p", target=2)
        await wait_for(lambda: pool.counts()["starting"] == 0 and pool.counts()["terminating"] == 0, 5)
        assert set(pool.handout) == ready_before


async def test_drain_then_resume(tmp_path: Path) -> None:
    async with PoolManager(config(target_ready=2), state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        held = await mgr.claim("p")
        await mgr.drain("p")
        with pytest.raises(PoolDraining):
            await mgr.claim("p")
        pool = mgr.pools["p"]
        await wait_for(lambda: set(pool.members) == {held.id}, 5)
        assert (await mgr.snapshot("p")).state == "draining"
        await mgr.release("p", held.id)
        await wait_for(lambda: mgr.pool("p").snapshot().state == "drained", 5)
        await mgr.resume("p")
        await mgr.warm_up(5)
        assert (await mgr.snapshot("p")).state == "healthy"


async def test_pause_stops_refill_but_serves_claims(tmp_path: Path) -> None:
    async with PoolManager(config(target_ready=2), state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        await mgr.pause("p")
        await mgr.claim("p")
        creates = (await mgr.snapshot("p")).metrics["creates"]
        mgr.pools["p"].reconcile()
        assert (await mgr.snapshot("p")).metrics["creates"] == creates
        assert (await mgr.snapshot("p")).state == "paused"
        await mgr.resume("p")
        await mgr.warm_up(5)


def test_members_near_their_ttl_are_recycled_and_never_handed_out(tmp_path: Path) -> None:
    cfg = config(target_ready=2, ttl="600ms", min_remaining_ttl="300ms", ttl_jitter=0.0)

    async def main() -> None:
        async with virtual_manager(cfg, tmp_path) as (mgr, clock):
            await mgr.warm_up(5)
            first = set(mgr.pools["p"].handout)
            born = clock.monotonic()
            await wait_for(lambda: not (first & set(mgr.pools["p"].members)), 3)
            # Retired when 300 ms were left, not before, not at the TTL itself.
            assert clock.monotonic() - born == pytest.approx(0.3, abs=0.02)
            events = [e for e in await mgr.recent_events("p") if e.member_id in first and e.kind == "terminating"]
            assert {e.detail for e in events} == {"less than min_remaining_ttl left"}
            for _ in range(20):  # claims over several generations of members: none with less than 300 ms
                claim = await mgr.claim("p", timeout=2)
                assert claim.expires_at - clock.time() >= 0.3 - 1e-6
                await mgr.release("p", claim.id)
                await clock.sleep(0.07)

    virtual_time.run(main())


def test_claimed_member_is_killed_at_its_hard_ttl(tmp_path: Path) -> None:
    cfg = config(target_ready=1, ttl="400ms", min_remaining_ttl="100ms", ttl_jitter=0.0)

    async def main() -> None:
        async with virtual_manager(cfg, tmp_path) as (mgr, clock):
            await mgr.warm_up(5)
            claim = await mgr.claim("p")
            await wait_for(lambda: claim.id not in mgr.pools["p"].members, 3)
            assert clock.time() >= claim.expires_at  # not before its TTL
            [why] = [e.detail for e in await mgr.recent_events("p")
                     if e.kind == "terminating" and e.member_id == claim.id]
            assert "hard TTL" in why or "reached its TTL" in why
            assert await mgr.release("p", claim.id) is False

    virtual_time.run(main())


async def test_unhealthy_and_dead_members_are_never_handed_out(tmp_path: Path) -> None:
    async with PoolManager(config(target_ready=3), state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        prov = provider(mgr)
        ids = list(mgr.pools["p"].handout)
        prov.unhealthy.add(ids[0])
        prov.live.pop(ids[1])  # killed from outside without anyone noticing yet
        report = await mgr.maintain("p")
        assert report.removed_unhealthy == [ids[0], ids[1]]  # in hand-out order
        claim = await mgr.claim("p")
        assert claim.id == ids[2]
        await mgr.warm_up(5)


async def test_a_member_that_dies_is_replaced(tmp_path: Path) -> None:
    async with PoolManager(config(target_ready=2), state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        victim = next(iter(mgr.pools["p"].handout))
        provider(mgr).kill_from_outside(victim)
        await wait_for(lambda: victim not in mgr.pools["p"].members and len(mgr.pools["p"].handout) == 2, 5)


async def test_check_health_at_claim_skips_a_failing_member(tmp_path: Path) -> None:
    async with PoolManager(config(target_ready=2), state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        first, second = list(mgr.pools["p"].handout)
        provider(mgr).unhealthy.add(first)
        claim = await mgr.claim("p", check_health=True)
        assert claim.id == second
        assert first not in mgr.pools["p"].handout


async def test_claim_key_is_idempotent(tmp_path: Path) -> None:
    async with PoolManager(config(), state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        a = await mgr.claim("p", claim_key="job-1")
        b = await mgr.claim("p", claim_key="job-1")
        assert a.id == b.id and (await mgr.snapshot("p")).counts["claimed"] == 1


async def test_bad_ids_change_nothing(tmp_path: Path) -> None:
    async with PoolManager(config(), state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        ready = set(mgr.pools["p"].handout)
        with pytest.raises(SandboxNotFound, match="'nope'"):
            await mgr.terminate("p", [next(iter(ready)), "nope"])
        assert set(mgr.pools["p"].handout) == ready
        with pytest.raises(SandboxNotFound):
            await mgr.release("p", "nope")
        claim = await mgr.claim("p")
        assert await mgr.release("p", claim.id) is True
        assert await mgr.release("p", claim.id) is False


async def test_events_reach_subscribers_and_slow_ones_lose_the_oldest(tmp_path: Path) -> None:
    async with PoolManager(config(target_ready=1), state_dir=tmp_path) as mgr:
        sub = mgr.bus.subscribe(size=3)
        await mgr.warm_up(5)
        for _ in range(3):
            await mgr.release("p", (await mgr.claim("p", timeout=2)).id)
        assert sub.queue.qsize() == 3 and sub.dropped > 0
        sub.close()
        stored = mgr.store.events("p") if mgr.store else []
        assert {"claimed", "released"} <= {e.kind for e in stored}
        assert not {"created", "ready", "terminated"} & {e.kind for e in stored}  # a member row tells those


def test_a_members_life_has_one_event_per_state(tmp_path: Path) -> None:
    """Single use: created, starting, ready, claimed, then the claim's end (released, or lease_expired) moves
    it to terminating in the same event, and it is gone: 6 events for its 6 states."""
    async def main() -> None:
        async with virtual_manager(config(target_ready=2), tmp_path) as (mgr, clock):
            await mgr.warm_up(5)
            released = await mgr.claim("p")
            await mgr.release("p", released.id)
            lapsed = await mgr.claim("p", lease=5, claim_key="job-1")
            def gone() -> bool:
                return {released.id, lapsed.id} <= {e.member_id for e in mgr.bus.recent if e.kind == "terminated"}
            await wait_for(gone, 60)
            life = {c.id: [(e.kind, e.state, e.detail) for e in mgr.bus.recent if e.member_id == c.id]
                    for c in (released, lapsed)}
            start = [("created", "creating"), ("starting", "starting"), ("ready", "ready"), ("claimed", "claimed")]
            assert [k[:2] for k in life[released.id]] == [*start, ("released", "terminating"), ("terminated", "gone")]
            assert [k[:2] for k in life[lapsed.id]] == [*start, ("lease_expired", "terminating"),
                                                       ("terminated", "gone")]
            assert life[lapsed.id][4][2] == "job-1"  # whose lease it was
            assert mgr.pools["p"].recently_gone[lapsed.id] == "lease expired"

    virtual_time.run(main())


async def test_record_before_create(tmp_path: Path) -> None:
    async with PoolManager(config(target_ready=1, instant={"create_delay": "200ms"}), state_dir=tmp_path) as mgr:
        await wait_for(lambda: mgr.pools["p"].counts()["creating"] == 1, 2)
        assert mgr.store is not None
        rows = mgr.store.members("p")
        assert [r.state for r in rows] == ["creating"]
        assert provider(mgr).created == 0


async def test_stop_keep_leaves_members_recorded(tmp_path: Path) -> None:
    mgr = PoolManager(config(target_ready=2), state_dir=tmp_path)
    await mgr.start()
    await mgr.warm_up(5)
    claim = await mgr.claim("p")
    await mgr.warm_up(5)
    prov = provider(mgr)
    await mgr.stop(keep=True)
    assert len(prov.live) == 3  # two ready and one claimed, all left running
    from poolui.core.store import Store

    store = Store(tmp_path)
    assert {r.state for r in store.members("p")} >= {"claimed"}
    assert claim.id in {r.id for r in store.members("p")}
    store.close()


async def test_one_manager_per_state_dir(tmp_path: Path) -> None:
    async with PoolManager(config(), state_dir=tmp_path):
        with pytest.raises(PoolError, match="is in use by pid"):
            await PoolManager(config(), state_dir=tmp_path).start()


async def test_warm_up_timeout_says_which_pool_and_why(tmp_path: Path) -> None:
    async with PoolManager(config(create_retries=1), state_dir=tmp_path) as mgr:
        provider(mgr).fail = True
        with pytest.raises(WarmUpTimeout, match=r"pool 'p' has 0/3 ready \(degraded: .*told to fail"):
            await mgr.warm_up(0.5)


async def test_snapshot_views_follow_every_change(tmp_path: Path) -> None:
    async with PoolManager(config(target_ready=1), state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        (before,) = (await mgr.snapshot("p")).members
        claim = await mgr.claim("p", claim_key="k")
        after = {m.id: m for m in (await mgr.snapshot("p")).members}[claim.id]
        assert (before.state, after.state, after.claim_key) == ("ready", "claimed", "k")
        assert after.ttl_left <= before.ttl_left


async def test_an_unreachable_provider_at_start_degrades_then_adopts_and_refills(tmp_path: Path) -> None:
    async with PoolManager(config(target_ready=2, instant={"unreachable": True}), state_dir=tmp_path) as mgr:
        snap = await mgr.snapshot("p")
        assert snap.state == "degraded" and "unreachable" in snap.reason
        assert provider(mgr).created == 0  # nothing is made before leftovers are accounted for
        with pytest.raises(ClaimTimeout, match="degraded: provider unreachable"):
            await mgr.claim("p", timeout=0.1)
        provider(mgr).unreachable = False
        await mgr.warm_up(10)
        assert (await mgr.snapshot("p")).state == "healthy"
        assert "recovered" in [e.kind for e in await mgr.recent_events("p")]


async def test_maintenance_kills_strays_it_does_not_know(tmp_path: Path) -> None:
    from poolui.providers.base import Sandbox

    async with PoolManager(config(target_ready=2), state_dir=tmp_path) as mgr:
        await mgr.warm_up(5)
        prov = provider(mgr)
        prov.live["pu-stray"] = Sandbox("pu-stray", "instant://p/pu-stray")
        report = await mgr.maintain("p")
        assert report.removed_strays == ["pu-stray"]
        await wait_for(lambda: "pu-stray" not in prov.live, 5)
        assert len(prov.live) == 2 and set(prov.live) == set(mgr.pools["p"].members)
