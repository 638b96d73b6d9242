"""Claim latency over loopback HTTP, and the wall time of `poolui --headless check`.

    .venv/bin/python bench/http_claims.py [--cycles 3000] [--checks 20] [--runs 3] [--levels 1,8,64] [--sustain 60]
    .venv/bin/python bench/http_claims.py --compare /path/to/other/checkout   # before/after, alternated

Starts `poolui serve` (a separate process) with an `instant` pool, so a sandbox costs nothing and the figures
are the service's own: HTTP parsing, auth, JSON, the engine's claim and release, the store. The client is
one process with 1, 8 and 64 claims in flight, measured twice: with poolui's own PoolClient (httpx), and with
a minimal keep-alive HTTP/1.1 client (one connection per claimer) whose own cost is a few microseconds, so
that second row is the service's cost. Each cycle is a claim followed by its release; latency is the claim's
round trip as the client sees it. Server and client share this machine's cores.

Then --runs rounds of the raw client against poolui and the bare app, alternated, per concurrency level:
median and spread (min-max) of p50, p99, cycles/s, poolui/bare (and p50, p99 as multiples of the bare
app's in the same round: a latency goal that holds on any machine), the server's CPU per cycle (user+system
of the server process from /proc, less noisy than wall figures on a busy machine), and the state file's
commits per cycle (from /metrics). With --compare DIR a
second `poolui serve` runs the code of another checkout (PYTHONPATH=DIR) and takes its turn in each round,
so before and after are measured in the same sitting; with --stub, poolui's own HTTP layer in front of a
stub engine (bench/stub_server.py) takes its turn too, so the gap to the bare app splits into the HTTP
layer's and the engine's. With --sustain S, claims then go on at 8 in flight
for S seconds while the state file's WAL and the member rows' journals are looked at every 50 ms: their
largest sizes are printed.
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
import urllib.request
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


def spawn(cmd: list[str], what: str, env: dict[str, str] | None = None,
          cwd: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start a server process and wait for its "serving http://..." line; (process, URL)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline().decode() if ready else ""
    if "serving http://" not in line:
        proc.kill()
        raise SystemExit(f"{what} did not start: {line!r}")
    return proc, line.split("serving ", 1)[1].split()[0]


def start_server(workdir: Path, source: str | None = None) -> tuple[subprocess.Popen[bytes], str, str]:
    """`poolui serve` of this checkout, or of the checkout at `source` (its code first on PYTHONPATH)."""
    cfg = workdir / "pools.toml"
    cfg.write_text(POOL)
    # `python -m` puts its working directory first on sys.path: the compared checkout's, or this one's
    env = {**os.environ, "PYTHONPATH": source} if source else None
    here = source or str(Path(__file__).resolve().parent.parent)
    proc, url = spawn([sys.executable, "-m", "poolui.cli", "serve", "--config", str(cfg), "--listen", "127.0.0.1:0",
                       "--state-dir", str(workdir / "state"), "--on-shutdown", "terminate"], "poolui serve", env, here)
    return proc, url, (workdir / "state" / "token").read_text().strip()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def start_stub(token: str) -> tuple[subprocess.Popen[bytes], str]:
    """bench/stub_server.py: poolui's HTTP layer in front of a stub engine (the HTTP layer's own cost)."""
    return spawn([sys.executable, str(Path(__file__).parent / "stub_server.py"), token], "stub_server.py")


def start_bare() -> tuple[subprocess.Popen[bytes], str]:
    """bench/bare_server.py: the same HTTP stack answering a constant body (the bare limit)."""
    return spawn([sys.executable, str(Path(__file__).parent / "bare_server.py")], "bare_server.py")


async def claims(url: str, token: str, bare_url: str, total: int, levels: list[int]) -> list[str]:
    """One pass per level: poolui's own client, the raw client, the bare app (as the issue's first table)."""
    rows = []
    async with PoolClient(url, token, timeout=30) as client:
        await cycles(client, 8, 500)  # warm the connections and the code paths
        await raw_cycles(bare_url, token, 8, 500)
        for concurrency in levels:
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


class Target:
    """One server the rounds measure: a poolui serve (with its token), or the bare app."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], url: str, token: str = "") -> None:
        self.name, self.proc, self.url, self.token = name, proc, url, token
        # level -> (p50, p99, cycles/s, us CPU, commits per cycle)
        self.runs: dict[int, list[tuple[float, float, float, float, float]]] = {}


def commits(t: Target) -> float:
    """The server's state-file commits so far (/metrics); 0 for the bare app."""
    if not t.token:
        return 0.0
    req = urllib.request.Request(t.url + "/metrics", headers={"Authorization": f"Bearer {t.token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
    except OSError:  # the stub engine has no metrics
        return float("nan")
    return next((float(line.split()[1]) for line in text.splitlines()
                 if line.startswith("poolui_store_commits_total ")), float("nan"))  # nan: an older server


async def one_run(t: Target, token: str, concurrency: int, total: int) -> tuple[float, float, float, float, float]:
    c0 = commits(t)
    cpu0 = cpu_seconds(t.proc.pid)
    lat, elapsed = await raw_cycles(t.url, t.token or token, concurrency, total)
    cpu = cpu_seconds(t.proc.pid) - cpu0
    ms = [x * 1000 for x in lat]
    return pct(ms, 50), pct(ms, 99), len(ms) / elapsed, cpu / len(ms) * 1e6, (commits(t) - c0) / len(ms)


def spread(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


async def rounds(targets: list[Target], bare: Target, levels: list[int], runs: int, total: int) -> list[str]:
    """Each round runs every target and the bare app once at each level, alternated; medians and spreads."""
    for t in targets:
        await raw_cycles(t.url, t.token, 8, 500)  # warm the connections and the code paths
    await raw_cycles(bare.url, targets[0].token, 8, 500)
    out = [f"raw HTTP, {runs} rounds of {total} cycles, alternated; median [min-max]; load {os.getloadavg()[0]:.2f}"]
    for level in levels:
        ratios: dict[str, list[float]] = {t.name: [] for t in targets}
        slower: dict[str, list[tuple[float, float]]] = {t.name: [] for t in targets}  # p50, p99 over bare's
        for _ in range(runs):
            for t in [*targets, bare]:
                t.runs.setdefault(level, []).append(await one_run(t, targets[0].token, level, total))
            for t in targets:
                mine, base = t.runs[level][-1], bare.runs[level][-1]
                ratios[t.name].append(mine[2] / base[2] * 100)
                slower[t.name].append((mine[0] / base[0], mine[1] / base[1]))
        for t in [*targets, bare]:
            r = t.runs[level]
            line = (f"{t.name:<12} {level:>3} in flight  p50 {spread([x[0] for x in r], '.2f')} ms  "
                    f"p99 {spread([x[1] for x in r], '.2f')} ms  cycles/s {spread([x[2] for x in r], '.0f')}  "
                    f"server CPU/cycle {spread([x[3] for x in r], '.0f')} us")
            if t is not bare:
                line += (f"  of bare {spread(ratios[t.name], '.0f')}%  commits/cycle "
                         f"{spread([x[4] for x in r], '.2f')}  p50 x{spread([x[0] for x in slower[t.name]], '.1f')}"
                         f"  p99 x{spread([x[1] for x in slower[t.name]], '.1f')} of bare's")
            out.append(line)
    out.append(f"load after: {os.getloadavg()[0]:.2f}")
    return out


def journal_bytes(state: Path) -> int:
    """The member rows' journal files' size together (store.py keeps the current one and the one before)."""
    total = 0
    for p in state.glob("*.journal"):
        try:
            total += p.stat().st_size
        except FileNotFoundError:  # folded in and removed meanwhile
            pass
    return total


async def sustained(t: Target, state: Path, seconds: float) -> list[str]:
    """Claims at 8 in flight for `seconds`, the WAL file's and the journals' sizes looked at every 50 ms:
    their largest, against the bounds the store keeps (checkpoint.HOLD_AT plus a few hundred KiB; two
    journals of journal.FOLD_AT)."""
    wal, db = state / "poolui.sqlite3-wal", state / "poolui.sqlite3"
    biggest, journals, stop = 0, 0, asyncio.Event()

    async def watch() -> None:
        nonlocal biggest, journals
        while not stop.is_set():
            biggest = max(biggest, wal.stat().st_size if wal.exists() else 0)
            journals = max(journals, journal_bytes(state))
            try:
                await asyncio.wait_for(stop.wait(), 0.05)
            except TimeoutError:
                pass

    watcher = asyncio.ensure_future(watch())
    cycles, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        cycles += len((await raw_cycles(t.url, t.token, 8, 2000))[0])
    elapsed = time.perf_counter() - t0
    stop.set()
    await watcher
    size = db.stat().st_size / 2**20
    return [f"sustained: {cycles:,} cycles in {elapsed:.0f} s at 8 in flight ({cycles / elapsed:,.0f}/s); WAL largest "
            f"{biggest / 2**20:.2f} MiB (bound 8 MiB plus a few hundred KiB), journals largest "
            f"{journals / 2**20:.2f} MiB (bound 8 MiB), database {size:.2f} MiB"]


async def measure(targets: list[Target], args: argparse.Namespace) -> list[str]:
    rows: list[str] = []
    bare_proc, bare_url = start_bare()
    bare = Target("bare", bare_proc, bare_url)
    try:
        for t in targets:
            if t.name != "stub engine":  # it has no pools to fill
                async with PoolClient(t.url, t.token, timeout=30) as client:
                    await warm(client, 64)
        if args.poolclient:
            rows += await claims(targets[0].url, targets[0].token, bare_url, args.cycles, args.levels)
        rows += await rounds(targets, bare, args.levels, args.runs, args.cycles)
        if args.sustain:
            rows += await sustained(targets[0], args.state, args.sustain)
    finally:
        bare_proc.terminate()
        bare_proc.wait(30)
        if bare_proc.stdout:
            bare_proc.stdout.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=3000, help="claim+release cycles per concurrency level and run")
    ap.add_argument("--checks", type=int, default=20, help="runs of `poolui --headless check` (0: none)")
    ap.add_argument("--runs", type=int, default=3, help="alternated rounds of raw HTTP against poolui and bare")
    ap.add_argument("--levels", default="1,8,64", help="claims in flight, comma-separated")
    ap.add_argument("--compare", metavar="DIR", help="also serve the poolui code of this checkout, alternated")
    ap.add_argument("--sustain", type=float, default=0, metavar="SECONDS",
                    help="then claims for this long at 8 in flight, printing the WAL's largest size (0: none)")
    ap.add_argument("--stub", action="store_true",
                    help="also serve poolui's HTTP layer with a stub engine (bench/stub_server.py) in the rounds")
    ap.add_argument("--no-poolclient", dest="poolclient", action="store_false",
                    help="skip the single pass with poolui's own client")
    args = ap.parse_args()
    args.levels = [int(x) for x in args.levels.split(",")]
    workdirs: list[Path] = []
    targets: list[Target] = []
    try:
        for name, source in [("poolui", None), *([("compared", args.compare)] if args.compare else [])]:
            workdirs.append(Path(tempfile.mkdtemp(prefix="poolui-bench-")))
            proc, url, token = start_server(workdirs[-1], source)
            targets.append(Target(name, proc, url, token))
        if args.stub:
            proc, url = start_stub(targets[0].token)
            targets.append(Target("stub engine", proc, url, targets[0].token))
        args.state = workdirs[0] / "state"
        print(f"poolui serve at {targets[0].url}, instant provider, {os.cpu_count()} cores"
              + (f"; compared: {args.compare}" if args.compare else ""))
        for row in asyncio.run(measure(targets, args)):
            print(row, flush=True)
        if args.checks:
            for row in check_times(targets[0].url, targets[0].token, args.checks):
                print(row)
    finally:
        for t in targets:
            t.proc.terminate()
            t.proc.wait(30)
            if t.proc.stdout:
                t.proc.stdout.close()
        for w in workdirs:
            shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
