"""Does the claim path grow with the pool? Claim p99 with 64, 10,000 members in one pool, and 100 pools of
100 (the 64-member pool is the reference, same run), and the controller's memory at 1,000 and 10,000.

    .venv/bin/python bench/scale.py [--claims 2000]

The `instant` provider makes sandboxes cost nothing, so what grows is the engine's own bookkeeping.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from typing import Any

from poolui.core.manager import PoolManager
from poolui.pool_file import parse_config


def table(n: int) -> dict[str, Any]:
    return {"provider": "instant", "target_ready": n, "min_ready": 0, "max_ready": n, "max_total": n + 64,
            "max_concurrent_creates": min(n, 1000), "ttl": "2h", "min_remaining_ttl": "1m",
            "health": {"enabled": False}, "maintenance_interval": "1h"}


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 1024


def p(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q / 100 * (len(s) - 1)))] * 1e6


async def run(pools: dict[str, int], claims: int) -> tuple[float, float, float]:
    """(claim p50 us, claim p99 us, RSS MiB once warm) for these pools (name -> members)."""
    cfg = parse_config({"pools": {name: table(n) for name, n in pools.items()}}, "bench")
    names = list(pools)
    with tempfile.TemporaryDirectory() as d:
        async with PoolManager(cfg, state_dir=d) as mgr:
            await mgr.warm_up(600)
            gc.collect()
            rss = rss_mib()
            lat = []
            for i in range(claims):
                name = names[i % len(names)]
                t0 = time.perf_counter()
                c = await mgr.claim(name, timeout=30)
                lat.append(time.perf_counter() - t0)
                await mgr.release(name, c.id)
                if i % 32 == 31:
                    await mgr.warm_up(600)  # keep every pool full, so each claim is a warm one
    return p(lat, 50), p(lat, 99), rss


async def main(claims: int) -> None:
    base = rss_mib()
    print(f"{'pools':<22} {'members':>8} {'claim p50':>10} {'claim p99':>10} {'RSS':>9}")
    for label, pools in (("one pool (reference)", {"p": 64}), ("one pool", {"p": 1000}),
                         ("one pool", {"p": 10_000}), ("100 pools of 100", {f"p{i}": 100 for i in range(100)})):
        p50, p99, rss = await run(pools, claims)
        print(f"{label:<22} {sum(pools.values()):>8} {p50:8.1f}us {p99:8.1f}us {rss:7.0f}MiB", flush=True)
    print(f"(the process before any pool: {base:.0f} MiB)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", type=int, default=2000)
    asyncio.run(main(ap.parse_args().claims))
