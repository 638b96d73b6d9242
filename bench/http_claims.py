"""Claim latency over loopback HTTP, and the wall time of `poolui --headless check`.

    .venv/bin/python bench/http_claims.py [--cycles 3000] [--checks 20]

Starts `poolui serve` (a separate process) with an `instant` pool, so a sandbox costs nothing and the figures
are the service's own: HTTP parsing, auth, JSON, the engine's claim and release, the store. The client is
one process with 1, 8 and 64 claims in flight, measured twice: with poolui's own PoolClient (httpx), and with
a minimal keep-alive HTTP/1.1 client (one connection per claimer) whose own cost is a few microseconds, so
that second row is the service's cost. Each cycle is a claim followed by its release; latency is the claim's
round trip as the client sees it. Server and client share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from poolui.client import PoolClient

POOL = """
[pools.bench]
provider = "instant"
target_ready = 64
min_ready = 1
max_ready = 256
max_total = 1024
max_concurrent_creates = 64
claim_timeout = "10s"
[pools.bench.health]
enabled = false
"""


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def spawn(cmd: list[str], what: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start a server process and wait for its "serving http://..." line; (process, URL)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline().decode() if ready else ""
    if "serving http://" not in line:
        proc.kill()
        raise SystemExit(f"{what} did not start: {line!r}")
    return proc, line.split("serving ", 1)[1].split()[0]


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    cfg = workdir / "pools.toml"
    cfg.write_text(POOL)
    proc, url = spawn([sys.executable, "-m", "poolui.cli", "serve", "--config", str(cfg), "--listen", "127.0.0.1:0",
                       "--state-dir", str(workdir / "state"), "--on-shutdown", "terminate"], "poolui serve")
    return proc, url, (workdir / "state" / "token").read_text().strip()


async def cycles(client: PoolClient, concurrency: int, total: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            claim = await client.claim("bench", timeout=10)
            latencies.append(time.perf_counter() - t0)
            await client.release("bench", claim.id)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - t0


class RawConnection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for these two requests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: str) -> None:
        self.reader, self.writer = reader, writer
        self.head = f"Host: bench\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"

    async def post(self, path: str, body: bytes = b"") -> bytes:
        self.writer.write(f"POST {path} HTTP/1.1\r\n{self.head}Content-Length: {len(body)}\r\n\r\n".encode()
                          + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        data = await self.reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n")[0].decode() + " " + data.decode())
        return data


async def raw_cycles(url: str, token: str, concurrency: int, total: int) -> tuple[list[float], float]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conns = [RawConnection(*await asyncio.open_connection(host, int(port)), token) for _ in range(concurrency)]
    latencies: list[float] = []
    left = total

    async def worker(c: RawConnection) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            claim = json.loads(await c.post("/pools/bench/claim", b'{"timeout": 10}'))
            latencies.append(time.perf_counter() - t0)
            await c.post(f"/pools/bench/sandboxes/{claim['id']}/release")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.writer.close()
    return latencies, elapsed


def row(label: str, concurrency: int, lat: list[float], elapsed: float) -> str:
    ms = [x * 1000 for x in lat]
    return (f"{label:<10} {concurrency:>3} claimers  n={len(ms):<6} p50={pct(ms, 50):6.2f} ms  "
            f"p99={pct(ms, 99):6.2f} ms  max={max(ms):7.2f} ms  cycles/s={len(ms) / elapsed:6.0f}")


async def warm(client: PoolClient, ready: int) -> None:
    for _ in range(600):
        if (await client.snapshot("bench", members=False)).counts["ready"] >= ready:
            return
        await asyncio.sleep(0.05)
    raise SystemExit(f"the pool did not reach {ready} ready")


def start_bare() -> tuple[subprocess.Popen[bytes], str]:
    """bench/bare_server.py: the same HTTP stack answering a constant body (the bare limit)."""
    return spawn([sys.executable, str(Path(__file__).parent / "bare_server.py")], "bare_server.py")


async def claims(url: str, token: str, total: int) -> list[str]:
    rows = []
    bare, bare_url = start_bare()
    try:
        async with PoolClient(url, token, timeout=30) as client:
            await warm(client, 64)
            await cycles(client, 8, 500)  # warm the connections and the code paths
            await raw_cycles(bare_url, token, 8, 500)
            for concurrency in (1, 8, 64):
                pc, pc_elapsed = await cycles(client, concurrency, total)
                raw, raw_elapsed = await raw_cycles(url, token, concurrency, total)
                ref, ref_elapsed = await raw_cycles(bare_url, token, concurrency, total)
                rows.append(row("PoolClient", concurrency, pc, pc_elapsed))
                rows.append(row("raw HTTP", concurrency, raw, raw_elapsed))
                rows.append(row("bare limit", concurrency, ref, ref_elapsed))
                rows.append(f"{'':<10} {concurrency:>3} claimers  poolui/bare cycles/s = "
                            f"{raw_elapsed and (ref_elapsed / raw_elapsed) * 100:.0f}%  "
                            f"PoolClient/raw p50 = {pct(pc, 50) / pct(raw, 50):.2f}x  "
                            f"p99 = {pct(pc, 99) / pct(raw, 99):.2f}x")
            server_p99 = (await client.snapshot("bench", members=False)).metrics["claim_latency"]["p99"]
            rows.append(f"the engine's own claim p99 inside the server: {server_p99 * 1e6:.0f} us")
            await client.resize("bench", target=100, max_ready=256)
            await warm(client, 100)
    finally:
        bare.terminate()
        bare.wait(30)
        if bare.stdout:
            bare.stdout.close()
    return rows


def check_times(url: str, token: str, n: int) -> list[str]:
    env = {**os.environ, "POOLUI_SERVER": url, "POOLUI_TOKEN": token}
    exe = shutil.which("poolui", path=str(Path(sys.executable).parent)) or "poolui"
    walls = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = subprocess.run([exe, "--headless", "check"], env=env, capture_output=True, text=True)
        walls.append((time.perf_counter() - t0) * 1000)
        assert r.returncode in (0, 1), r.stdout + r.stderr
    return [f"poolui --headless check, pool of 100 ready ({n} runs): median={statistics.median(walls):.0f} ms  "
            f"p90={pct(walls, 90):.0f} ms  max={max(walls):.0f} ms"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=3000, help="claim+release cycles per concurrency level")
    ap.add_argument("--checks", type=int, default=20, help="runs of `poolui --headless check`")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="poolui-bench-"))
    proc, url, token = start_server(workdir)
    try:
        print(f"poolui serve at {url}, instant provider, {os.cpu_count()} cores")
        for row in asyncio.run(claims(url, token, args.cycles)):
            print(row)
        for row in check_times(url, token, args.checks):
            print(row)
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout:
            proc.stdout.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
