"""Claim leases on the engine's clock (virtual time: the waits take no real time and times are exact):
a renewed lease lives on, an abandoned one ends on time, none outlives the sandbox's TTL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for
from test_engine import config, virtual_manager

from poolui import virtual_time
from poolui.core.manager import PoolManager
from poolui.errors import ClaimEnded, ConfigError
from poolui.pool_file import parse_config


def claimed_ids(mgr: PoolManager) -> set[str]:
    return {m.id for m in mgr.pools["p"].members.values() if m.state.value == "claimed"}


def test_a_renewed_lease_lives_far_past_its_length(tmp_path: Path) -> None:
    async def main() -> None:
        async with virtual_manager(config(ttl="1h"), tmp_path) as (mgr, clock):
            await mgr.warm_up(5)
            claim = await mgr.claim("p", lease=10)
            for _ in range(30):  # 30 renews 5 s apart: 150 s, fifteen lease lengths
                await clock.sleep(5)
                await mgr.renew("p", claim.id)
            assert claim.id in claimed_ids(mgr)
            assert mgr.pools["p"].metrics.leases_expired == 0

    virtual_time.run(main())


def test_an_abandoned_lease_ends_on_time_and_frees_the_slot(tmp_path: Path) -> None:
    async def main() -> None:
        cfg = config(ttl="1h", max_total=3, max_ready=3, target_ready=2)
        async with virtual_manager(cfg, tmp_path) as (mgr, clock):
            await mgr.warm_up(5)
            claim = await mgr.claim("p", lease=10, claim_key="job-7")
            start = clock.monotonic()
            await wait_for(lambda: claim.id not in claimed_ids(mgr), 60)
            assert clock.monotonic() - start == pytest.approx(10, abs=0.05)  # engine time, not wall time
            events = [e for e in await mgr.recent_events("p") if e.kind == "lease_expired"]
            assert [(e.member_id, e.detail) for e in events] == [(claim.id, "job-7")]
            assert mgr.pools["p"].metrics.leases_expired == 1
            with pytest.raises(ClaimEnded, match="lease expired"):
                await mgr.renew("p", claim.id)
            await mgr.warm_up(5)  # the slot it held is free again
            assert (await mgr.snapshot("p")).ready == 2

    virtual_time.run(main())


def test_a_lease_never_outlives_the_ttl(tmp_path: Path) -> None:
    async def main() -> None:
        async with virtual_manager(config(ttl="60s", min_remaining_ttl="0s", ttl_jitter=0.0), tmp_path) \
                as (mgr, clock):
            await mgr.warm_up(5)
            claim = await mgr.claim("p", lease=3600)
            assert claim.lease_expires_at is not None and claim.lease_expires_at <= claim.expires_at
            lease = await mgr.renew("p", claim.id, 86400)
            assert lease.lease_expires_at == pytest.approx(lease.expires_at)

    virtual_time.run(main())


def test_the_pool_default_lease_applies_and_an_asked_one_wins(tmp_path: Path) -> None:
    async def main() -> None:
        async with virtual_manager(config(ttl="1h", claim_lease="20s"), tmp_path) as (mgr, clock):
            await mgr.warm_up(5)
            by_default = await mgr.claim("p")
            asked = await mgr.claim("p", lease=5)
            assert by_default.lease_expires_at == pytest.approx(clock.time() + 20, abs=0.05)
            assert asked.lease_expires_at == pytest.approx(clock.time() + 5, abs=0.05)

    virtual_time.run(main())


def test_claimed_renews_while_the_block_runs_and_releases_after(tmp_path: Path) -> None:
    async def main() -> None:
        async with virtual_manager(config(ttl="1h"), tmp_path) as (mgr, clock):
            await mgr.warm_up(5)
            async with mgr.claimed("p", lease=3) as claim:
                await clock.sleep(30)  # ten lease lengths inside the block
                assert claim.id in claimed_ids(mgr)
            assert claim.id not in claimed_ids(mgr)
            assert mgr.pools["p"].metrics.leases_expired == 0

    virtual_time.run(main())


@pytest.mark.parametrize(("key", "value", "says"), [
    ("ttl", "100000000h", "ttl"),
    ("ttl", "inf", "ttl"),
    ("claim_timeout", "inf", "claim_timeout"),
    ("claim_timeout", "2h", "claim_timeout"),
    ("maintenance_interval", "1000000000h", "maintenance_interval"),
    ("claim_lease", "0s", "claim_lease"),
    ("claim_lease", "nan", "claim_lease"),
    ("max_total", 10**17, "max_total"),
    ("target_ready", 10**17, "target_ready"),
    ("target_ready", True, "target_ready"),
    ("claim_timeout", True, "claim_timeout"),
])
def test_out_of_range_values_are_refused_naming_the_key(key: str, value: Any, says: str) -> None:
    table: dict[str, Any] = {"provider": "instant", "target_ready": 1, "max_ready": 5, "max_total": 10, key: value}
    with pytest.raises(ConfigError) as e:
        parse_config({"pools": {"p": table}}, "pools.toml")
    text = str(e.value)
    assert text.startswith("pools.toml: pool 'p': ") and says in text, text


@pytest.mark.parametrize(("table", "where", "allowed"), [
    ({"claim_timeout": float("inf")}, ": key 'claim_timeout' = inf", "from 0ms to 1h"),
    ({"ttl": float("nan")}, ": key 'ttl' = nan", "from 100ms to 168h"),
    ({"ttl": "100000000h"}, ": key 'ttl'", "from 100ms to 168h"),
    ({"maintenance_interval": "1000000000h"}, ": key 'maintenance_interval'", "to 24h"),
    ({"claim_lease": "25h"}, ": key 'claim_lease'", "from 100ms to 24h"),
    ({"max_total": 10**17}, ": key 'max_total'", "from 1 to 100000"),
    ({"max_concurrent_creates": 10**6}, ": key 'max_concurrent_creates'", "from 1 to 1000"),
    ({"ttl_jitter": float("nan")}, ": key 'ttl_jitter'", "from 0.0 to 0.5"),
    ({"readiness": {"http": "/", "timeout": "2h"}}, ".readiness: key 'timeout'", "from 1ms to 1h"),
    ({"health": {"http": "/", "interval": "inf"}}, ".health: key 'interval'", "from 1ms to 24h"),
    ({"limits": {"pids": 10**9}}, ".limits: key 'pids'", "from 1 to 4194304"),
    ({"limits": {"memory": "2000GiB"}}, ".limits: key 'memory'", "up to 1024GiB"),
    ({"provider": "docker", "docker": {"image": "x", "api_timeout": "1000000000h"}}, ".docker: key 'api_timeout'",
     "from 500ms to 1h"),
    ({"provider": "docker", "docker": {"image": "x", "stop_timeout": "2h"}}, ".docker: key 'stop_timeout'",
     "from 0ms to 1h"),
    ({"provider": "modal", "modal": {"app": "a", "command": ["x"], "watch_interval": "inf"}},
     ".modal: key 'watch_interval'", "from 50ms to 24h"),
    ({"provider": "modal", "modal": {"app": "a", "command": ["x"], "port": 70000}}, ".modal: key 'port'",
     "from 1 to 65535"),
])
def test_every_bound_is_named_in_the_error(table: dict[str, Any], where: str, allowed: str) -> None:
    """Durations, sizes and counts, the pool's own and the providers': each refusal states the range."""
    pool: dict[str, Any] = {"provider": "instant", "target_ready": 1, "max_ready": 5, "max_total": 10, **table}
    with pytest.raises(ConfigError) as e:
        parse_config({"pools": {"p": pool}}, "pools.toml")
    text = str(e.value)
    assert text.startswith(f"pools.toml: pool 'p'{where}") and text.endswith(allowed), text
