"""The engine with real local sandboxes: real processes, real HTTP, real SQLite, a real kill -9."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
from helpers import wait_for

from poolui.core.manager import PoolManager
from poolui.pool_file import parse_config

SERVER = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]


def pool_config(**pool: Any) -> Any:
    base: dict[str, Any] = {
        "provider": "local", "command": SERVER, "target_ready": 2, "min_ready": 1, "max_ready": 6,
        "max_total": 10, "ttl": "5m", "min_remaining_ttl": "10s",
        "readiness": {"http": "/", "timeout": "10s", "interval": "10ms"},
        "health": {"http": "/", "interval": "1h", "timeout": "2s"},
    }
    base.update(pool)
    return parse_config({"pools": {"web": base}}, "test")


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as r:
        return int(r.status)


def listener_pid(url: str) -> int:
    """The sandbox's server behind url. With network isolation the host side's listener is the sandbox's
    agent (it forwards the URL into the sandbox's namespace), started by the server's shell: its parent."""
    port = urlsplit(url).port
    for c in psutil.net_connections(kind="tcp"):
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
            p = psutil.Process(c.pid)
            return p.ppid() if any("_agent" in a for a in p.cmdline()) else int(c.pid)
    raise AssertionError(f"nothing listens on {url}")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def serving(url: str) -> bool:
    try:
        return get(url) == 200
    except OSError:
        return False


async def test_claimed_url_answers_and_claim_is_warm(tmp_path: Path) -> None:
    async with PoolManager(pool_config(), state_dir=tmp_path) as mgr:
        await mgr.warm_up(30)
        claim = await mgr.claim("web")
        assert claim.warm
        assert await asyncio.to_thread(get, claim.url) == 200
        snap = await mgr.snapshot("web")
        assert snap.metrics["claims"]["warm"] == 1
        assert snap.metrics["create_to_ready"]["count"] >= 2
        await mgr.release("web", claim.id)
        await wait_for(lambda: not serving(claim.url), 10)


async def test_a_sandbox_killed_from_outside_is_never_handed_out_and_is_replaced(tmp_path: Path) -> None:
    async with PoolManager(pool_config(), state_dir=tmp_path) as mgr:
        await mgr.warm_up(30)
        pool = mgr.pools["web"]
        victim = next(iter(pool.handout.members()))
        # Right after the kill only a probe can know; with check_health the claim never returns it.
        os.kill(listener_pid(victim.url), signal.SIGKILL)
        claim = await mgr.claim("web", check_health=True)
        assert claim.id != victim.id
        assert await asyncio.to_thread(get, claim.url) == 200
        await wait_for(lambda: victim.id not in pool.members and len(pool.handout) == 2, 20)
        # Without a probe at claim, the provider's exit report takes it out of the pool within moments.
        victim = next(iter(pool.handout.members()))
        os.kill(listener_pid(victim.url), signal.SIGKILL)
        await wait_for(lambda: victim.id not in pool.handout, 5)
        claims = [await mgr.claim("web", timeout=20) for _ in range(2)]
        assert victim.id not in {c.id for c in claims}
        [why] = [e.detail for e in await mgr.recent_events("web")
                 if e.kind == "terminating" and e.member_id == victim.id]
        assert why.startswith("exited on its own: "), why  # with how it ended, for on-call


async def test_a_sandbox_that_never_gets_ready_is_killed_after_its_timeout(tmp_path: Path) -> None:
    cfg = pool_config(command=["sleep", "300"], target_ready=1, create_retries=5,
                      readiness={"tcp": True, "timeout": "300ms", "interval": "20ms"})
    async with PoolManager(cfg, state_dir=tmp_path) as mgr:
        await wait_for(lambda: mgr.pool("web").snapshot().metrics["create_failures"] >= 1, 10)
        failed = [e for e in await mgr.recent_events("web") if e.kind == "failed"]
        assert "not ready after 0.3s" in failed[0].detail
        first = failed[0].member_id
        await wait_for(lambda: any(e.kind == "terminated" and e.member_id == first for e in mgr.bus.recent), 10)
        live = await mgr.pools["web"].provider.list_ours()
        assert first not in {sb.member_id for sb in live}


async def test_a_failing_command_degrades_the_pool_which_recovers_when_fixed(tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    script = f"test -f {flag} && exec python3 -m http.server $0 --bind 127.0.0.1; exit 3"
    cfg = pool_config(command=["sh", "-c", script, "{port}"], target_ready=1, create_retries=2,
                      local={"isolation": "none"})
    async with PoolManager(cfg, state_dir=tmp_path / "state") as mgr:
        await wait_for(lambda: mgr.pool("web").snapshot().state == "degraded", 20)
        assert "creates failed in a row" in (await mgr.snapshot("web")).reason
        flag.touch()
        await wait_for(lambda: mgr.pool("web").snapshot().state == "healthy", 60)
        assert await asyncio.to_thread(get, (await mgr.claim("web")).url) == 200


async def test_ttl_expiry_kills_the_tree(tmp_path: Path) -> None:
    cfg = pool_config(target_ready=1, ttl="2s", min_remaining_ttl="500ms", ttl_jitter=0.0)
    async with PoolManager(cfg, state_dir=tmp_path) as mgr:
        await mgr.warm_up(30)
        claim = await mgr.claim("web")
        pid = listener_pid(claim.url)
        await wait_for(lambda: gone(pid), 10)
        await wait_for(lambda: claim.id not in mgr.pools["web"].members, 10)
        assert not serving(claim.url)


async def test_resize_drain_pause_with_real_sandboxes(tmp_path: Path) -> None:
    async with PoolManager(pool_config(), state_dir=tmp_path) as mgr:
        await mgr.warm_up(30)
        pool = mgr.pools["web"]
        held = await mgr.claim("web")
        await mgr.resize("web", target=4)
        await mgr.warm_up(30)
        await mgr.resize("web", target=1)
        await wait_for(lambda: len(pool.handout) == 1 and pool.counts()["terminating"] == 0, 20)
        await mgr.pause("web")
        await mgr.claim("web")
        assert len(pool.handout) == 0 and pool.counts()["creating"] == 0
        await mgr.resume("web")
        await mgr.warm_up(30)
        await mgr.drain("web")
        await wait_for(lambda: len(pool.handout) == 0 and pool.counts()["terminating"] == 0, 20)
        assert await asyncio.to_thread(get, held.url) == 200  # claimed ones are left to finish


CHILD = textwrap.dedent("""
    import asyncio, json, sys
    from poolui.pool_file import parse_config
    from poolui.core.manager import PoolManager

    async def main():
        cfg = parse_config(json.loads(sys.argv[1]), "child")
        mgr = PoolManager(cfg, state_dir=sys.argv[2])
        await mgr.start()
        await mgr.warm_up(30)
        claim = await mgr.claim("web")
        await mgr.warm_up(30)
        print(json.dumps({"claimed": claim.id, "url": claim.url, "all": list(mgr.pools["web"].members)}),
              flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
""")


async def test_restart_after_kill_9_adopts_claimed_and_ready_and_leaves_nothing_unknown(tmp_path: Path) -> None:
    data = {"pools": {"web": {
        "provider": "local", "command": SERVER, "target_ready": 2, "min_ready": 1, "max_ready": 6,
        "max_total": 10, "ttl": "5m", "min_remaining_ttl": "10s",
        "readiness": {"http": "/", "timeout": "10s", "interval": "10ms"},
    }}}
    state = tmp_path / "state"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, json.dumps(data), str(state), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        before = json.loads(await asyncio.wait_for(child.stdout.readline(), 60))
    finally:
        child.kill()  # SIGKILL: the controller gets no chance to clean up
        await child.wait()
    assert await asyncio.to_thread(get, before["url"]) == 200  # the claimed sandbox outlived its controller

    async with PoolManager(parse_config(data, "restart"), state_dir=state) as mgr:
        pool = mgr.pools["web"]
        claimed = pool.members[before["claimed"]]
        assert claimed.state.value == "claimed" and claimed.adopted
        assert await asyncio.to_thread(get, claimed.url) == 200
        await mgr.warm_up(30)
        await wait_for(lambda: pool.counts()["terminating"] == 0, 10)
        live = {sb.member_id for sb in await pool.provider.list_ours()}
        assert live == set(pool.members)  # nothing alive that the pool does not know
        assert set(before["all"]) - {before["claimed"]} <= set(pool.members) | set(pool.recently_gone)
        assert await mgr.release("web", before["claimed"]) is True
    await wait_for(lambda: not serving(before["url"]), 10)


async def test_stop_leaves_nothing_behind(tmp_path: Path) -> None:
    async with PoolManager(pool_config(target_ready=3), state_dir=tmp_path) as mgr:
        await mgr.warm_up(30)
        claim = await mgr.claim("web")
        urls = [m.url for m in mgr.pools["web"].members.values() if m.url]  # a refill may have begun
        provider = mgr.pools["web"].provider
    assert not any(serving(u) for u in urls + [claim.url])
    assert await provider.list_ours() == []


async def test_concurrent_claims_on_real_sandboxes_are_each_handed_out_once(tmp_path: Path) -> None:
    n = 12  # all that max_total allows at once: every claim beyond the 4 warm ones waits for a create
    async with PoolManager(pool_config(target_ready=4, max_ready=8, max_total=12), state_dir=tmp_path) as mgr:
        await mgr.warm_up(30)
        claims = await asyncio.gather(*(mgr.claim("web", timeout=30) for _ in range(n)))
        assert len({c.id for c in claims}) == n
        assert len({c.url for c in claims}) == n
        for c in claims:
            await mgr.release("web", c.id)
