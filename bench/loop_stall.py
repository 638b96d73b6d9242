"""The event loop's longest stall while a pool of real local sandboxes refills a burst of claims.

    .venv/bin/python bench/loop_stall.py [--burst 8] [--rounds 5]

A ticker asks the loop for a 1 ms sleep over and over and records how late each wake-up is: a claim
arriving then would wait that long. Measured idle first (the reference, same run), then while `burst`
claims at once empty the pool and it refills them (spawning sandboxes, probing readiness, writing state).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from typing import Any

from poolui.core.manager import PoolManager
from poolui.pool_file import parse_config


async def ticker(lates: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(0.001)
        lates.append(time.perf_counter() - t0 - 0.001)


def summary(name: str, lates: list[float]) -> str:
    s = sorted(lates)
    return (f"{name:<28} wake-ups={len(s):<6} p50={s[len(s) // 2] * 1e3:6.2f} ms  "
            f"p99={s[int(len(s) * 0.99)] * 1e3:6.2f} ms  longest={s[-1] * 1e3:6.2f} ms")


async def main(burst: int, rounds: int) -> None:
    cfg: dict[str, Any] = {"pools": {"l": {
        "provider": "local", "command": ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
        "target_ready": burst, "min_ready": 0, "max_ready": burst, "max_total": 2 * burst,
        "max_concurrent_creates": burst, "ttl": "5m", "health": {"enabled": False},
        "readiness": {"http": "/", "timeout": "20s", "interval": "5ms"},
    }}}
    with tempfile.TemporaryDirectory() as d:
        async with PoolManager(parse_config(cfg, "bench"), state_dir=d) as mgr:
            await mgr.warm_up(60)
            idle: list[float] = []
            stop = asyncio.Event()
            t = asyncio.ensure_future(ticker(idle, stop))
            await asyncio.sleep(1.0)
            stop.set()
            await t
            busy: list[float] = []
            for _ in range(rounds):
                stop = asyncio.Event()
                t = asyncio.ensure_future(ticker(busy, stop))
                claims = await asyncio.gather(*(mgr.claim("l", timeout=30) for _ in range(burst)))
                for c in claims:
                    await mgr.release("l", c.id)
                await mgr.warm_up(60)
                stop.set()
                await t
            print(f"local provider isolation: {(await mgr.snapshot('l')).isolation}")
            print(summary("idle loop (reference)", idle))
            print(summary(f"refilling bursts of {burst}", busy))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--burst", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    asyncio.run(main(a.burst, a.rounds))
