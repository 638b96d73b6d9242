"""Many replays of one trace: the autoscaler, and fixed targets, to find the smallest target that meets a
hit-rate goal and draw the curve around it.

Given no targets, it looks for that smallest target: from a first guess (the base stock of the trace's
mean claim rate over the create time's p95), doubling or halving until one target meets the goal and the
one below does not, then halving the gap (the hit rate grows with the target, up to the noise of a
replay). Then it fills in targets from 1 to past that one, so the chart shows the whole knee. Replays run in
`jobs` processes (each replay is one process's work: the engine is single-threaded).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from ..config import PoolConfig
from ..config.autoscale import AutoscaleConfig
from ..core.autoscale import base_stock
from .createtime import CreateTime
from .replay import Result, run_virtual, simulated
from .trace import Trace

MAX_TARGET = 10_000
CURVE_POINTS = 10


@dataclass(frozen=True)
class Plan:
    """What to replay: the pool, the trace, its create times, a seed, a price, and the goal."""

    cfg: PoolConfig
    trace: Trace
    create: CreateTime
    seed: int = 1
    price: float | None = None
    goal: float = 0.99


def _fixed(plan: Plan, target: int) -> Result:
    return run_virtual(simulated(plan.cfg, target=target), plan.trace, plan.create, plan.seed, f"target {target}",
                       plan.price)


def _auto(plan: Plan, autoscale: AutoscaleConfig) -> Result:
    return run_virtual(simulated(plan.cfg, autoscale=autoscale), plan.trace, plan.create, plan.seed, "autoscale",
                       plan.price)


class Runner:
    """Replays, each once (cached by target), in this process or `jobs` processes."""

    def __init__(self, plan: Plan, jobs: int = 1, progress: Callable[[Result], None] | None = None) -> None:
        self.plan, self.jobs = plan, jobs
        self.done: dict[int, Result] = {}
        self.progress = progress or (lambda r: None)
        self.pool = ProcessPoolExecutor(jobs) if jobs > 1 else None

    def close(self) -> None:
        """Let the worker processes go."""
        if self.pool is not None:
            self.pool.shutdown()

    def targets(self, ks: Iterable[int]) -> list[Result]:
        """The fixed-target replays of ks (those not run yet run now, in parallel when jobs > 1)."""
        todo = sorted({k for k in ks if k not in self.done})
        if self.pool is None:
            results = [_fixed(self.plan, k) for k in todo]
        else:
            results = list(self.pool.map(_fixed, [self.plan] * len(todo), todo))
        for k, r in zip(todo, results, strict=True):
            self.done[k] = r
            self.progress(r)
        return [self.done[k] for k in ks]

    def autoscaler(self, autoscale: AutoscaleConfig) -> Callable[[], Result]:
        """Start the replay with the autoscaler (alongside the fixed targets when jobs > 1); call what this
        returns for its result."""
        if self.pool is None:
            return lambda: self._told(_auto(self.plan, autoscale))
        future = self.pool.submit(_auto, self.plan, autoscale)
        return lambda: self._told(future.result())

    def _told(self, r: Result) -> Result:
        self.progress(r)
        return r

    def meets(self, k: int) -> bool:
        return self.targets([k])[0].hit_rate >= self.plan.goal


def first_guess(plan: Plan) -> int:
    """The base stock of the trace's mean claim rate over the create time's p95 (at least 1)."""
    span = max(plan.trace.horizon, 1.0)
    rate = len(plan.trace.claims) / span
    return max(1, base_stock(rate * plan.create.p95(), plan.goal))


def smallest_meeting(run: Runner, guess: int) -> int | None:
    """The smallest fixed target whose hit rate meets the goal (None: not even MAX_TARGET)."""
    k = max(1, guess)
    if run.meets(k):
        hi, lo = k, k // 2
        while lo >= 1 and run.meets(lo):
            hi, lo = lo, lo // 2
    else:
        lo, hi = k, k * 2
        while not run.meets(hi):
            if hi >= MAX_TARGET:
                return None
            lo, hi = hi, min(MAX_TARGET, hi * 2)
    while hi - lo > 1:  # lo misses (or is 0), hi meets
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if run.meets(mid) else (mid, hi)
    return hi


def curve(k99: int | None, tried: Iterable[int], points: int = CURVE_POINTS) -> list[int]:
    """Targets to show: evenly from 1 to a third past the smallest that meets the goal, with it and the
    one below it, and everything tried."""
    top = max(2, int((k99 or max(tried, default=1)) * 4 / 3))
    step = max(1, top // points)
    ks = set(range(step, top + 1, step)) | set(tried)
    if k99:
        ks |= {k99, max(1, k99 - 1)}
    return sorted(ks)


def sweep(plan: Plan, autoscale: AutoscaleConfig | None, targets: list[int] | None = None, jobs: int = 1,
          progress: Callable[[Result], None] | None = None) -> tuple[Result | None, list[Result], int | None]:
    """(the autoscaler's replay or None, the fixed targets' replays, the smallest target meeting the goal
    among those run, or None)."""
    run = Runner(plan, jobs, progress)
    try:
        auto = run.autoscaler(autoscale) if autoscale is not None else None
        if targets:
            fixed = run.targets(targets)
        else:
            k99 = smallest_meeting(run, first_guess(plan))
            fixed = run.targets(curve(k99, list(run.done)))
        auto_result = auto() if auto is not None else None
    finally:
        run.close()
    meeting = [r.target for r in fixed if r.target is not None and r.hit_rate >= plan.goal]
    return auto_result, fixed, min(meeting, default=None)
