"""What network isolation costs a Docker container: the engine's bridge against isolated and egress, in one run.

    .venv/bin/python bench/docker_isolation.py [--starts 20] [--requests 300]

Same measures as bench/isolation.py (the local provider's): cold start (a claim on an empty pool, create to
HTTP-ready, in-process PoolManager, the pools alternating), claim + first request through the claim URL,
then requests through the claim URL of a claimed container, a new TCP connection each and on one
kept-alive connection. Prints p50/p99 and each mode's p50 minus bridge's, then all of it as one JSON
line. Needs `sudo scripts/docker-engine.sh`; isolated and egress are measured where this machine can give
them (a local engine, root; egress also iptables and br_netfilter). The egress network and its host rule
made for the run are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from isolation import get as http_get
from isolation import pct, requests

from poolui.core.manager import PoolManager
from poolui.core.store import namespace_of
from poolui.pool_file import parse_config
from poolui.providers.docker.network import remove_egress, what_is_missing

ENGINE = "unix:///var/run/docker.sock"
MODES = ("bridge",) + tuple(m for m in ("isolated", "egress") if not what_is_missing(m, ENGINE))


def table(mode: str) -> dict[str, object]:
    docker = {"image": "poolui/busybox:local", "command": ["httpd", "-f", "-p", "{port}", "-h", "/www"],
              "read_only": True, "user": "65534:65534", **({"network": "bridge"} if mode == "bridge" else {})}
    return {"provider": "docker", "target_ready": 0, "min_ready": 0, "max_ready": 2, "max_total": 2,
            "on_empty": "create", "readiness": {"http": "/", "interval": "5ms", "timeout": "30s"},
            "health": {"enabled": False}, **({} if mode == "bridge" else {"network": mode}), "docker": docker}


async def main(starts: int, n: int) -> None:
    cfg = parse_config({"pools": {m: table(m) for m in MODES}}, "bench")
    data: dict[str, dict[str, list[float]]] = {k: {m: [] for m in MODES} for k in ("cold", "first", "fresh", "kept")}
    with tempfile.TemporaryDirectory() as d:
        try:
            async with PoolManager(cfg, state_dir=d) as mgr:
                for i in range(starts):
                    for m in MODES[i % len(MODES):] + MODES[:i % len(MODES)]:  # each goes first in turn
                        t0 = time.perf_counter()
                        c = await mgr.claim(m, timeout=60)
                        data["cold"][m].append(time.perf_counter() - t0)
                        await asyncio.to_thread(http_get, c.url)
                        data["first"][m].append(time.perf_counter() - t0)
                        if i == starts - 1:
                            data["fresh"][m] = await asyncio.to_thread(requests, c.url, n, False)
                            data["kept"][m] = await asyncio.to_thread(requests, c.url, n, True)
                        await mgr.release(m, c.id)
        finally:
            import docker

            client = docker.from_env()
            remove_egress(client, namespace_of(Path(d)))
            client.close()
    report(data)


MEASURES = {"cold": "cold start, create to ready", "first": "claim + first request",
            "fresh": "request, new connection each", "kept": "request, kept-alive connection"}


def report(data: dict[str, dict[str, list[float]]]) -> None:
    """One line per measure and mode (p50, p99, p50 over bridge's), and the same as one JSON object last,
    for comparing runs."""
    out: dict[str, dict[str, list[float]]] = {}
    for key, label in MEASURES.items():
        base = pct(data[key]["bridge"], 50)
        for m in MODES:
            p50, p99 = pct(data[key][m], 50), pct(data[key][m], 99)
            out.setdefault(key, {})[m] = [round(p50, 3), round(p99, 3)]
            print(f"{label:<32} {m:<9} n={len(data[key][m]):<4} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  "
                  f"{'' if m == 'bridge' else f'{p50 - base:+.2f} ms over bridge'}")
    print(json.dumps(out))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=20, help="cold starts per mode")
    parser.add_argument("--requests", type=int, default=300, help="requests per mode, each way")
    args = parser.parse_args()
    asyncio.run(main(args.starts, args.requests))
