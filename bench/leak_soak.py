"""Claims under random cancels against a real `poolui serve`: how many leak, and how fast leases reclaim.

Three runs on one `instant` pool (a sandbox costs nothing, so only the claim path is measured):

  raw      plain httpx clients, 30% cancelled at a random moment, no lease, no rollback: the reference
           (what a careless caller leaks, held until the TTL)
  lease    the same clients, each claim with a 1 s lease: abandoned claims end when the lease runs out
  client   PoolClient, 30% cancelled: its claim keys and background rollback leave nothing held

Per run: claims asked, cancels, claims still held after every client finished (leaks; for `lease`,
after lease + 1 s), and for `lease` how many claims their lease ended (the abandoned ones) and the
reclaim delay: the lease_expired event's time minus the lease's end, p50 / p99 in ms.

Run: .venv/bin/python bench/leak_soak.py [--seconds 20] [--clients 64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_claims import pct, start_server  # noqa: E402

from poolui.client import PoolClient  # noqa: E402

LEASE = 1.0


async def held(http: httpx.AsyncClient) -> int:
    return int((await http.get("/pools/bench", params={"members": "false"})).json()["counts"]["claimed"])


async def storm(claim: Callable[[], Awaitable[str | None]], release: Callable[[str], Awaitable[None]],
                clients: int, seconds: float, rng: random.Random) -> tuple[int, int]:
    """Claims from `clients` loops for `seconds`, 30% cancelled at a random moment; (claims, cancels).

    Only the claim is cancelled; a claim that arrives is released (a caller that cancels its own release
    leaks by its own hand, which no server can tell from holding)."""
    asked = cancels = 0
    end = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal asked, cancels
        while time.monotonic() < end:
            asked += 1
            task = asyncio.ensure_future(claim())
            if rng.random() < 0.3:
                await asyncio.wait({task}, timeout=rng.random() * 0.005)
                if not task.done():
                    task.cancel()
                    cancels += 1
            # A cancelled or refused claim is part of the storm; what counts is what stays held.
            got = None
            with contextlib.suppress(Exception, asyncio.CancelledError):
                got = await task
            if got is not None:
                await release(got)

    await asyncio.gather(*(loop() for _ in range(clients)))
    return asked, cancels


async def watch_leases(http: httpx.AsyncClient, ends: dict[str, float]) -> None:
    """Every 0.1 s, the lease end of each claimed member (an abandoned one is held for a whole lease)."""
    while True:
        for m in (await http.get("/pools/bench")).json()["members"]:
            if m["state"] == "claimed" and m.get("lease_expires_at"):
                ends[m["id"]] = m["lease_expires_at"]
        await asyncio.sleep(0.1)


async def release_all(http: httpx.AsyncClient) -> None:
    snap = (await http.get("/pools/bench")).json()
    for m in snap["members"]:
        if m["state"] == "claimed":
            await http.post(f"/pools/bench/sandboxes/{m['id']}/release")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=64)
    args = ap.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url, token = start_server(Path(tmp))
        try:
            async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {token}"},
                                         timeout=15, limits=httpx.Limits(max_connections=256)) as http:
                print(f"{'run':<8} {'claims':>8} {'cancels':>8} {'leaks':>6} {'leases expired':>14} "
                      f"{'reclaim p50/p99':>16}")
                for name, body in (("raw", {"timeout": 10}), ("lease", {"timeout": 10, "lease": LEASE})):
                    async def one(body: dict[str, float] = body) -> str | None:
                        r = await http.post("/pools/bench/claim", json=body)
                        return str(r.json()["id"]) if r.status_code == 200 else None

                    async def release(sandbox_id: str) -> None:
                        await http.post(f"/pools/bench/sandboxes/{sandbox_id}/release")

                    ends: dict[str, float] = {}
                    watcher = asyncio.ensure_future(watch_leases(http, ends))
                    asked, cancels = await storm(one, release, args.clients, args.seconds, rng)
                    watcher.cancel()
                    if name == "lease":
                        await asyncio.sleep(LEASE + 1)  # what the issue allows: lease + 1 s
                    leaks = await held(http)
                    expired = delay = ""
                    if name == "lease":
                        events = (await http.get("/events/recent", params={"pool": "bench", "limit": 1000})).json()
                        late = [e["ts"] - ends[e["member_id"]] for e in events["events"]
                                if e["kind"] == "lease_expired" and e["member_id"] in ends]
                        expired = str(len(late))
                        if late:
                            delay = f"{pct(late, 50) * 1000:.0f} / {pct(late, 99) * 1000:.0f}"
                    print(f"{name:<8} {asked:>8} {cancels:>8} {leaks:>6} {expired:>14} {delay:>16}", flush=True)
                    await release_all(http)
                async with PoolClient(url, token) as c:
                    async def one_client() -> str | None:
                        return (await c.claim("bench", timeout=10)).id

                    async def release_client(sandbox_id: str) -> None:
                        await c.release("bench", sandbox_id)

                    asked, cancels = await storm(one_client, release_client, args.clients, args.seconds, rng)
                await asyncio.sleep(0.5)
                print(f"{'client':<8} {asked:>8} {cancels:>8} {await held(http):>6}", flush=True)
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    asyncio.run(main())
