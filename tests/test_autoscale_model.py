"""The autoscaler's model against the engine: a seeded Poisson stream of claims through a real pool (the
instant provider, the in-memory store, virtual time). A fixed pool at the base stock the model gives serves
the hit rate it promises; two fewer does not; the autoscaler, from the rate alone, serves it too. And a rule
of the policy that only makes sense beside the model: a degraded pool is not raised by anything."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from poolui import virtual_time
from poolui.clock import LoopClock
from poolui.config import PoolConfig
from poolui.config.autoscale import AutoscaleConfig, ScheduleRule
from poolui.config.cron import Cron
from poolui.core.autoscale import Autoscaler, base_stock
from poolui.core.manager import PoolManager
from poolui.core.sizing import Signals
from poolui.pool_file import parse_config
from poolui.providers.instant import InstantProvider

RATE, READY, SECONDS, SKIP = 2.0, 2.0, 1200.0, 120.0  # claims/s, create-to-ready s, run, warm-up not counted


def config(**pool: Any) -> Any:
    base: dict[str, Any] = {"provider": "instant", "target_ready": 2, "min_ready": 1, "max_ready": 100,
                            "max_total": 300, "ttl": "1h", "claim_timeout": "60s", "max_concurrent_creates": 100,
                            "instant": {"create_delay": f"{READY:g}s"},
                            "health": {"http": "/", "interval": "1h", "timeout": "1s"}}
    base.update(pool)
    return parse_config({"pools": {"p": base}}, "test")


def stream(seed: int, rate: float = RATE) -> list[tuple[float, float]]:
    """(arrival, hold) pairs: Poisson arrivals at `rate`, holds exponential with a 2 s mean."""
    rnd, t, out = random.Random(seed), 0.0, []
    while t < SECONDS:
        t += rnd.expovariate(rate)
        out.append((t, rnd.expovariate(0.5)))
    return out


def lognormal(median: float, p95: float, seed: int) -> Callable[[], float]:
    """Create-to-ready draws, right-skewed like real creates."""
    rnd, sigma = random.Random(seed), math.log(p95 / median) / 1.6449
    return lambda: rnd.lognormvariate(math.log(median), sigma)


def replay(cfg: Any, tmp: Path, rate: float = RATE, creates: Callable[[], float] | None = None
           ) -> tuple[float, float]:
    """Warm claims out of all after SKIP seconds, and the mean setpoint the claims met over them."""

    async def main() -> tuple[float, float]:
        clock = LoopClock(asyncio.get_running_loop())
        async with PoolManager(cfg, state_dir=tmp, clock=clock, store="memory") as mgr:
            provider = mgr.pool("p").provider
            assert isinstance(provider, InstantProvider)
            provider.create_times = creates
            await mgr.warm_up(30)
            start, seen, setpoints = clock.monotonic(), [0, 0], []

            async def one(at: float, hold: float) -> None:
                c = await mgr.claim("p")
                if at >= SKIP:
                    seen[0 if c.warm else 1] += 1
                await clock.sleep(hold)
                await mgr.release("p", c.id)

            tasks = []
            for at, hold in stream(7, rate):
                await clock.sleep(max(0.0, start + at - clock.monotonic()))
                tasks.append(asyncio.create_task(one(at, hold)))
                if at >= SKIP:
                    setpoints.append(mgr.pool("p").sizing.value or 0)
            await asyncio.gather(*tasks)
            return seen[0] / sum(seen), sum(setpoints) / len(setpoints)

    return virtual_time.run(main())


def hit_rate(cfg: Any, tmp: Path) -> float:
    """Warm claims out of all, after SKIP seconds."""
    return replay(cfg, tmp)[0]


def test_the_base_stock_serves_the_hit_rate_it_promises(tmp_path: Path) -> None:
    """The model says 99.2% at 10 (P(Poisson(4) < 10)) and 94.9% at 8. About 2,200 claims are counted: a
    miss rate near 1% has a standard error near 0.2%, hence the 0.5% allowed below the promise."""
    level = base_stock(RATE * READY, 0.99)
    assert level == 10
    assert hit_rate(config(target_ready=level), tmp_path / "a") >= 0.985
    assert hit_rate(config(target_ready=level - 2), tmp_path / "b") < 0.97


def test_the_autoscaler_serves_it_from_the_rate_alone(tmp_path: Path) -> None:
    assert hit_rate(config(autoscale={}), tmp_path) >= 0.99


def test_it_sizes_by_the_mean_create_time_not_its_tail(tmp_path: Path) -> None:
    """1 claim/s with creates lognormal (median 3 s, p95 8 s, mean 3.6 s): the base stock of the mean is
    10, of the p95 16. The autoscaler meets 99% keeping about the former (sizing by the p95 it kept 16 and
    more, over the goal). About 1,100 claims are counted, hence the 0.5% allowed below the goal; the mean
    setpoint may exceed 10 by the scale-down's memory of a noisy minute's rate."""
    rate, creates = 1.0, lognormal(3.0, 8.0, seed=3)
    assert base_stock(rate * 3.0 * math.exp((math.log(8 / 3) / 1.6449) ** 2 / 2), 0.99) == 10
    hits, setpoint = replay(config(autoscale={}), tmp_path, rate, creates)
    assert hits >= 0.985
    assert setpoint <= 12


def test_a_degraded_pool_is_not_raised_by_its_schedule_either() -> None:
    rule = ScheduleRule(Cron.parse("* * * * *"), 10)
    policy = Autoscaler(AutoscaleConfig(schedule=(rule,)))
    sizes = PoolConfig(name="p", target_ready=2, min_ready=1, max_ready=20)
    assert policy.want(sizes, 100.0, lambda: Signals(0.0, 1.0, degraded=True)) == 2
    assert policy.want(sizes, 101.0, lambda: Signals(0.0, 1.0, degraded=False)) == 10
