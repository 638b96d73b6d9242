"""What the autoscaler goes by, and what it remembers: the running means of create-to-ready it sizes by
(core/metrics.py's Histogram.mean, kept up by each sample: no sort of the window), the part of a create a
max_wait does not cover, and a scale-down that remembers the stable window's need, not the panic window's
noise."""

from __future__ import annotations

import asyncio
import math
import random
from pathlib import Path

from poolui import virtual_time
from poolui.clock import LoopClock
from poolui.config import PoolConfig
from poolui.config.autoscale import AutoscaleConfig
from poolui.core.autoscale import Autoscaler, base_stock
from poolui.core.manager import PoolManager
from poolui.core.metrics import Histogram
from poolui.core.sizing import Signals, observe
from poolui.pool_file import parse_config

SIZES = PoolConfig(name="p", target_ready=2, min_ready=1, max_ready=100, max_total=200)


def test_running_means_follow_the_sample_window() -> None:
    """The window's mean and its mean beyond a wait, running, agree with the samples in the window, as
    old samples leave it and while rounding is reset once a window's worth (seen over 3.5 windows)."""
    h, rnd = Histogram(window=50), random.Random(5)
    assert h.mean() is None and h.mean(1.0) is None
    h.observe(2.0)
    assert h.mean() == 2.0 and h.mean(1.5) == 0.5 and h.mean(3.0) == 0.0
    samples = [2.0]
    for _ in range(174):
        x = rnd.lognormvariate(1.0, 0.6)
        h.observe(x)
        samples.append(x)
        last = samples[-50:]
        assert math.isclose(h.mean() or 0, sum(last) / len(last), rel_tol=1e-12)
        assert math.isclose(h.mean(1.5) or 0, sum(max(0.0, s - 1.5) for s in last) / len(last), rel_tol=1e-12)
    assert h.percentile(50) == sorted(samples[-50:])[24]  # the percentiles are as they were


def test_a_pool_s_signals_are_the_mean_create_time_and_beyond_a_wait(tmp_path: Path) -> None:
    """The pool's signals give the mean create-to-ready time (not its p95: 3, where the p95 is 9), and
    the mean of what a wait leaves uncovered."""

    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        cfg = parse_config({"pools": {"p": {"provider": "instant", "target_ready": 0, "min_ready": 0}}}, "t")
        async with PoolManager(cfg, state_dir=tmp_path, clock=clock, store="memory") as mgr:
            pool = mgr.pool("p")
            pool.metrics.create_to_ready = Histogram()
            for x in (1.0, 1.0, 1.0, 9.0):
                pool.metrics.create_to_ready.observe(x)
            seen = observe(pool)
            assert seen.ready_time == 3.0 and pool.metrics.create_to_ready.percentile(95) == 9.0
            assert seen.beyond is not None and seen.beyond(2.0) == 7.0 / 4

    virtual_time.run(main())


def test_max_wait_covers_what_the_measured_creates_leave() -> None:
    """With measurements, a max_wait of 1 s leaves E[max(0, T - 1)] to cover, not mean - 1: for creates of
    1 s and 9 s alike, 2 s (not 4 s)."""
    policy = Autoscaler(AutoscaleConfig(max_wait=1.0, panic_window=60.0))
    now = 1000.0
    for i in range(600):
        policy.claimed(now + i / 10)  # 10 claims/s for a minute
    values = [1.0, 9.0]
    seen = Signals(0.0, 5.0, beyond=lambda w: sum(max(0.0, v - w) for v in values) / len(values))
    assert policy.want(SIZES, now + 60.0, lambda: seen) == base_stock(10 * 4.0, 0.99)


def test_a_low_rate_s_noise_is_not_kept_by_scale_down() -> None:
    """0.1 claims/s as a Poisson stream for two hours, creates of 3.6 s on average: the base stock is 3.
    The setpoint keeps the stable minute's need at its highest over the last 5 minutes: 3, or 4 after a
    minute of 8 claims or more (6 expected), which most 5 minutes have (4.2 on average here); with the 6 s
    panic window's needs remembered too it kept 5.3."""
    policy, rnd, now, values = Autoscaler(AutoscaleConfig()), random.Random(11), 1000.0, []
    assert base_stock(0.1 * 3.6, 0.99) == 3
    arrival = now + rnd.expovariate(0.1)
    for _ in range(7200):
        now += 1.0
        while arrival <= now:
            policy.claimed(arrival)
            arrival += rnd.expovariate(0.1)
        values.append(policy.want(SIZES, now, lambda: Signals(0.0, 3.6)))
    settled = values[600:]
    assert sum(settled) / len(settled) <= 4.5
    assert min(settled) >= 3  # never under what the rate needs
