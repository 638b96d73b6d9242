"""`poolui --headless simulate`: replay a claim trace through a pool on virtual time and say how big it should be.

The pool file says the pool (sizes, TTL, claim timeout, [autoscale]); the trace says the claims (a file, or
--synthetic KIND --seed N); --create-time says how long a create takes (default: the pool's configured
time; `measured` asks the running server for the pool's measured p50 and p95). The replays themselves are
poolui.sim's; this module reads the options, prints, and writes the SVG.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..argtypes import whole
from ..durations import parse_duration
from ..errors import PoolNotFound
from .output import Exit, UsageError, emit_json, err, out

if TYPE_CHECKING:  # the parser is built for every headless verb, `check` too: nothing heavy at import
    from ..config import PoolConfig

Verb = Callable[[str, str], argparse.ArgumentParser]


def _duration(text: str) -> float:
    try:
        v = parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected {e}") from None
    if not 1 <= v <= 366 * 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected from 1s to 366d")
    return v


def _fraction(lo: float, hi: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = float("nan")
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected a number from {lo:g} to {hi:g}")
        return v

    return parse


def _targets(text: str) -> list[int]:
    """'1,2,5-10' -> [1, 2, 5, 6, 7, 8, 9, 10]."""
    ks: set[int] = set()
    try:
        for part in text.split(","):
            lo, dash, hi = part.strip().partition("-")
            ks |= set(range(int(lo), int(hi) + 1)) if dash else {int(lo)}
    except ValueError:
        ks = set()
    if not ks or min(ks) < 0 or max(ks) > 10_000 or len(ks) > 200:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected targets like 1,2,5-10 (0 to 10000, "
                                         f"at most 200 of them)")
    return sorted(ks)


def add_simulate_verb(verb: Verb) -> None:
    """The simulate verb's options, added to the headless parser."""
    from ..sim import SYNTHETIC_KINDS as KINDS  # the package file alone: random and datetime cost `check` ~20 ms

    s = verb("simulate", "replay a claim trace through the pool on virtual time: hit rate, waits, creates and idle "
                         "sandbox-hours with the autoscaler and with fixed targets, as a table and a chart")
    s.add_argument("--trace", metavar="FILE", help="the claims: CSV 'arrival,hold' (seconds) or JSON lines")
    s.add_argument("--synthetic", choices=KINDS, help="a made-up trace of this kind instead of --trace")
    s.add_argument("--seed", type=whole(0, 2**31 - 1), default=1, help="the synthetic trace's seed, and the "
                   "create times' (default 1): the same seed gives the same replay")
    s.add_argument("--duration", type=_duration, default=86400.0, help="a synthetic trace's length (default 24h)")
    s.add_argument("--rate", type=_fraction(0.0001, 1000), default=0.2,
                   help="a synthetic trace's mean claims per second before bursts (default 0.2)")
    s.add_argument("--hold", type=_duration, default=30.0, help="a synthetic trace's mean hold (default 30s)")
    s.add_argument("--write-trace", metavar="FILE", help="write the trace (CSV; .jsonl: JSON lines) and stop")
    s.add_argument("--create-time", metavar="DIST", default="configured",
                   help='create-to-ready time: "3s", "uniform:min=2s,max=6s", "lognormal:median=3s,p95=8s", '
                        '"configured" (default: the pool\'s) or "measured" (the running server\'s p50 and p95)')
    s.add_argument("--autoscale", action="store_true",
                   help="replay an autoscaler ([autoscale] defaults) even when the pool has no [autoscale] table")
    s.add_argument("--targets", type=_targets, default=None,
                   help="fixed targets to replay, like 1,2,5-10 (default: around the smallest meeting the goal)")
    s.add_argument("--goal", type=_fraction(0.5, 0.9999), default=None,
                   help="the hit rate to meet (default: the pool's autoscale hit_rate, else 0.99)")
    s.add_argument("--price-per-hour", type=_fraction(0, 10_000), default=None,
                   help="price of a sandbox-hour, for the idle cost (default: the pool's price_per_hour)")
    s.add_argument("--svg", metavar="FILE", help="draw the trade-off into this SVG file")
    s.add_argument("--jobs", type=whole(1, 64), default=1, help="replays run at once, in processes (default 1)")


def _trace(args: argparse.Namespace) -> Any:
    from ..sim.synthetic import Shape, synthetic
    from ..sim.trace import read_trace

    if (args.trace is None) == (args.synthetic is None):
        raise UsageError("simulate: give --trace FILE or --synthetic KIND (one of them)")
    if args.trace is not None:
        return read_trace(args.trace)
    try:
        return synthetic(Shape(args.synthetic, args.seed, args.duration, args.rate, args.hold))
    except ValueError as e:
        raise UsageError(str(e)) from None


def _pool(args: argparse.Namespace) -> PoolConfig:
    from ..connect import load

    cfg = load(args.config)
    name = args.pool or (next(iter(cfg.pools)) if len(cfg.pools) == 1 else None)
    if name is None:
        raise UsageError(f"{cfg.path} has pools {', '.join(cfg.pools)}: name one with --pool")
    if name not in cfg.pools:
        raise PoolNotFound(f"no pool named '{name}' in {cfg.path}; pools: {', '.join(cfg.pools)}")
    return cfg.pools[name]


async def _measured(args: argparse.Namespace, pool: str) -> Any:
    from ..connect import open_control
    from ..sim.createtime import measured

    async with open_control(args.server, args.config, args.token_file, args.state_dir, embedded=False,
                            timeout=args.timeout) as opened:
        snap = await opened.control.snapshot(pool, members=False)
    ready = snap.metrics.get("create_to_ready") or {}
    ct = measured(ready.get("p50"), ready.get("p95"))
    if ct is None:
        raise UsageError(f"pool '{pool}' has measured no create yet; give --create-time")
    return ct


def _create_time(args: argparse.Namespace, cfg: PoolConfig) -> Any:
    from ..sim.createtime import configured, parse_create_time

    if args.create_time == "configured":
        return configured(cfg)
    if args.create_time == "measured":
        import asyncio

        return asyncio.run(_measured(args, cfg.name))
    try:
        return parse_create_time(args.create_time)
    except ValueError as e:
        raise UsageError(f"--create-time: {e}") from None


def _write(args: argparse.Namespace, trace: Any) -> int:
    from ..sim.trace import format_trace

    text = format_trace(trace, as_json=args.write_trace.endswith((".jsonl", ".json")))
    Path(args.write_trace).write_text(text)
    err(f"wrote {len(trace.claims)} claims over {trace.horizon:g}s to {args.write_trace}")
    return Exit.OK


def cmd_simulate(args: argparse.Namespace) -> int:
    """Read the options, run the replays, print (or --json), draw (--svg)."""
    from ..config.autoscale import AutoscaleConfig
    from ..sim import chart
    from ..sim.sweep import Plan, sweep

    trace = _trace(args)
    if args.write_trace:
        return _write(args, trace)
    cfg = _pool(args)
    autoscale = cfg.autoscale or (AutoscaleConfig() if args.autoscale else None)
    goal = args.goal or (autoscale.hit_rate if autoscale is not None else 0.99)
    price = args.price_per_hour if args.price_per_hour is not None else cfg.price_per_hour
    create = _create_time(args, cfg)
    if cfg.reuse is not None:
        err(f"pool '{cfg.name}' reuses sandboxes; the simulator replays it single use (each release a new create)")
    plan = Plan(cfg, trace, create, args.seed, price, goal)
    err(f"simulate: pool '{cfg.name}', {len(trace.claims)} claims over {trace.horizon / 3600:.3g}h "
        f"({len(trace.claims) / max(trace.horizon, 1):.3g}/s), create time {create.describe()}")

    def told(r: Any) -> None:
        err(f"  {r.label}: hit rate {r.hit_rate * 100:.2f}%, idle {r.idle_hours:.1f} sandbox-h "
            f"(replayed in {r.replay_s:.1f}s)")

    auto, fixed, k99 = sweep(plan, autoscale, args.targets, args.jobs, told)
    rows = fixed + ([auto] if auto is not None else [])
    if args.svg:
        title = f"pool '{cfg.name}': {len(trace.claims)} claims over {trace.horizon / 3600:.3g}h"
        Path(args.svg).write_text(chart.svg(rows, goal, title))
    if args.json:
        emit_json({"pool": cfg.name, "claims": len(trace.claims), "horizon": trace.horizon, "goal": goal,
                   "create_time": create.describe(), "smallest_target_meeting_goal": k99,
                   "autoscale": auto.to_dict() if auto else None, "fixed": [r.to_dict() for r in fixed]})
        return Exit.OK
    for line in [*chart.table(rows, goal), "", *chart.text_chart(rows, goal), "", *verdict(auto, fixed, k99, goal)]:
        out(line)
    if args.svg:
        out(f"chart: {args.svg}")
    sys.stdout.flush()
    return Exit.OK


def verdict(auto: Any, fixed: list[Any], k99: int | None, goal: float) -> list[str]:
    """What the replays say, in a sentence or two."""
    best = next((r for r in fixed if r.target == k99), None)
    lines = [f"smallest fixed target meeting {goal * 100:g}%: " +
             (f"{k99} ({best.idle_hours:.1f} idle sandbox-h)" if best else "none of those replayed")]
    if auto is not None:
        line = (f"autoscaler: {auto.hit_rate * 100:.2f}% warm, {auto.idle_hours:.1f} idle sandbox-h, "
                f"mean setpoint {auto.mean_setpoint:.1f}")
        if best is not None and best.idle_hours > 0:
            saved = 1 - auto.idle_hours / best.idle_hours
            line += (f", {abs(saved) * 100:.0f}% {'fewer' if saved >= 0 else 'more'} idle sandbox-hours than "
                     f"target {k99}")
        lines.append(line)
    return lines


