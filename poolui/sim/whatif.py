"""A what-if on a running pool (the console's `f`): the pool's own claims replayed through the simulator at
another target or with autoscaling, with every input read over the control contract, so it is the same on
an embedded pool and on a server's.

- The claims: the pool's event log made a trace as `poolui --headless events --format trace` makes it
  (trace_events.py), from what the console has received since it started (ClaimsSeen: the backlog the pool
  keeps, then the live stream) and what the pool keeps now; claims still held count, held until now. The
  last MAX_CLAIMS within MAX_SPAN, so a replay takes a second or so, not minutes.
- The pool: its live sizes, TTL, claim timeout and on_empty from its snapshot; its [autoscale] table and
  price from the pool file where that file is readable here and is the running pool's (same revision);
  else the price the pool reports and the autoscaler's defaults, and the screen says so.
- Create times: what the pool measured (p50, p95), else its configured one (createtime.py).
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import PoolConfig
from ..config.autoscale import AutoscaleConfig
from ..control import Control
from ..core.model import Event, PoolSnapshot
from ..errors import PoolError
from ..pool_file import load_config
from .createtime import CreateTime, configured, measured
from .replay import Result
from .sweep import Plan, Runner
from .trace import Trace
from .trace_events import TraceRecorder

MAX_CLAIMS = 2000  # replayed at most (the last ones): a replay then takes about a second on a busy machine
MAX_SPAN = 86400.0  # seconds back from now
MIN_CLAIMS = 20  # fewer say too little about a pool's demand to predict from
KEPT = 5000  # claims kept per pool while the console runs
AUTOSCALE = "autoscale"
Choice = int | str  # a fixed target, or AUTOSCALE


class ClaimsSeen:
    """Every pool's claims from its events, as (wall time claimed, seconds held), fed in any overlap: the
    backlog after a reconnect repeats what the stream brought, and is skipped."""

    def __init__(self) -> None:
        self.recorders: dict[str, TraceRecorder] = {}
        self.claims: dict[str, dict[tuple[str, float], tuple[float, float]]] = {}
        self.last: dict[str, tuple[int, float]] = {}  # pool -> (seq, ts) of the last event taken

    def feed(self, events: list[Event]) -> None:
        """Events as the console receives them (oldest first)."""
        for e in events:
            seq, ts = self.last.get(e.pool, (0, -math.inf))
            # Seen already: not newer by number nor by time (a restarted server numbers from 1 again, later).
            if e.seq <= seq and e.ts <= ts:
                continue
            self.last[e.pool] = (e.seq, e.ts)
            self._take(e.pool, self.recorders.setdefault(e.pool, TraceRecorder(e.pool)), e)

    def add(self, pool: str, events: list[Event]) -> None:
        """The pool's log as it keeps it now (each claim known by its sandbox and time, so none counts twice)."""
        rec = TraceRecorder(pool)
        for e in events:
            self._take(pool, rec, e)

    def _take(self, pool: str, rec: TraceRecorder, e: Event) -> None:
        row = rec.feed(replace(e, seq=0))  # repeats are told apart above, by number and time together
        if row is None or rec.start is None or e.member_id is None:
            return
        at = rec.start + row[0]
        kept = self.claims.setdefault(pool, {})
        kept[(e.member_id, round(at, 3))] = (at, row[1])
        if len(kept) > KEPT:
            del kept[next(iter(kept))]

    def held(self, pool: str) -> list[tuple[float, float]]:
        """Claims of `pool` not ended yet: (wall time it arrived, wall time it was served)."""
        rec = self.recorders.get(pool)
        return list(rec.open.values()) if rec is not None else []

    def trace(self, pool: str, now: float) -> tuple[Trace, int]:
        """The pool's last claims up to `now` (held ones until now) as a trace starting at the first of
        them, and how many recorded claims the cap left out."""
        rows = list(self.claims.get(pool, {}).values()) + [(at, now - served) for at, served in self.held(pool)]
        rows = sorted(r for r in rows if r[0] <= now)
        recent = [r for r in rows if r[0] >= now - MAX_SPAN][-MAX_CLAIMS:]
        start = recent[0][0] if recent else now
        claims = [(at - start, max(0.0, hold)) for at, hold in recent]
        return Trace(claims, start, max(now - start, 0.0), {"pool": pool}), len(rows) - len(recent)


@dataclass(frozen=True)
class Inputs:
    """What a what-if replays, and where each part came from (the screen says it)."""

    plan: Plan
    autoscale: AutoscaleConfig
    autoscale_from: str  # "the pool file" | why defaults are used
    current: Choice  # the pool's own setting now
    sizing: str  # static | manual | autoscale (who sets the pool's setpoint now)
    left_out: int  # recorded claims older than the trace's cap

    @property
    def enough(self) -> bool:
        """Enough claims to predict anything from."""
        return len(self.plan.trace.claims) >= MIN_CLAIMS


def from_snapshot(snap: PoolSnapshot, price: float | None) -> PoolConfig:
    """The pool as its snapshot tells it: sizes, TTL, claim timeout, on_empty, create concurrency."""
    c = snap.config
    return PoolConfig(snap.name, provider="instant", target_ready=snap.target_ready, min_ready=snap.min_ready,
                      max_ready=snap.max_ready, max_total=snap.max_total, ttl=float(c.get("ttl") or 300.0),
                      min_remaining_ttl=float(c.get("min_remaining_ttl") or 0.0),
                      on_empty=str(c.get("on_empty") or "wait"), claim_timeout=float(c.get("claim_timeout") or 10.0),
                      max_concurrent_creates=int(c.get("max_concurrent_creates") or 4), price_per_hour=price)


def pool_in_file(path: str | None, snap: PoolSnapshot) -> PoolConfig | None:
    """The pool's table in the pool file, if that file is readable here and describes the running pool."""
    if not path or not Path(path).is_file():
        return None
    try:
        cfg = load_config(path).pools.get(snap.name)
    except (OSError, PoolError):
        return None
    return cfg if cfg is not None and cfg.revision == snap.config.get("revision") else None


def create_time(snap: PoolSnapshot, cfg: PoolConfig | None) -> CreateTime:
    """The pool's measured create-to-ready time, else its configured one."""
    ready = snap.metrics.get("create_to_ready") or {}
    got = measured(ready.get("p50"), ready.get("p95"))
    if got is not None:
        return got
    return configured(cfg) if cfg is not None else CreateTime("fixed", 5.0, source="nothing measured yet: 5s assumed")


async def gather(control: Control, pool: str, seen: ClaimsSeen) -> Inputs:
    """Everything a what-if on `pool` needs, read over the control contract (and the pool file, if here)."""
    snap = await control.snapshot(pool, members=False)
    seen.add(pool, await control.recent_events(pool, limit=1000))
    filed = await asyncio.to_thread(pool_in_file, await control.config_path(), snap)
    price = (snap.metrics.get("cost") or {}).get("price_per_hour")
    cfg = from_snapshot(snap, price if price is not None else filed.price_per_hour if filed else None)
    if filed is not None and filed.autoscale is not None:
        auto, where = filed.autoscale, "the pool file"
    elif filed is not None:
        auto, where = AutoscaleConfig(), "defaults (the pool has no [autoscale] table)"
    else:
        auto, where = AutoscaleConfig(), "defaults (the pool file is not readable here)"
    goal = auto.hit_rate if filed is not None and filed.autoscale is not None else 0.99
    trace, left_out = seen.trace(pool, snap.taken_at)
    current: Choice = AUTOSCALE if snap.sizing == AUTOSCALE else (
        snap.setpoint if snap.setpoint is not None else snap.target_ready)
    plan = Plan(cfg, trace, create_time(snap, filed), 1, cfg.price_per_hour, goal)
    return Inputs(plan, auto, where, current, snap.sizing, left_out)


def predict(runner: Runner, inputs: Inputs, choice: Choice) -> Result:
    """One replay (cached by target in `runner`), leaving the process's random numbers as they were: a
    replay seeds them, and an embedded console's own pools draw from them too."""
    kept = random.getstate()
    try:
        if choice == AUTOSCALE:
            return runner.autoscaler(inputs.autoscale)()
        return runner.targets([int(choice)])[0]
    finally:
        random.setstate(kept)
