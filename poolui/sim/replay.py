"""One replay: a trace's claims through a real PoolManager, on virtual time (or, for the agreement test,
on real time with the very same code).

The pool is the configured one with its sandboxes made by the `instant` provider: sizes, TTL, claim
timeout, on_empty, create concurrency and the sizing policy are the pool file's; each create takes a draw
of the create-time distribution. The pool warms for a while before arrival 0 (a running pool is warm);
each claim is asked at its arrival with the pool's claim_timeout, held for its hold, then released. What
counts is what happens within [arrival 0, horizon].
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any

from .. import virtual_time
from ..clock import LoopClock
from ..config import Config, PoolConfig
from ..config.autoscale import AutoscaleConfig
from ..core.manager import PoolManager
from ..errors import ClaimTimeout, PoolError
from ..providers.instant import InstantOptions, InstantProvider
from .accounting import Ledger
from .createtime import CreateTime
from .trace import Trace

DRAIN_EVERY = 500  # arrivals between reads of the event subscription (keeps it short)


@dataclass
class Result:
    """What one replay gave; `target` None for a policy (the autoscaler)."""

    label: str
    target: int | None
    claims: int = 0
    warm: int = 0
    cold: int = 0
    timed_out: int = 0
    refused: int = 0
    waits: list[float] = field(default_factory=list, repr=False)
    creates: int = 0
    idle_s: float = 0.0  # sandbox-seconds ready and not claimed (the pool's own cost tally: core/cost.py)
    warming_s: float = 0.0  # being created or probed
    ending_s: float = 0.0  # failed or being terminated
    claimed_s: float = 0.0
    unclaimed_s: float = 0.0  # all not claimed (warming + idle + ending), from the events (accounting.py)
    mean_setpoint: float = 0.0
    max_setpoint: int = 0
    replay_s: float = 0.0  # wall seconds the replay took
    cpu_s: float = 0.0  # CPU seconds of its process (the wall time counts other work on a shared machine too)
    price_per_hour: float | None = None

    @property
    def hit_rate(self) -> float:
        return self.warm / self.claims if self.claims else 1.0

    def wait(self, q: float) -> float:
        """The q-th percentile of claim waits (a timed-out claim waited its whole claim_timeout)."""
        if not self.waits:
            return 0.0
        s = sorted(self.waits)
        return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]

    @property
    def idle_hours(self) -> float:
        return self.idle_s / 3600.0

    @property
    def idle_cost(self) -> float | None:
        return None if self.price_per_hour is None else self.idle_hours * self.price_per_hour

    def to_dict(self) -> dict[str, Any]:
        """The figures, as simulate --json prints them."""
        return {"label": self.label, "target": self.target, "claims": self.claims, "warm": self.warm,
                "cold": self.cold, "timed_out": self.timed_out, "refused": self.refused,
                "hit_rate": self.hit_rate, "wait_p50": self.wait(50), "wait_p99": self.wait(99),
                "creates": self.creates, "idle_sandbox_hours": self.idle_hours,
                "warming_sandbox_hours": self.warming_s / 3600.0, "ending_sandbox_hours": self.ending_s / 3600.0,
                "claimed_sandbox_hours": self.claimed_s / 3600.0, "unclaimed_sandbox_hours": self.unclaimed_s / 3600.0,
                "idle_cost": self.idle_cost,
                "mean_setpoint": self.mean_setpoint, "max_setpoint": self.max_setpoint,
                "replay_seconds": self.replay_s, "replay_cpu_seconds": self.cpu_s}


def simulated(cfg: PoolConfig, target: int | None = None, autoscale: AutoscaleConfig | None = None) -> PoolConfig:
    """The pool as the simulator runs it: its sandboxes from the instant provider; with `target`, a fixed
    target (no autoscaler); with `autoscale`, that autoscaler. Single use, no lease: a trace's claimer
    holds for its hold and releases."""
    # No health probes: an instant sandbox is always healthy, so they would change nothing but the time taken.
    sim = replace(cfg, provider="instant", command=(), options=InstantOptions(), raw_options={}, reuse=None,
                  network="auto", claim_lease=None, read_only=False, health=None)
    if target is not None:
        return replace(sim, target_ready=target, min_ready=min(cfg.min_ready, target),
                       max_ready=max(cfg.max_ready, target), max_total=max(cfg.max_total, target), autoscale=None)
    if autoscale is not None:
        return replace(sim, autoscale=autoscale)
    return sim


class Replay:
    """The claims of one trace against one running pool."""

    def __init__(self, mgr: PoolManager, name: str, result: Result) -> None:
        self.mgr, self.name, self.result = mgr, name, result
        self.clock = mgr.clock
        self.pending = 0  # claims asked whose outcome is not known yet
        self.tasks: set[asyncio.Task[None]] = set()

    async def claim(self, hold: float) -> None:
        r, t = self.result, self.clock.monotonic()
        self.pending += 1
        try:
            c = await self.mgr.claim(self.name)
        except ClaimTimeout:
            r.timed_out += 1
            return
        except PoolError:
            r.refused += 1  # on_empty = "fail", or the pool stopping
            return
        finally:
            self.pending -= 1
            r.claims += 1
            r.waits.append(self.clock.monotonic() - t)
        r.warm, r.cold = r.warm + c.warm, r.cold + (not c.warm)
        await self.clock.sleep(hold)
        try:
            await self.mgr.release(self.name, c.id)
        except PoolError:
            pass  # ended meanwhile (its TTL): nothing to release

    def ask(self, hold: float) -> None:
        task = asyncio.create_task(self.claim(hold))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def run_trace(mgr: PoolManager, name: str, trace: Trace, result: Result, warm: float) -> None:
    """Warm for `warm` seconds, replay the trace, account; mgr must be started with the pool `name`."""
    clock, pool = mgr.clock, mgr.pool(name)
    sub = mgr.events(name, size=1_000_000)
    await clock.sleep(warm)
    t0, wall0, before = clock.monotonic(), clock.time(), pool.tally.parts()
    ledger = Ledger(wall0, wall0 + trace.horizon, pool.sizing.setpoint(pool.cfg))

    def drain() -> None:
        while not sub.queue.empty():
            ledger.event(sub.queue.get_nowait())

    replay = Replay(mgr, name, result)
    for i, (arrival, hold) in enumerate(trace.claims):
        if arrival > trace.horizon:
            break
        delay = t0 + arrival - clock.monotonic()
        if delay > 0:
            await clock.sleep(delay)
        replay.ask(hold)
        if i % DRAIN_EVERY == 0:
            drain()
    left = t0 + trace.horizon - clock.monotonic()
    if left > 0:
        await clock.sleep(left)
    parts = {k: v - before[k] for k, v in pool.tally.parts().items()}
    while replay.pending:  # claims still waiting at the horizon: their outcome counts
        await clock.sleep(0.01)
    drain()
    ledger.close()
    sub.close()
    for task in list(replay.tasks):
        task.cancel()
    await asyncio.gather(*replay.tasks, return_exceptions=True)
    result.creates, result.unclaimed_s = ledger.creates, ledger.idle
    result.idle_s, result.warming_s, result.ending_s = parts["idle"], parts["warming"], parts["ending"]
    result.claimed_s = parts["claimed"]
    result.mean_setpoint, result.max_setpoint = ledger.mean_setpoint, ledger.max_setpoint


def warm_time(create: CreateTime) -> float:
    """How long the pool warms before arrival 0: long enough for a full pool's creates to come up."""
    return min(3600.0, 3 * create.p95() + 5.0)


async def replay_pool(cfg: PoolConfig, trace: Trace, create: CreateTime, seed: int, label: str,
                      price: float | None = None, warm: float | None = None) -> Result:
    """One replay on the running loop (virtual or real): a fresh manager on the in-memory store, warmed for
    `warm` seconds (default warm_time) before arrival 0."""
    warm = warm_time(create) if warm is None else warm
    clock = LoopClock(asyncio.get_running_loop(), wall=trace.start - warm)
    result = Result(label, cfg.target_ready if cfg.autoscale is None else None, price_per_hour=price)
    random.seed(seed)  # the engine's own draws (TTL jitter), so a replay is the same every time
    async with PoolManager(Config({cfg.name: cfg}), clock=clock, store="memory") as mgr:
        provider = mgr.pool(cfg.name).provider
        assert isinstance(provider, InstantProvider)
        # Set before the loop first turns: start() spawned the refill but no create has run yet.
        provider.create_times = create.sampler(seed)
        await run_trace(mgr, cfg.name, trace, result, warm)
    return result


def run_virtual(cfg: PoolConfig, trace: Trace, create: CreateTime, seed: int, label: str,
                price: float | None = None) -> Result:
    """One replay on virtual time, timed (wall seconds in result.replay_s)."""
    began, cpu = time.perf_counter(), time.process_time()
    result = virtual_time.run(replay_pool(cfg, trace, create, seed, label, price))
    result.replay_s, result.cpu_s = time.perf_counter() - began, time.process_time() - cpu
    return result


def run_live(cfg: PoolConfig, trace: Trace, create: CreateTime, seed: int, warm: float) -> Result:
    """The same replay on real time (asyncio.run): the agreement test's other half."""
    return asyncio.run(replay_pool(cfg, trace, create, seed, "live", None, warm))
