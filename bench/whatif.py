"""The console's what-if (`f`): how long its replays take, and what they cost the console's loop meanwhile.

The trace is what the what-if replays at most: the last MAX_CLAIMS claims of the benchmark's reference
bursty-diurnal day (seed 1, 0.2 claims/s before bursts), through a pool like the simulator's tests use
(2 s creates, on_empty = wait). One round replays every choice the screen replays unasked, in its order (the
pool's setting, the sweep, the autoscaler), in a thread as the screen does, while the main thread runs an
asyncio loop that wakes every 10 ms and notes how late each wake-up is (what a key press would wait). Rounds
alternate with the same loop left alone (the reference), so both see the same load.

Per round: replays, CPU seconds per replay (median), the whole sweep's wall seconds, and the loop's p99 and
worst lateness. Printed: median and spread (min-max) over the rounds, and the ratio busy / idle lateness.

Run: .venv/bin/python bench/whatif.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from poolui.config.autoscale import AutoscaleConfig  # noqa: E402
from poolui.pool_file import parse_config  # noqa: E402
from poolui.sim.createtime import CreateTime  # noqa: E402
from poolui.sim.sweep import Plan, Runner  # noqa: E402
from poolui.sim.synthetic import Shape, synthetic  # noqa: E402
from poolui.sim.trace import Trace  # noqa: E402
from poolui.sim.whatif import MAX_CLAIMS, Inputs, predict  # noqa: E402
from poolui.tui.screens.whatif import next_choice  # noqa: E402

TICK = 0.01


def inputs() -> Inputs:
    day = synthetic(Shape("bursty-diurnal", 1, 86400.0, 0.2, 30.0))
    last = day.claims[-MAX_CLAIMS:]
    first = last[0][0]
    trace = Trace([(a - first, h) for a, h in last], day.start + first, 86400.0 - first)
    cfg = parse_config({"pools": {"web": {"provider": "instant", "target_ready": 3, "min_ready": 0, "max_ready": 40,
                                          "max_total": 80, "ttl": "1h", "health": {"enabled": False}}}},
                       "bench").pools["web"]
    plan = Plan(cfg, trace, CreateTime("fixed", 2.0), 1, 0.5, 0.99)
    return Inputs(plan, AutoscaleConfig(), "defaults", 3, "static", 0)


def sweep(made: Inputs, stats: dict[str, float]) -> None:
    """Every choice the screen replays unasked, one after another (the screen's thread)."""
    runner, mine = Runner(made.plan), {}
    began, cpu = time.perf_counter(), []
    while (choice := next_choice(None, made, mine.keys(), mine)) is not None:
        t = time.thread_time()
        mine[choice] = predict(runner, made, choice)
        cpu.append(time.thread_time() - t)
    stats.update(replays=len(mine), cpu_per_replay=statistics.median(cpu), sweep_s=time.perf_counter() - began)


async def lateness(done: threading.Event, seconds: float) -> list[float]:
    """How late each 10 ms wake-up of this loop is, until `done` is set (or for `seconds`)."""
    late, end = [], time.perf_counter() + seconds
    while not done.is_set() and time.perf_counter() < end:
        t = time.perf_counter()
        await asyncio.sleep(TICK)
        late.append(time.perf_counter() - t - TICK)
    return late


def p99(xs: list[float]) -> float:
    return sorted(xs)[min(len(xs) - 1, int(0.99 * len(xs)))]


async def one_round(made: Inputs) -> dict[str, float]:
    stats: dict[str, float] = {}
    done = threading.Event()

    def work() -> None:
        try:
            sweep(made, stats)
        finally:
            done.set()

    thread = threading.Thread(target=work)
    thread.start()
    busy = await lateness(done, 600.0)
    thread.join()
    idle = await lateness(threading.Event(), min(stats["sweep_s"], 10.0))  # the reference: the loop alone
    return {**stats, "busy_p99_ms": p99(busy) * 1000, "busy_max_ms": max(busy) * 1000,
            "idle_p99_ms": p99(idle) * 1000, "idle_max_ms": max(idle) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    made = inputs()
    print(f"what-if on {len(made.plan.trace.claims)} claims over {made.plan.trace.horizon / 3600:.1f}h "
          f"(the cap: last {MAX_CLAIMS}); {args.rounds} rounds")
    rounds = [asyncio.run(one_round(made)) for _ in range(args.rounds)]
    for key in rounds[0]:
        xs = [r[key] for r in rounds]
        print(f"  {key:<15} median {statistics.median(xs):9.3f}  spread {min(xs):9.3f} - {max(xs):9.3f}")
    ratio = statistics.median(r["busy_p99_ms"] for r in rounds) / max(statistics.median(
        r["idle_p99_ms"] for r in rounds), 1e-9)
    print(f"  loop lateness p99, replaying / alone: {ratio:.2f}x")


if __name__ == "__main__":
    main()
