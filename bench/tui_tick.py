"""Main-thread cost of one console refresh tick with 100, 1,000 and 10,000 members.

A pool driven by the instant provider (bookkeeping only, nothing runs) is warmed to N ready members, with
10% of them claimed so the in-use tab is populated too. The console runs headless at 160x50 on the same
event loop as the embedded engine, exactly as `poolui` runs a local pool. Before each tick 1% of the
members are terminated and replaced, so every tick has rows to add and remove. Per tick it reports:

  fetch   PoolManager.snapshot(pool, members=True): the engine building the snapshot (embedded: on our loop)
  apply   the App's handler: grouping, filter/sort, keyed update of the table, header, trends
  paint   main-thread CPU of the repaint that follows (thread_time, minus an idle repaint's)
  total   fetch + apply + paint: how long one refresh holds the main thread
  ttl     main-thread CPU of the once-a-second countdown repaint (no fetch, nothing changed but time)

Run: .venv/bin/python bench/tui_tick.py [--ticks 15] [--sizes 100,1000,10000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from poolui.core.manager import PoolManager  # noqa: E402
from poolui.pool_file import parse_config  # noqa: E402
from poolui.tui.app import PoolApp  # noqa: E402
from poolui.tui.messages import SnapshotFetched  # noqa: E402


def config(n: int) -> object:
    claimed = n // 10
    return parse_config({"pools": {"bench": {
        "provider": "instant", "target_ready": n - claimed, "min_ready": 0, "max_ready": n, "max_total": n + n // 50,
        "ttl": "2h", "min_remaining_ttl": "1m", "max_concurrent_creates": min(n, 1000),
        "health": {"http": "/", "interval": "1h", "timeout": "1s"}, "maintenance_interval": "1h",
    }}}, "bench")


async def cpu_of_repaint(pilot: object) -> float:
    t0 = time.thread_time()
    await pilot.pause()  # type: ignore[attr-defined]
    return time.thread_time() - t0


async def measure(n: int, ticks: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as state:
        async with PoolManager(config(n), state_dir=state) as mgr:  # type: ignore[arg-type]
            pool = mgr.pools["bench"]
            await mgr.warm_up(120)
            for _ in range(n // 10):
                await mgr.claim("bench")
            await mgr.warm_up(120)
            app = PoolApp(mgr, source="bench", refresh=3600.0)
            rows: dict[str, list[float]] = {k: [] for k in ("fetch", "apply", "paint", "total", "ttl")}
            async with app.run_test(size=(160, 50)) as pilot:
                deadline = time.monotonic() + 60
                while app.state.current is None or len(app.state.current.members) < n:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the console never showed the pool")
                    await pilot.pause(0.05)
                await pilot.press("end")  # the cursor somewhere in the middle of churn, not on row 0
                idle = statistics.median([await cpu_of_repaint(pilot) for _ in range(5)])
                for _ in range(ticks):
                    victims = [m.id for m in list(pool.handout.members())[: max(1, n // 100)]]
                    await mgr.terminate("bench", victims)
                    await mgr.warm_up(60)
                    await pilot.pause()
                    t0 = time.perf_counter()
                    snap = await mgr.snapshot("bench", members=True)
                    fetch = time.perf_counter() - t0
                    t1 = time.perf_counter()
                    app.on_snapshot_fetched(SnapshotFetched("bench", snap, None))
                    apply = time.perf_counter() - t1
                    paint = max(0.0, await cpu_of_repaint(pilot) - idle)
                    app.table().refresh()
                    ttl = max(0.0, await cpu_of_repaint(pilot) - idle)
                    for k, v in (("fetch", fetch), ("apply", apply), ("paint", paint),
                                 ("total", fetch + apply + paint), ("ttl", ttl)):
                        rows[k].append(v * 1000)
                assert len(app.table().rows) == pool.counts()["ready"]
            return {k: statistics.median(v) for k, v in rows.items()} | {
                f"{k}_max": max(v) for k, v in rows.items()}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ticks", type=int, default=15)
    ap.add_argument("--sizes", default="100,1000,10000")
    args = ap.parse_args()
    print(f"{'members':>8} {'fetch':>8} {'apply':>8} {'paint':>8} {'total':>8} {'max':>8} {'ttl':>8}   (ms, median)")
    for n in (int(s) for s in args.sizes.split(",")):
        r = await measure(n, args.ticks)
        print(f"{n:>8} {r['fetch']:>8.1f} {r['apply']:>8.1f} {r['paint']:>8.1f} {r['total']:>8.1f} "
              f"{r['total_max']:>8.1f} {r['ttl']:>8.1f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
