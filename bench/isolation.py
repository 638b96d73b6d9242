"""What network isolation costs a local (bubblewrap) sandbox, host against isolated and egress, in one run.

    .venv/bin/python bench/isolation.py [--starts 20] [--requests 300]

- cold start: create to HTTP-ready, in-process (PoolManager), the two pools alternating;
- claim + first HTTP request through the claim URL;
- HTTP requests through the claim URL of a claimed sandbox, a new TCP connection each (as a probe or a
  client without keep-alive makes them), and on one kept-alive connection.
Prints each pool's p50/p99 and the difference of each against host. Egress (pasta) is measured when this
machine can give it (root, pasta installed).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import shutil
import tempfile
import time
from urllib.parse import urlsplit

from poolui.core.manager import PoolManager
from poolui.pool_file import parse_config

MODES = ("host", "isolated") + (("egress",) if os.geteuid() == 0 and shutil.which("pasta") else ())


def table(network: str) -> dict[str, object]:
    return {"provider": "local", "command": ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
            "target_ready": 0, "min_ready": 0, "max_ready": 2, "max_total": 2, "on_empty": "create",
            "readiness": {"http": "/", "interval": "5ms"}, "health": {"enabled": False}, "network": network}


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] * 1000


def get(url: str, conn: http.client.HTTPConnection | None = None) -> None:
    u = urlsplit(url)
    c = conn or http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request("GET", "/")
    r = c.getresponse()
    r.read()
    assert r.status == 200
    if conn is None:
        c.close()


def requests(url: str, n: int, keep: bool) -> list[float]:
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10) if keep else None
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        get(url, conn)
        out.append(time.perf_counter() - t0)
    return out


async def main(starts: int, n: int) -> None:
    cfg = parse_config({"pools": {m: table(m) for m in MODES}}, "bench")
    cold: dict[str, list[float]] = {m: [] for m in MODES}
    first: dict[str, list[float]] = {m: [] for m in MODES}
    fresh: dict[str, list[float]] = {m: [] for m in MODES}
    kept: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as d:
        async with PoolManager(cfg, state_dir=d) as mgr:
            for i in range(starts):
                for m in MODES[i % len(MODES):] + MODES[:i % len(MODES)]:  # each goes first in turn
                    t0 = time.perf_counter()
                    c = await mgr.claim(m, timeout=60)
                    cold[m].append(time.perf_counter() - t0)
                    await asyncio.to_thread(get, c.url)
                    first[m].append(time.perf_counter() - t0)
                    if i == starts - 1:
                        fresh[m] = await asyncio.to_thread(requests, c.url, n, False)
                        kept[m] = await asyncio.to_thread(requests, c.url, n, True)
                    await mgr.release(m, c.id)
    others = MODES[1:]
    print(f"{'':44}" + "".join(f"{m:>18}" for m in MODES) + "".join(f"{m + ' - host':>16}" for m in others))
    for name, data in (("cold start, create to ready", cold), ("claim + first request", first),
                       ("request, new connection each", fresh), ("request, kept-alive connection", kept)):
        h = data["host"]
        cells = "".join(f"{pct(data[m], 50):8.2f} / {pct(data[m], 99):7.2f}" for m in MODES)
        diffs = "".join(f"{pct(data[m], 50) - pct(h, 50):+13.2f} ms" for m in others)
        print(f"{name + f' (n={len(h)})':<44}{cells}{diffs}")
    print("(milliseconds, p50 / p99; differences are of p50)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--starts", type=int, default=20)
    ap.add_argument("--requests", type=int, default=300)
    a = ap.parse_args()
    asyncio.run(main(a.starts, a.requests))
