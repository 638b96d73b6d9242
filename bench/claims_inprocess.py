"""Warm claim latency in-process, and (with real local sandboxes) cold start against warm claim.

    .venv/bin/python bench/claims_inprocess.py [--claims 20000] [--runs 3] [--local 30]

Part 1 uses the instant provider (create costs nothing), so the figure is the engine's own cost per claim:
claim (pop + mark claimed + its row written to the journal + event) and release, beside the bare floor
measured in the same run (a dict pop and one committed SQLite UPDATE), the two in turn --runs times; the
last line gives the median and the range of the runs. Part 2 starts real local sandboxes
and compares spawn-to-ready with a warm claim from a pool of them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from typing import Any

from poolui.core.manager import PoolManager
from poolui.pool_file import parse_config


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def line(name: str, samples: list[float]) -> str:
    us = [x * 1e6 for x in samples]
    return (f"{name:<34} n={len(us):<6} p50={pct(us, 50):9.1f} us  p99={pct(us, 99):9.1f} us  "
            f"mean={statistics.fmean(us):9.1f} us")


async def warm_claims(n: int, runs: int) -> None:
    cfg = parse_config({"pools": {"b": {
        "provider": "instant", "target_ready": 64, "min_ready": 1, "max_ready": 64, "max_total": 256,
        "max_concurrent_creates": 64, "health": {"enabled": False},
    }}}, "bench")
    rounds: list[tuple[float, float, float]] = []  # (claim p50, floor p50, claim p99 / floor p99)
    with tempfile.TemporaryDirectory() as d:
        async with PoolManager(cfg, state_dir=d) as mgr:
            await mgr.warm_up(30)
            for run in range(1, runs + 1):  # the claims, then the floor, in turn: load that comes and goes
                claims, releases, cold, wall = await timed_claims(mgr, n)  # falls on both alike
                ref = bare_reference(n)
                print(f"run {run} of {runs}")
                print(line("warm claim (instant provider)", claims))
                print(line("release (instant provider)", releases))
                print(line("bare: dict pop + SQLite UPDATE", ref))
                print(f"{'claim / bare':<34} p50 {pct(claims, 50) / pct(ref, 50):.1f}x  "
                      f"p99 {pct(claims, 99) / pct(ref, 99):.1f}x")
                print(f"{'claim+release cycles/s':<34} {n / wall:,.0f} (cold claims: {cold})")
                rounds.append((pct(claims, 50), pct(ref, 50), pct(claims, 99) / pct(ref, 99)))
    ratios = [c / f for c, f, _ in rounds]
    print(f"{runs} runs, median [min-max]: claim p50 {spread([c * 1e6 for c, _, _ in rounds], 'us')}, "
          f"floor p50 {spread([f * 1e6 for _, f, _ in rounds], 'us')}; "
          f"claim / bare p50 {spread(ratios, 'x', 2)}, p99 {spread([r for _, _, r in rounds], 'x', 1)}")


async def timed_claims(mgr: PoolManager, n: int) -> tuple[list[float], list[float], int, float]:
    """n warm claims, each released at once: their latencies, the releases', cold claims, the wall time."""
    claims: list[float] = []
    releases: list[float] = []
    cold = 0
    t_all = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        c = await mgr.claim("b", timeout=5)
        t1 = time.perf_counter()
        await mgr.release("b", c.id)
        t2 = time.perf_counter()
        claims.append(t1 - t0)
        releases.append(t2 - t1)
        cold += not c.warm
        if len(mgr.pools["b"].handout) < 8:
            await mgr.warm_up(30)  # let the refill catch up so every timed claim is a warm one
    return claims, releases, cold, time.perf_counter() - t_all


def spread(values: list[float], unit: str, digits: int = 1) -> str:
    return (f"{statistics.median(values):.{digits}f}{unit} "
            f"[{min(values):.{digits}f}-{max(values):.{digits}f}]")


def bare_reference(n: int) -> list[float]:
    """The floor a claim is measured against in the same run: a dict pop and one committed SQLite UPDATE
    (WAL, synchronous=NORMAL, as the store runs), then the member put back."""
    import sqlite3

    with tempfile.TemporaryDirectory() as d:
        db = sqlite3.connect(f"{d}/ref.sqlite3", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE m (id TEXT PRIMARY KEY, state TEXT, claimed_at REAL)")
        ready = {f"m{i}": i for i in range(64)}
        for k in ready:
            db.execute("INSERT INTO m VALUES (?, 'ready', NULL)", (k,))
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            k, v = ready.popitem()
            db.execute("UPDATE m SET state='claimed', claimed_at=? WHERE id=?", (t0, k))
            out.append(time.perf_counter() - t0)
            ready[k] = v
        db.close()
    return out


async def local_cold_vs_warm(n: int) -> None:
    cfg: dict[str, Any] = {"pools": {"l": {
        "provider": "local", "command": ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
        "target_ready": 4, "min_ready": 1, "max_ready": 8, "max_total": 16, "ttl": "5m",
        "readiness": {"http": "/", "timeout": "10s", "interval": "5ms"}, "health": {"enabled": False},
    }}}
    with tempfile.TemporaryDirectory() as d:
        async with PoolManager(parse_config(cfg, "bench"), state_dir=d) as mgr:
            await mgr.warm_up(60)
            warm: list[float] = []
            for _ in range(n):
                await mgr.warm_up(60)
                t0 = time.perf_counter()
                c = await mgr.claim("l", timeout=30)
                warm.append(time.perf_counter() - t0)
                await mgr.release("l", c.id)
            await mgr.warm_up(60)
            ready = (await mgr.snapshot("l")).metrics["create_to_ready"]
            print(f"local provider isolation: {(await mgr.snapshot('l')).isolation}")
            print(line("warm claim (local sandboxes)", warm))
            p50, p99 = ready["p50"] * 1e3, ready["p99"] * 1e3
            print(f"{'cold start: spawn to HTTP ready':<34} n={ready['count']:<6} p50={p50:9.1f} ms  p99={p99:9.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", type=int, default=20_000, help="claims per run")
    ap.add_argument("--runs", type=int, default=3, help="runs, each the claims and then the floor")
    ap.add_argument("--local", type=int, default=30, help="claims from real local sandboxes (0 to skip)")
    args = ap.parse_args()
    asyncio.run(warm_claims(args.claims, args.runs))
    if args.local:
        asyncio.run(local_cold_vs_warm(args.local))


if __name__ == "__main__":
    main()
