"""Docker containers beside local sandboxes, in one run: cold start and warm claim.

    .venv/bin/python bench/docker_vs_local.py [--cold 10] [--burst 4] [--claims 20]

Cold: create -> ready through the Provider protocol (sequential, then a burst of concurrent creates).
Warm: a PoolManager keeps 3 ready; each claim is timed alone and together with the first HTTP answer from
the claimed URL (what a user of the pool waits for). Needs `sudo scripts/docker-engine.sh` first; a provider
that cannot run here is reported and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from poolui.core.manager import PoolManager
from poolui.pool_file import parse_config
from poolui.providers.base import ProviderContext
from poolui.providers.registry import make_provider

POOLS: dict[str, dict[str, Any]] = {
    "local": {
        "provider": "local",
        "command": ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
    },
    "docker": {
        "provider": "docker",
        "limits": {"memory": "64MiB", "pids": 64},
        "docker": {"image": "poolui/busybox:local", "command": ["httpd", "-f", "-p", "{port}", "-h", "/www"],
                   "read_only": True, "user": "65534:65534"},
    },
    "docker-host-net": {
        "provider": "docker",
        "limits": {"memory": "64MiB", "pids": 64},
        "docker": {"image": "poolui/busybox:local", "command": ["httpd", "-f", "-p", "{port}", "-h", "/www"],
                   "network": "host", "read_only": True, "user": "65534:65534"},
    },
}
COMMON = {"target_ready": 3, "min_ready": 1, "max_ready": 8, "max_total": 16, "ttl": "5m",
          "readiness": {"http": "/", "timeout": "20s", "interval": "5ms"}, "health": {"enabled": False}}


def ms(samples: list[float]) -> str:
    s = sorted(x * 1e3 for x in samples)
    p90 = s[min(len(s) - 1, round(0.9 * (len(s) - 1)))]
    return f"n={len(s):<3} p50={statistics.median(s):7.1f} ms  p90={p90:7.1f} ms  max={s[-1]:7.1f} ms"


def config(name: str) -> Any:
    return parse_config({"pools": {name: {**COMMON, **POOLS[name]}}}, "bench")


async def cold(name: str, n: int, burst: int) -> None:
    cfg = config(name).pools[name]
    with tempfile.TemporaryDirectory() as d:
        p = make_provider(cfg, ProviderContext(f"bench-{name}", Path(d)))
        try:
            await p.check()
        except Exception as e:
            print(f"{name:<16} skipped: {e}")
            return
        try:
            created, ready, gone = [], [], []
            for i in range(n):
                t0 = time.perf_counter()
                sb = await p.create(f"c{i}", 120)
                t1 = time.perf_counter()
                await p.wait_ready(sb, 20)
                t2 = time.perf_counter()
                await p.terminate(sb)
                gone.append(time.perf_counter() - t2)
                created.append(t1 - t0)
                ready.append(t2 - t0)
            print(f"{name:<16} isolation: {p.isolation}")
            print(f"  create returns       {ms(created)}")
            print(f"  create -> ready      {ms(ready)}")
            print(f"  terminate            {ms(gone)}")
            if burst > 1:
                async def one(i: int) -> float:
                    t0 = time.perf_counter()
                    sb = await p.create(f"b{i}", 120)
                    await p.wait_ready(sb, 30)
                    took = time.perf_counter() - t0
                    await p.terminate(sb)
                    return took
                t0 = time.perf_counter()
                each = await asyncio.gather(*(one(i) for i in range(burst)))
                print(f"  burst of {burst}: all ready in {(time.perf_counter() - t0) * 1e3:.0f} ms ({ms(list(each))})")
        finally:
            for sb in await p.list_ours():
                await p.terminate(sb)
            await p.close()


async def warm(name: str, n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        try:
            mgr = PoolManager(config(name), state_dir=d)
            await mgr.start()
        except Exception as e:
            print(f"{name:<16} warm: skipped: {e}")
            return
        try:
            await mgr.warm_up(60)
            claim, first = [], []
            async with httpx.AsyncClient(timeout=10) as http:
                for _ in range(n):
                    await mgr.warm_up(60)
                    t0 = time.perf_counter()
                    c = await mgr.claim(name, timeout=30)
                    t1 = time.perf_counter()
                    r = await http.get(c.url + "/")
                    t2 = time.perf_counter()
                    assert r.status_code == 200, r.status_code
                    claim.append(t1 - t0)
                    first.append(t2 - t0)
                    await mgr.terminate(name, [c.id])  # a used sandbox is not handed out again
            print(f"{name:<16} warm claim           {ms(claim)}")
            print(f"{'':<16} claim + first HTTP   {ms(first)}")
        finally:
            await mgr.stop()


async def run(args: argparse.Namespace) -> None:
    names = [n for n in POOLS if n in args.providers]
    print(f"cold start, {args.cold} sequential + a burst of {args.burst}, through the Provider protocol")
    for name in names:
        await cold(name, args.cold, args.burst)
    print(f"\nwarm claims from a pool of 3 ready (PoolManager), {args.claims} each")
    for name in names:
        await warm(name, args.claims)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", type=int, default=10)
    ap.add_argument("--burst", type=int, default=4)
    ap.add_argument("--claims", type=int, default=20)
    ap.add_argument("--providers", nargs="*", default=list(POOLS), choices=list(POOLS))
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
