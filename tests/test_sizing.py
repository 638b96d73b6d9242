"""The setpoint (core/sizing.py): what refill aims at, proposed by a policy and kept within the operator's
sizes. Unit tests of the policy object alone, then the engine on virtual time following it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import wait_for

from poolui import virtual_time
from poolui.clock import Clock, LoopClock
from poolui.config import PoolConfig
from poolui.config.autoscale import AutoscaleConfig
from poolui.core.autoscale import Autoscaler
from poolui.core.manager import PoolManager
from poolui.core.model import PoolSnapshot
from poolui.core.sizing import Signals, Sizes, Sizing, Static
from poolui.pool_file import parse_config


class Steps(Clock):
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


class Wants:
    """A policy that asks for a fixed number, and notes when it was asked."""

    name = "wants"
    reason = "told to"

    def __init__(self, n: int) -> None:
        self.n = n
        self.asked: list[float] = []
        self.claims: list[float] = []

    def want(self, sizes: Sizes, now: float, seen: Callable[[], Signals]) -> int:
        self.asked.append(now)
        return self.n

    def claimed(self, now: float) -> None:
        self.claims.append(now)


def sizes(target: int = 3, lo: int = 1, hi: int = 5) -> PoolConfig:
    return PoolConfig(name="p", target_ready=target, min_ready=lo, max_ready=hi)


def test_static_is_the_operators_target() -> None:
    s = Sizing(Steps())
    assert isinstance(s.policy, Static) and s.source == "static"
    assert s.setpoint(sizes(target=3)) == 3
    assert s.setpoint(sizes(target=0, lo=0)) == 0


def test_a_policy_is_kept_within_min_ready_and_max_ready() -> None:
    clock, policy = Steps(), Wants(50)
    s = Sizing(clock, policy)
    assert s.setpoint(sizes(hi=5)) == 5  # max_ready: the most ready sandboxes a pool keeps
    policy.n = -3
    assert s.setpoint(sizes(lo=1)) == 1  # min_ready: no policy takes a pool into check's critical
    policy.n = 4
    clock.now = 160.0
    assert s.setpoint(sizes()) == 4
    assert policy.asked[-1] == 160.0  # asked on the clock it was given


def test_a_resize_wins_over_the_policy_until_resumed() -> None:
    policy = Wants(5)
    s = Sizing(Steps(), policy)
    s.resized()
    assert s.source == "manual"
    assert s.setpoint(sizes(target=2)) == 2
    n = len(policy.asked)
    assert s.setpoint(sizes(target=2)) == 2 and len(policy.asked) == n  # not even asked
    s.resumed()
    assert s.source == "wants" and s.setpoint(sizes(target=2)) == 5


def config(**pool: Any) -> Any:
    base: dict[str, Any] = {"provider": "instant", "target_ready": 2, "min_ready": 1, "max_ready": 4,
                            "max_total": 20, "health": {"http": "/", "interval": "1h", "timeout": "1s"}}
    base.update(pool)
    return parse_config({"pools": {"p": base}}, "test")


async def settle(clock: Clock, seconds: float = 30.0) -> None:
    """Let the engine run on for `seconds` of virtual time (refill looks again every second at least)."""
    await clock.sleep(seconds)


def test_refill_follows_the_setpoint_and_max_ready_bounds_it(tmp_path: Path) -> None:
    """A policy asking for 50 gets max_ready (4) ready sandboxes and 4 creates, not 50; one asking for
    none keeps min_ready; the target of a resize holds until resume hands sizing back."""

    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        async with PoolManager(config(), state_dir=tmp_path, clock=clock) as mgr:
            await mgr.warm_up(5)
            pool = mgr.pool("p")
            assert len(pool.handout) == 2 and pool.metrics.creates == 2
            pool.sizing.policy = policy = Wants(50)
            pool.kick()
            await settle(clock)
            assert len(pool.handout) == 4 and pool.metrics.creates == 4 and pool.live() == 4
            assert (await mgr.snapshot("p")).state == "healthy"
            policy.n = 0
            pool.kick()
            await wait_for(lambda: pool.live() == 1, 5)
            await settle(clock)
            assert len(pool.handout) == 1 and pool.metrics.creates == 4
            await mgr.resize("p", target=3)
            await wait_for(lambda: len(pool.handout) == 3, 5)
            await settle(clock)
            assert len(pool.handout) == 3 and pool.sizing.source == "manual"
            await mgr.resume("p")
            await wait_for(lambda: pool.live() == 1, 5)
            assert [e.detail for e in await mgr.recent_events("p") if e.kind == "terminating"][-2:] == \
                ["surplus: 3 ready or starting for a target of 1"] * 2

    virtual_time.run(main())


def test_warm_up_waits_for_the_setpoint(tmp_path: Path) -> None:
    """warm_up waits for what refill aims at, not for the pool file's target."""

    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        async with PoolManager(config(instant={"create_delay": "1s"}), state_dir=tmp_path, clock=clock) as mgr:
            await mgr.warm_up(5)
            pool = mgr.pool("p")
            pool.sizing.policy = Wants(3)
            pool.kick()
            start = clock.monotonic()
            await mgr.warm_up(5)
            assert len(pool.handout) == 3 and clock.monotonic() - start >= 1.0

    virtual_time.run(main())


def test_news_tells_of_the_policys_moves_only() -> None:
    policy = Wants(3)
    s = Sizing(Steps(), policy)
    s.setpoint(sizes())
    assert s.news() is None  # the first setpoint moved from nothing
    policy.n = 5
    s.setpoint(sizes())
    assert s.news() == "3 -> 5: told to" and s.news() is None
    s.resized()
    s.setpoint(sizes(target=2))
    assert s.news() is None  # a resize has its own event
    s.resumed()
    s.setpoint(sizes(target=2))
    assert s.news() == "2 -> 5: told to"
    static = Sizing(Steps())
    static.setpoint(sizes(target=3))
    static.news()
    static.setpoint(sizes(target=4))
    assert static.news() is None  # a static target moves only by a resize


def test_the_policy_hears_of_every_new_claim(tmp_path: Path) -> None:
    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        async with PoolManager(config(), state_dir=tmp_path, clock=clock, store="memory") as mgr:
            await mgr.warm_up(5)
            pool = mgr.pool("p")
            pool.sizing.policy = policy = Wants(2)
            await mgr.claim("p", claim_key="a")
            await mgr.claim("p", claim_key="a")  # a retry of the same claim: not new demand
            await mgr.claim("p")
            assert policy.claims == [clock.monotonic()] * 2

    virtual_time.run(main())


def test_snapshots_say_the_setpoint_and_who_sets_it(tmp_path: Path) -> None:
    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        async with PoolManager(config(), state_dir=tmp_path, clock=clock, store="memory") as mgr:
            snap = await mgr.snapshot("p")
            assert (snap.target_ready, snap.setpoint, snap.sizing) == (2, 2, "static")
            mgr.pool("p").sizing.policy = Wants(9)
            snap = await mgr.snapshot("p")
            assert (snap.target_ready, snap.setpoint, snap.sizing) == (2, 4, "wants")  # max_ready 4
            snap = await mgr.resize("p", target=3)
            assert (snap.target_ready, snap.setpoint, snap.sizing) == (3, 3, "manual")
            again = PoolSnapshot.from_dict(snap.to_dict())  # as a client reads it
            assert (again.setpoint, again.sizing) == (3, "manual")
            older = {k: v for k, v in snap.to_dict().items() if k not in ("setpoint", "sizing")}
            assert (PoolSnapshot.from_dict(older).setpoint, PoolSnapshot.from_dict(older).sizing) == (None, "static")

    virtual_time.run(main())


def test_new_bounds_alone_leave_the_policy_in_charge(tmp_path: Path) -> None:
    """A resize of max_ready only is the operator moving a bound, not taking over: the policy's setpoint
    follows the new bound; a resize with a target takes over."""

    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        async with PoolManager(config(max_total=30), state_dir=tmp_path, clock=clock, store="memory") as mgr:
            pool = mgr.pool("p")
            pool.sizing.policy = Wants(9)
            assert (await mgr.snapshot("p")).setpoint == 4
            snap = await mgr.resize("p", max_ready=12)
            assert (snap.setpoint, snap.sizing) == (9, "wants")
            snap = await mgr.resize("p", target=5)
            assert (snap.setpoint, snap.sizing) == (5, "manual")

    virtual_time.run(main())


def test_signals_are_gathered_only_when_a_policy_looks() -> None:
    """Refill asks for the setpoint on every claim; a percentile over 4,096 samples is not free, so a
    static pool never gathers signals, and the autoscaler does once a second."""
    gathered: list[int] = []

    def signals() -> Signals:
        gathered.append(1)
        return Signals(0.0)

    clock = Steps()
    static = Sizing(clock, signals=signals)
    for _ in range(100):
        static.setpoint(sizes())
    assert gathered == []
    auto = Sizing(clock, Autoscaler(AutoscaleConfig()), signals)
    for i in range(300):
        clock.now = 100.0 + i / 100
        auto.setpoint(sizes())
    assert len(gathered) == 3
