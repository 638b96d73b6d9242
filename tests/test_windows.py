"""Claims over the last 1 and 5 minutes (core/window.py): one function behind the snapshot, `check --json`
and /metrics, hits, cold claims, refusals and timeouts apart, rolling out of the window as the engine's
clock moves (virtual time: nothing here waits a real minute)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import wait_for
from prometheus_client.parser import text_string_to_metric_families
from server_fixtures import pool_table, served, until
from test_engine import config, provider, virtual_manager

from poolui import virtual_time
from poolui.clock import FrozenClock
from poolui.core.model import PoolSnapshot
from poolui.core.window import ClaimWindow
from poolui.errors import ClaimTimeout, PoolDraining
from poolui.headless.check import assess, check_line
from poolui.server import metrics as prom
from poolui.server.state import StreamStats


def test_a_claim_counts_for_a_minute_then_only_in_the_five_minute_window() -> None:
    clock = FrozenClock(mono=1000.0)
    w = ClaimWindow(clock)
    assert w.stats(60)["claims"] == 0 and w.stats(60)["p99"] is None and w.stats(60)["hit_rate"] is None
    w.record("warm", 0.010)
    w.record("cold", 0.200)
    w.record("failed", None)
    w.record("timed_out", None)
    one = w.stats(60)
    assert (one["claims"], one["hits"], one["cold"], one["refusals"], one["timeouts"]) == (4, 1, 1, 1, 1)
    assert one["hit_rate"] == 0.25
    assert one["p50"] == pytest.approx(0.010, rel=0.02) and one["p99"] == pytest.approx(0.200, rel=0.02)
    assert sum(one["series"]) == 4 and one["series"][-1] == 4  # the newest step is on the right
    clock.advance(59.5)  # the claims' second is still one of the last 60
    assert w.stats(60)["claims"] == 4
    clock.advance(1)
    assert w.stats(60)["claims"] == 0 and w.stats(60)["p50"] is None
    assert w.stats(300)["claims"] == 4 and w.stats(300)["hits"] == 1
    w.record("warm", 0.5)  # a claim now trims nothing that is still in the five minutes
    assert w.stats(300)["claims"] == 5 and w.stats(60)["claims"] == 1
    clock.advance(240)
    assert w.stats(300)["claims"] == 1 and w.stats(60)["claims"] == 0
    clock.advance(60)
    assert w.stats(300)["claims"] == 0 and w.stats(300)["p99"] is None


def test_memory_is_one_bucket_per_second_of_the_longest_window() -> None:
    clock = FrozenClock(mono=0.0)
    w = ClaimWindow(clock)
    for _ in range(1000):
        for _ in range(50):
            w.record("warm", 0.001)
        clock.advance(1)
    w.record("warm", 0.001)
    assert len(w._seconds) <= 300
    assert w.stats(300)["claims"] == 299 * 50 + 1 and w.stats(300)["per_minute"] == pytest.approx(50 * 60, rel=0.01)


def windowed(snap: PoolSnapshot, label: str) -> dict[str, Any]:
    return dict(snap.metrics["windows"][label])


def prometheus(snap: PoolSnapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = prom.render([snap], StreamStats())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_snapshot_metrics_and_check_agree_and_roll_out_on_the_engines_clock(tmp_path: Path) -> None:
    """Warm, cold, timed-out and refused claims on a real pool (instant sandboxes, ready a second after
    they are made) on virtual time; then the clock moves past one minute, then past five."""
    cfg = config(target_ready=2, instant={"ready_delay": "1s"})

    async def main() -> None:
        async with virtual_manager(cfg, tmp_path) as (mgr, clock):
            await mgr.warm_up(10)
            await mgr.claim("p")
            await mgr.claim("p")  # two warm
            cold = await mgr.claim("p")  # waits for a replacement
            assert not cold.warm and cold.latency == pytest.approx(1.0)
            await mgr.claim("p")  # the other replacement: warm
            with pytest.raises(ClaimTimeout):
                await mgr.claim("p", timeout=0.3)
            await mgr.drain("p")
            with pytest.raises(PoolDraining):
                await mgr.claim("p")
            snap = await mgr.snapshot("p", members=False)
            one = windowed(snap, "1m")
            assert (one["claims"], one["hits"], one["cold"], one["refusals"], one["timeouts"]) == (6, 3, 1, 1, 1)
            assert one["hit_rate"] == 0.5 and one["p99"] == pytest.approx(1.0, rel=0.02)
            assert windowed(snap, "5m")["claims"] == 6
            line = check_line(snap, *assess(snap))
            assert "5m: claims=6 hits=3 cold=1 refused=1 timeouts=1 hit_rate=50%" in line
            assert "p99=1000" in line.split("|")[0] and "timeouts_5m=1;;;0;" in line.split("|")[1]
            samples = prometheus(snap)
            gauge = "poolui_window_claims"
            assert samples[(gauge, (("outcome", "warm"), ("pool", "p"), ("window", "1m")))] == 3
            assert samples[(gauge, (("outcome", "failed"), ("pool", "p"), ("window", "1m")))] == 1
            assert samples[(gauge, (("outcome", "timed_out"), ("pool", "p"), ("window", "5m")))] == 1
            assert samples[("poolui_window_hit_ratio", (("pool", "p"), ("window", "1m")))] == 0.5
            # The totals since the start are still there under their old names.
            assert samples[("poolui_claims_total", (("outcome", "warm"), ("pool", "p"), ("reason", "")))] == 3

            await asyncio.sleep(61)
            snap = await mgr.snapshot("p", members=False)
            one, five = windowed(snap, "1m"), windowed(snap, "5m")
            assert one["claims"] == 0 and one["hit_rate"] is None and one["p50"] is None
            assert five["claims"] == 6 and five["timeouts"] == 1
            samples = prometheus(snap)
            assert samples[("poolui_window_claims", (("outcome", "warm"), ("pool", "p"), ("window", "1m")))] == 0
            assert samples[("poolui_window_hit_ratio", (("pool", "p"), ("window", "1m")))] != 0.5  # NaN: none

            await asyncio.sleep(240)
            snap = await mgr.snapshot("p", members=False)
            assert windowed(snap, "5m")["claims"] == 0
            assert "5m: claims=0 hits=0 cold=0 refused=0 timeouts=0 hit_rate=n/a p50=n/a p99=n/a" in check_line(
                snap, *assess(snap))
            assert snap.metrics["claims"]["warm"] == 3  # since the start, as before

    virtual_time.run(main())


def test_longest_wait_near_ttl_and_last_create_error(tmp_path: Path) -> None:
    cfg = config(target_ready=1, ttl="2m", min_remaining_ttl="30s", ttl_jitter=0.0)

    async def main() -> None:
        async with virtual_manager(cfg, tmp_path) as (mgr, clock):
            await mgr.warm_up(10)
            # Before the claim: its answer waits for a commit, and the refill it starts meanwhile must not
            # make a ready one (the instant provider's would be ready in that same wait).
            provider(mgr).never_ready = True
            await mgr.claim("p")
            snap = await mgr.snapshot("p", members=False)
            assert snap.longest_wait is None and snap.near_ttl == 0
            await wait_for(lambda: mgr.pool("p").snapshot().ready == 0, 5)
            waiter = asyncio.ensure_future(mgr.claim("p", timeout=60))
            await asyncio.sleep(2.5)
            snap = await mgr.snapshot("p", members=False)
            assert snap.waiting == 1 and snap.longest_wait == pytest.approx(2.5)
            await asyncio.sleep(95)  # the claimed one has less than 30 s left
            assert (await mgr.snapshot("p", members=False)).near_ttl == 1
            with pytest.raises(ClaimTimeout):
                await waiter
            m = (await mgr.snapshot("p", members=False)).metrics
            assert "not ready after" in m["last_create_error"] and m["create_failures"] >= 1
            provider(mgr).never_ready, provider(mgr).fail = False, True
            await wait_for(lambda: "told to fail" in mgr.pool("p").snapshot().metrics["last_create_error"], 10)
            m = (await mgr.snapshot("p", members=False)).metrics
            assert m["last_create_error_at"] == pytest.approx(clock.time(), abs=1)

    virtual_time.run(main())


def test_check_json_and_metrics_of_a_real_server_agree() -> None:
    """`poolui serve`: the windows of `check --json` are the snapshot's, and /metrics says the same."""
    with served({"web": pool_table("instant", target_ready=2, on_empty="fail")}, on_shutdown="terminate") as s:
        until(lambda: s.headless("check").returncode == 0, 20, "the pool to be warm")
        token = {"authorization": f"Bearer {s.token}"}
        for _ in range(2):
            assert httpx.post(f"{s.url}/pools/web/claim", json={}, headers=token).status_code == 200
        data = json.loads(s.headless("check", "--json").stdout)
        pool = data["pools"][0]
        assert pool["windows"] == pool["snapshot"]["metrics"]["windows"]
        one = pool["windows"]["1m"]
        assert one["claims"] == one["hits"] == 2 and one["refusals"] == one["timeouts"] == 0
        text = httpx.get(f"{s.url}/metrics", headers=token).text
        assert 'poolui_window_claims{outcome="warm",pool="web",window="1m"} 2.0' in text
        assert 'poolui_window_hit_ratio{pool="web",window="5m"} 1.0' in text
        assert 'poolui_longest_wait_seconds{pool="web"} 0.0' in text

        async def over_http() -> PoolSnapshot:
            async with s.client() as c:
                return await c.snapshot("web", members=False)

        snap = asyncio.run(over_http())  # what a remote console's overview reads
        assert snap.metrics["windows"]["1m"]["hits"] == 2 and snap.longest_wait is None and snap.near_ttl == 0
        assert snap.metrics["last_create_error"] == ""
