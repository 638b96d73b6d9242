"""The autoscaling policy (core/autoscale.py) on a clock the test moves: the base stock it sizes by, a step
in the claim rate (up within the panic window), a drop (down only after scale_down_delay), step limits,
bounds, a degraded pool; then the engine following it on virtual time."""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import replace
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from poolui import virtual_time
from poolui.clock import LoopClock
from poolui.config import PoolConfig
from poolui.config.autoscale import AutoscaleConfig, ScheduleRule
from poolui.config.cron import Cron
from poolui.core.autoscale import Autoscaler, base_stock
from poolui.core.manager import PoolManager
from poolui.core.sizing import Signals
from poolui.errors import ClaimTimeout, ConfigError
from poolui.pool_file import parse_config

SIZES = PoolConfig(name="p", target_ready=2, min_ready=1, max_ready=100, max_total=200)
DEFAULTS = AutoscaleConfig()
WALL = datetime(2026, 12, 7, 8, 58, tzinfo=UTC).timestamp()  # a Monday, two minutes before nine


def poisson_below(mean: float, s: int) -> float:
    """P(Poisson(mean) < s), summed exactly (floats overflow mean**k past a mean of ~140)."""
    m = Fraction(mean)
    return math.exp(-mean) * float(sum(m**k / math.factorial(k) for k in range(s)))


@pytest.mark.parametrize("mean", [0.05, 1.0, 3.75, 20.0, 150.0])
def test_base_stock_is_the_smallest_level_that_meets_the_hit_rate(mean: float) -> None:
    s = base_stock(mean, 0.99)
    assert poisson_below(mean, s) >= 0.99 > poisson_below(mean, s - 1)


def test_base_stock_edges() -> None:
    assert base_stock(0.0, 0.99) == 0  # no claims: nothing to keep for them
    assert base_stock(1.0, 0.99) == 5  # P(Poisson(1) < 5) = 0.9963; < 4: 0.981
    assert 10_150 < base_stock(10_000.0, 0.99) < 10_300  # about mean + 2.33 sd, no underflow
    assert base_stock(1e9, 0.99, limit=50) == 50


class Run:
    """An autoscaler fed claims second by second, asked once a second, as refill asks it."""

    def __init__(self, cfg: AutoscaleConfig = DEFAULTS, ready_time: float | None = 1.0,
                 sizes: PoolConfig = SIZES) -> None:
        self.policy = Autoscaler(cfg)
        self.now = 1000.0
        self.ready_time = ready_time
        self.sizes = sizes
        self.degraded = False
        self.trace: list[tuple[float, int]] = []

    def seconds(self, n: int, rate: float = 0.0) -> int:
        """n seconds at `rate` claims per second (spread over each second); the setpoint at the end."""
        owed = 0.0
        for _ in range(n):
            owed += rate
            for i in range(int(owed)):
                self.policy.claimed(self.now + i / max(rate, 1))
            owed -= int(owed)
            self.now += 1.0
            self.trace.append((self.now, self.ask()))
        return self.trace[-1][1]

    def ask(self) -> int:
        wall = WALL + self.now - 1000.0
        return self.policy.want(self.sizes, self.now, lambda: Signals(wall, self.ready_time, self.degraded))

    def first(self, pred: object) -> float:
        """Seconds from the start of the trace to the first setpoint that passes pred."""
        assert callable(pred)
        return next(t for t, v in self.trace if pred(v)) - self.trace[0][0] + 1


def test_a_steady_rate_gets_its_base_stock() -> None:
    run = Run()
    assert run.ask() == 2  # the operator's target, before any claim
    assert run.seconds(120, rate=1.0) == base_stock(1.0, 0.99) == 5
    # 5 is over twice the 2 it started from: a burst, seen over the short window
    assert run.policy.reason == "up: panic: 1 claims/s over 6s, ready in 1s (mean)"


def test_a_step_up_is_followed_within_the_panic_window() -> None:
    run = Run()
    run.seconds(120, rate=1.0)
    run.trace.clear()
    run.seconds(10, rate=20.0)
    need = base_stock(20.0, 0.99)
    assert run.first(lambda v: v >= need - 4) <= 6  # the burst rate over 6 s catches up within 6 s
    assert run.trace[-1][1] >= need - 1 and run.policy.reason.startswith("up: panic")


def test_a_drop_lowers_it_only_after_scale_down_delay() -> None:
    run = Run()
    run.seconds(120, rate=5.0)
    high = run.trace[-1][1]
    assert high == base_stock(5.0, 0.99)
    run.trace.clear()
    run.seconds(600, rate=0.5)
    low = base_stock(0.5, 0.99)
    first_lower = run.first(lambda v: v < high)
    assert 300 <= first_lower <= 300 + 60 + 2  # not before the delay; the stable window then lets go
    assert run.trace[-1][1] == low and run.policy.reason.startswith("down:")


def test_a_burst_holds_it_up_for_a_window_after_it_panicked() -> None:
    run = Run(AutoscaleConfig(scale_down_delay=0.0))
    run.seconds(60, rate=1.0)
    run.seconds(6, rate=30.0)
    peak = run.trace[-1][1]
    run.trace.clear()
    run.seconds(120, rate=0.0)
    assert run.first(lambda v: v < peak) >= 55  # panic lasts a window from when it began (here 2 s in)


def test_step_limits_and_bounds() -> None:
    run = Run(AutoscaleConfig(max_step_up=2, max_step_down=1, scale_down_delay=0.0, max=9))
    run.seconds(30, rate=10.0)
    ups = [b - a for (_, a), (_, b) in zip(run.trace, run.trace[1:], strict=False)]
    assert max(ups) <= 2 and run.trace[-1][1] == 9  # never past the autoscale max
    run.trace.clear()
    run.seconds(200, rate=0.0)
    downs = [a - b for (_, a), (_, b) in zip(run.trace, run.trace[1:], strict=False)]
    assert max(downs) <= 1 and run.trace[-1][1] == 1  # min_ready: the floor when nothing is claimed
    floor = Run(AutoscaleConfig(min=3, scale_down_delay=0.0))
    assert floor.seconds(200) == 3


def test_a_degraded_pool_is_not_scaled_up_and_max_wait_needs_less() -> None:
    run = Run()
    run.degraded = True
    assert run.seconds(60, rate=5.0) == 2
    run.degraded = False
    assert run.seconds(1, rate=5.0) == base_stock(5.0, 0.99)
    patient = Run(AutoscaleConfig(max_wait=0.5))
    assert patient.seconds(60, rate=5.0) == base_stock(2.5, 0.99) < base_stock(5.0, 0.99)


def test_the_measured_ready_time_counts_and_a_default_stands_in_before_it() -> None:
    unmeasured = Run(replace(AutoscaleConfig(), ready_time=3.0), ready_time=None)
    assert unmeasured.seconds(60, rate=2.0) == base_stock(6.0, 0.99)
    slow = Run(ready_time=4.0)
    assert slow.seconds(60, rate=2.0) == base_stock(8.0, 0.99)


def autoscaled(**pool: Any) -> Any:
    base: dict[str, Any] = {"provider": "instant", "target_ready": 2, "min_ready": 1, "max_ready": 60,
                            "max_total": 120, "ttl": "1h", "claim_timeout": "30s", "max_concurrent_creates": 60,
                            "instant": {"create_delay": "1s"}, "autoscale": {},
                            "health": {"http": "/", "interval": "1h", "timeout": "1s"}}
    base.update(pool)
    return parse_config({"pools": {"p": base}}, "test")


class Load:
    """Claims at a rate on the engine's clock, each held for `hold` seconds, then released."""

    def __init__(self, mgr: PoolManager, clock: LoopClock) -> None:
        self.mgr, self.clock = mgr, clock
        self.tasks: set[asyncio.Task[None]] = set()
        self.warm = self.cold = self.timed_out = 0

    async def one(self, hold: float) -> None:
        try:
            c = await self.mgr.claim("p")
        except ClaimTimeout:
            self.timed_out += 1
            return
        self.warm, self.cold = self.warm + c.warm, self.cold + (not c.warm)
        await self.clock.sleep(hold)
        await self.mgr.release("p", c.id)

    async def run(self, seconds: float, rate: float, hold: float = 0.5) -> None:
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end:
            t = asyncio.create_task(self.one(hold))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)
            await self.clock.sleep(1 / rate)

    async def done(self) -> None:
        await asyncio.gather(*self.tasks)


def test_the_pool_follows_a_step_in_the_claim_rate(tmp_path: Path) -> None:
    """2 claims/s, then 20/s: the setpoint moves to each rate's base stock (create-to-ready measured at
    1 s), within the panic window for the step; every move is a 'setpoint' event with its reason; refill
    never has more ready and creating than the setpoint (creates in flight count)."""

    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        async with PoolManager(autoscaled(), state_dir=tmp_path, clock=clock, store="memory") as mgr:
            pool, load = mgr.pool("p"), Load(mgr, clock)
            over: list[int] = []
            watch = asyncio.create_task(watch_refill(pool, clock, over))
            await mgr.warm_up(5)
            await load.run(60, rate=2.0)
            assert pool.sizing.value == base_stock(2.0, 0.99)
            step = clock.time()
            await load.run(10, rate=20.0)
            await load.done()
            watch.cancel()
            assert mgr.store is not None
            moves = [(e.ts - step, e.detail) for e in mgr.store.events("p", 100_000) if e.kind == "setpoint"]
            need = base_stock(20.0, 0.99)
            assert [d for t, d in moves if 0 < t <= 6.0][-1].startswith(f"27 -> {need}: up: panic: 20 claims/s over 6s")
            assert [d.split(":")[0] for t, d in moves if t > 0] == ["7 -> 18", "18 -> 23", "23 -> 27", f"27 -> {need}"]
            assert not over, over

    virtual_time.run(main())


async def watch_refill(pool: Any, clock: LoopClock, over: list[int]) -> None:
    """Note every moment ready + creating (less what waiters are owed) is over the setpoint."""
    while True:
        have = len(pool.handout) + pool.in_flight()
        if pool.sizing.value is not None and have > pool.sizing.value + pool.handout.waiting():
            over.append(have)
        await clock.sleep(0.05)


@pytest.mark.parametrize(("table", "message"), [
    ({"min": 5, "max": 3}, "min = 5, max = 3 are not allowed: expected min_ready (1) <= min <= max <= max_ready (60)"),
    ({"max": 61}, "max = 61 are not allowed"),
    ({"min": 0}, "min = 0, max = 60 are not allowed"),
    ({"panic_window": "2m"}, "panic_window = 2m is not allowed: expected at most window = 1m"),
    ({"hit_rate": 1.0}, "key 'hit_rate' = 1.0 is not allowed: expected a number from 0.5 to 0.9999"),
    ({"hit": 0.9}, "hit"),
])
def test_the_autoscale_table_is_checked(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as e:
        autoscaled(autoscale=table)
    assert str(e.value).startswith("test: pool 'p'.autoscale: ")


def test_a_pool_without_the_table_stays_static() -> None:
    cfg = autoscaled()
    assert cfg.pools["p"].autoscale == AutoscaleConfig()
    plain = parse_config({"pools": {"p": {"provider": "instant"}}}, "test")
    assert plain.pools["p"].autoscale is None


def test_failing_creates_are_not_multiplied_by_a_burst(tmp_path: Path) -> None:
    """Creates start failing under a burst of 20 claims/s: creates in flight count against the setpoint,
    backoff spaces the retries, and once the pool is degraded the setpoint does not rise: 10 s of the
    burst cost a handful of creates, not one per claim (agent-sandbox #1215: 5,537 for 1,004 needed)."""

    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        async with PoolManager(autoscaled(claim_timeout="2s"), state_dir=tmp_path, clock=clock,
                               store="memory") as mgr:
            pool, load = mgr.pool("p"), Load(mgr, clock)
            await mgr.warm_up(5)
            await load.run(30, rate=2.0)
            await load.done()
            pool.provider.fail = True  # type: ignore[attr-defined]  # the instant provider's fault switch
            before, peak = pool.metrics.creates, 0
            over: list[int] = []
            watch = asyncio.create_task(watch_refill(pool, clock, over))
            burst = asyncio.create_task(load.run(10, rate=20.0))
            while not burst.done():
                if pool.degraded_reason:
                    now = pool.sizing.setpoint(pool.cfg)
                    peak = peak or now
                    assert now <= peak  # degraded: never up
                await clock.sleep(0.1)
            await load.done()
            watch.cancel()
            assert peak and pool.metrics.creates - before <= 10 and not over, (pool.metrics.creates - before, over)
            assert load.timed_out > 150 and load.cold == 0

    virtual_time.run(main())


def test_a_resize_wins_until_resume_and_pause_and_drain_stop_refill(tmp_path: Path) -> None:
    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        async with PoolManager(autoscaled(), state_dir=tmp_path, clock=clock, store="memory") as mgr:
            pool, load = mgr.pool("p"), Load(mgr, clock)
            await mgr.warm_up(5)
            await load.run(30, rate=2.0)
            assert pool.sizing.value == base_stock(2.0, 0.99)
            await mgr.resize("p", target=3)
            await load.run(20, rate=5.0)
            assert pool.sizing.value == 3 and pool.sizing.source == "manual"
            assert len(pool.handout) + pool.in_flight() <= 3
            await mgr.resume("p")
            await load.run(2, rate=5.0)
            assert pool.sizing.value == base_stock(5.0, 0.99) and pool.sizing.source == "autoscale"
            await mgr.pause("p")
            creates = pool.metrics.creates
            await load.run(10, rate=2.0)
            assert pool.metrics.creates == creates  # paused: claims served, nothing refilled
            await mgr.resume("p")
            await load.done()
            await mgr.drain("p", wait=True, timeout=30)
            creates = pool.metrics.creates
            await clock.sleep(60)
            assert pool.metrics.creates == creates and not pool.members

    virtual_time.run(main())


def test_a_schedule_raises_the_floor_on_time_and_lets_it_go_when_another_rule_fires() -> None:
    rules = [{"cron": "0 9 * * 1-5", "min": 10}, {"cron": "30 9 * * 1-5", "min": 2}]
    cfg = autoscaled(autoscale={"schedule": rules, "scale_down_delay": "1m"}).pools["p"].autoscale
    run = Run(cfg, sizes=SIZES)
    run.seconds(119)  # to 08:59:59: yesterday's (Friday's) 09:30 rule is in force, min 2
    assert run.trace[-1][1] == 2 and run.policy.rule is not None and run.policy.rule.min == 2
    run.trace.clear()
    run.seconds(2)
    assert [v for _, v in run.trace] == [10, 10]  # 09:00:00, at once
    assert run.policy.reason == "up: schedule '0 9 * * 1-5' min 10"
    run.seconds(30 * 60 - 2)
    assert run.trace[-1][1] == 10  # no claims, yet held up to 09:29:59
    run.seconds(2)
    assert run.trace[-1][1] == 2 and run.policy.reason.startswith("down: ")


def test_a_claim_rate_above_the_scheduled_floor_still_counts() -> None:
    cfg = AutoscaleConfig(schedule=(ScheduleRule(Cron.parse("* * * * *"), 3),))
    run = Run(cfg)
    assert run.seconds(60, rate=5.0) == base_stock(5.0, 0.99)


@pytest.mark.parametrize(("text", "at", "last"), [
    ("0 9 * * 1-5", "2026-12-07 12:00", "2026-12-07 09:00"),  # Monday
    ("0 9 * * 1-5", "2026-12-07 08:59", "2026-12-04 09:00"),  # back to Friday
    ("*/15 * * * *", "2026-12-07 09:44", "2026-12-07 09:30"),
    ("5/20 8-10 * * *", "2026-12-07 11:00", "2026-12-07 10:45"),
    ("0 0 1 * 0", "2026-12-07 09:00", "2026-12-06 00:00"),  # either day field: Sunday the 6th
    ("0 0 * * 7", "2026-12-07 09:00", "2026-12-06 00:00"),  # 7 is Sunday too
    ("0 0 29 2 *", "2026-12-07 09:00", None),  # no 29 February within a year
])
def test_cron_last_firing(text: str, at: str, last: str | None) -> None:
    got = Cron.parse(text).last(datetime.fromisoformat(at))
    assert got == (datetime.fromisoformat(last) if last else None)


@pytest.mark.parametrize(("table", "message"), [
    ({"schedule": [{"cron": "0 9 * *", "min": 3}]}, "has 4 fields: expected 5"),
    ({"schedule": [{"cron": "0 25 * * *", "min": 3}]}, "hour '25' is out of its range 0-23"),
    ({"schedule": [{"cron": "0 9 * * *", "min": 61}]}, "min = 61 is not allowed: expected 1 to 60"),
    ({"schedule": [{"cron": "0 9 * * *", "min": 3, "max": 4}]}, "max"),
    ({"schedule": {"cron": "0 9 * * *"}}, "a list of tables like"),
    ({"timezone": "Mars/Olympus"}, "an IANA time zone name"),
    ({"schedule": [{"cron": "0 9 * * *", "min": 3, "for": "10s"}]}, "key 'for' = '10s' is not allowed"),
])
def test_the_schedule_is_checked(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        autoscaled(autoscale=table)


def test_the_pool_is_warm_for_a_scheduled_peak(tmp_path: Path) -> None:
    """A pool with a 09:00 rule (min 10 for 9 h; Friday's is over), started at 08:59:30 on the engine's
    clock: by 09:00:02 ten sandboxes are ready (create-to-ready 1 s), and the move is a 'setpoint' event
    naming the rule."""

    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop(), wall=WALL + 90)
        cfg = autoscaled(autoscale={"schedule": [{"cron": "0 9 * * 1-5", "min": 10, "for": "9h"}]})
        async with PoolManager(cfg, state_dir=tmp_path, clock=clock, store="memory") as mgr:
            pool = mgr.pool("p")
            await mgr.warm_up(5)
            assert len(pool.handout) == 2
            await clock.sleep(29.0)
            assert len(pool.handout) == 2  # 08:59:59
            await clock.sleep(3.0)
            assert len(pool.handout) == 10
            moves = [e.detail for e in await mgr.recent_events("p") if e.kind == "setpoint"]
            assert moves == ["2 -> 10: up: schedule '0 9 * * 1-5' min 10"]

    virtual_time.run(main())


def test_a_rule_with_a_for_ends_on_its_own() -> None:
    rule = ScheduleRule(Cron.parse("0 9 * * 1-5"), 10, hold=120.0)
    run = Run(AutoscaleConfig(schedule=(rule,), scale_down_delay=0.0))
    run.seconds(119)
    assert run.trace[-1][1] == 1  # Friday's rule has ended; nothing claimed: min_ready
    run.seconds(2)
    assert run.trace[-1][1] == 10
    run.seconds(118)
    assert run.trace[-1][1] == 10  # 09:01:59
    run.seconds(2)
    assert run.trace[-1][1] == 1  # 09:02:01
