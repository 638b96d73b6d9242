"""Using a sandbox: exec round trips and one-shot runs over HTTP on real local (bubblewrap) sandboxes.

    .venv/bin/python bench/exec_roundtrip.py [--n 200] [--runs 60]

Starts `poolui serve` with a local pool and measures, in one run:
- exec of `true` on a warm claimed sandbox over HTTP (PoolClient), and in the same run the reference: the
  same `true` started directly on the host (posix_spawn + wait), which is the command's own start;
- exec of `python3 -c "print(1)"` alone on that sandbox: what any run of that command costs at least, so
  cold / this is the most a one-shot run can gain over a cold create;
- claim + exec `python3 -c "print(1)"` + release on a warm pool, against a cold create + the same exec
  (a pool with nothing warm: the claim waits for a create);
- the agent's cost: cold starts (create to ready) of the same pool with and without the agent, in-process,
  alternating;
- one-shot `run` of the same command at 1 and 8 concurrent callers, on a single-use pool (every run's
  sandbox is terminated and a new one started behind it) and on a reuse pool (reset between runs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from poolui.client import PoolClient
from poolui.sandbox_io import collect

POOL = """
[pools.{name}]
provider = "local"
command = ["python3", "-m", "http.server", "{{port}}", "--bind", "127.0.0.1"]
{sizes}
[pools.{name}.readiness]
http = "/"
interval = "20ms"
[pools.{name}.health]
enabled = false
"""
POOLS = (POOL.format(name="warm", sizes="target_ready = 10\nmax_ready = 16\nmax_total = 32\nmax_concurrent_creates = 4")
         + POOL.format(name="reuse", sizes="target_ready = 8\nmax_ready = 8\nmax_total = 8\nreuse = true\n"
                                          "max_uses = 100000")
         + POOL.format(name="cold", sizes='target_ready = 0\nmin_ready = 0\nmax_ready = 4\nmax_total = 4\n'
                                         'on_empty = "create"'))
PRINT1 = ["python3", "-c", "print(1)"]


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def row(name: str, samples: list[float]) -> str:
    ms = [x * 1000 for x in samples]
    return f"{name:<44} n={len(ms):<5} p50={pct(ms, 50):8.2f} ms  p99={pct(ms, 99):8.2f} ms"


def host_true(n: int) -> list[float]:
    true = shutil.which("true") or "/bin/true"
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        pid = os.posix_spawn(true, [true], {})
        os.waitpid(pid, 0)
        out.append(time.perf_counter() - t0)
    return out


async def timed(fn: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t0)
    return out


async def measure(url: str, token: str, n: int, runs: int) -> None:
    async with PoolClient(url, token, timeout=60) as c:
        for _ in range(600):
            if [(await c.snapshot(p, members=False)).ready for p in ("warm", "reuse")] == [10, 8]:
                break
            await asyncio.sleep(0.05)  # waiting for the pool to fill before measuring
        cl = await c.claim("warm", timeout=60)
        await collect(c.exec("warm", cl.id, ["true"]))
        rt = await timed(lambda: collect(c.exec("warm", cl.id, ["true"])), n)
        alone = await timed(lambda: collect(c.exec("warm", cl.id, PRINT1)), max(20, runs // 2))
        await c.release("warm", cl.id)
        host = host_true(n)
        print(row("exec `true` over HTTP, warm claimed sandbox", rt))
        print(row("reference: `true` started on the host", host))
        print(f"{'exec round trip less the command start':<44} p50={(pct(rt, 50) - pct(host, 50)) * 1000:8.2f} ms")
        print(row("exec print(1) alone, warm claimed sandbox", alone))

        async def warm_cycle() -> None:
            got = await c.claim("warm", timeout=60)
            r = await collect(c.exec("warm", got.id, PRINT1))
            assert r.stdout == b"1\n"
            await c.release("warm", got.id)

        async def cold_cycle() -> None:
            got = await c.claim("cold", timeout=60)
            assert not got.warm
            await collect(c.exec("cold", got.id, PRINT1))
            await c.release("cold", got.id)

        warm = await timed(warm_cycle, runs)
        cold = await timed(cold_cycle, max(5, runs // 6))
        print(row("claim + exec print(1) + release, warm", warm))
        print(row("cold create + the same exec + release", cold))
        print(f"{'warm / cold':<44} p50 {pct(cold, 50) / pct(warm, 50):.1f}x faster warm")
        for pool in ("warm", "reuse"):
            for conc in (1, 8):
                lat: list[float] = []

                async def caller(k: int, out: list[float] = lat, p: str = pool) -> None:
                    for _ in range(k):
                        t0 = time.perf_counter()
                        await collect(c.run(p, PRINT1, claim_timeout=60))
                        out.append(time.perf_counter() - t0)

                await asyncio.gather(*(caller(max(1, runs // conc)) for _ in range(conc)))
                kind = "single-use" if pool == "warm" else "reuse"
                print(row(f"one-shot run print(1), {kind}, {conc} in flight", lat))
                if pool == "reuse" and conc == 1:
                    print(f"{'cold / one-shot run on the reuse pool':<44} p50 {pct(cold, 50) / pct(lat, 50):.1f}x")
                    print(f"{'  its ceiling: cold / exec print(1) alone':<44} p50 "
                          f"{pct(cold, 50) / pct(alone, 50):.1f}x")


async def agent_cost(n: int) -> None:
    """Cold start with the in-sandbox agent against the same pool with agent = false, alternating."""
    from poolui.core.manager import PoolManager
    from poolui.pool_file import parse_config

    def table(agent: bool) -> dict[str, object]:
        return {"provider": "local", "command": ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
                "target_ready": 0, "min_ready": 0, "max_ready": 2, "max_total": 2, "on_empty": "create",
                "readiness": {"http": "/", "interval": "10ms"}, "health": {"enabled": False},
                "local": {"agent": agent}}

    cfg = parse_config({"pools": {"with": table(True), "without": table(False)}}, "bench")
    times: dict[str, list[float]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory() as d:
        async with PoolManager(cfg, state_dir=d) as mgr:
            for _ in range(n):
                for pool in ("with", "without"):
                    t0 = time.perf_counter()
                    c = await mgr.claim(pool, timeout=60)
                    times[pool].append(time.perf_counter() - t0)
                    await mgr.release(pool, c.id)
    print(row("cold start with the agent", times["with"]))
    print(row("cold start without it (agent = false)", times["without"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--runs", type=int, default=60)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "pools.toml"
        cfg.write_text(POOLS)
        proc = subprocess.Popen([sys.executable, "-m", "poolui.cli", "serve", "--config", str(cfg), "--listen",
                                 "127.0.0.1:0", "--state-dir", f"{d}/state"], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if "serving " not in line:
            proc.kill()
            raise SystemExit(f"poolui serve did not start: {line!r}")
        url = line.split("serving ", 1)[1].split()[0]
        try:
            print(f"poolui serve at {url}, local provider, {os.cpu_count()} cores")
            asyncio.run(measure(url, (Path(d) / "state" / "token").read_text().strip(), a.n, a.runs))
        finally:
            proc.terminate()
            proc.wait(30)
    asyncio.run(agent_cost(max(10, a.runs // 3)))


if __name__ == "__main__":
    main()
