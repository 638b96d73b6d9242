"""Docker pools through the engine: `PoolManager` over a real Docker engine.

test_docker_provider.py drives the provider alone (both use tests/docker_support.py's engine fixtures, so these
tests skip exactly where those do); here a whole PoolManager runs on top, so what is checked is the
engine's reaction: warm-up, claims, replacement of containers killed from outside, OOM-killed or past
their TTL, adoption by labels after a restart, strays, limits, and the engine stopped mid-run. A manager's
namespace is derived from its state directory; the fixture below stops every manager, then removes (and
reports) any container still labelled with one of the test's namespaces.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from docker_support import HTTPD, IMAGE, client_or_none, http_body, run_script
from helpers import wait_for

from poolui.config import Config
from poolui.core.manager import PoolManager
from poolui.core.model import Event
from poolui.core.store import namespace_of
from poolui.pool_file import parse_config

POOL = "web"
OK_BODY = (200, "poolui sandbox ok\n")


def config(pool: dict[str, Any] | None = None, **docker: Any) -> Config:
    table = {
        "provider": "docker", "target_ready": 2, "min_ready": 0, "max_ready": 4, "max_total": 6, "ttl": "60s",
        "maintenance_interval": "1h", "create_retries": 2,
        "readiness": {"http": "/", "timeout": "10s", "interval": "50ms"},
        "health": {"http": "/", "timeout": "2s", "interval": "1s"},
        **(pool or {}),
        "docker": {"image": IMAGE, "command": HTTPD, "api_timeout": "5s", **docker},
    }
    return parse_config({"pools": {POOL: table}}, "test.toml")


class Managers:
    """Every PoolManager a test makes; all are stopped (removing their containers) at the end."""

    def __init__(self) -> None:
        self.made: list[PoolManager] = []

    async def start(self, state_dir: Path, cfg: Config | None = None) -> PoolManager:
        mgr = PoolManager(cfg or config(), state_dir=state_dir)
        self.made.append(mgr)
        await mgr.start()
        return mgr


def containers(client: Any, state_dir: Path, running: bool = False) -> list[dict[str, Any]]:
    filters: dict[str, Any] = {"label": f"poolui.namespace={namespace_of(state_dir)}"}
    if running:
        filters["status"] = "running"
    found: list[dict[str, Any]] = client.api.containers(all=not running, filters=filters)
    return found


def by_member(client: Any, state_dir: Path) -> dict[str, dict[str, Any]]:
    return {c["Labels"]["poolui.member"]: c for c in containers(client, state_dir, running=True)}


@pytest.fixture
async def managers(engine: Any, request: pytest.FixtureRequest) -> Any:
    ms = Managers()
    failed_before = request.session.testsfailed
    try:
        yield ms
    finally:
        for mgr in reversed(ms.made):
            await mgr.stop()
    client = client_or_none()  # the outage test may have replaced the engine's process
    if client is None:
        return
    left = []
    try:
        for state_dir in dict.fromkeys(m.state_dir for m in ms.made):
            for c in containers(client, state_dir):
                left.append((c["Labels"].get("poolui.member"), c["State"]))
                try:
                    client.api.remove_container(c["Id"], force=True)
                except Exception:
                    pass
    finally:
        client.close()
    if request.session.testsfailed == failed_before:  # a failed test has said enough
        assert not left, f"containers left behind (now removed): {left}"


# ---------------------------------------------------------------- helpers


def ready_ids(mgr: PoolManager) -> set[str]:
    return set(mgr.pools[POOL].handout)


def events(mgr: PoolManager, kind: str, member: str | None = None) -> list[Event]:
    return [e for e in mgr.bus.recent
            if e.pool == POOL and e.kind == kind and (member is None or e.member_id == member)]


def settled(mgr: PoolManager) -> bool:
    pool = mgr.pools[POOL]
    return len(pool.handout) == pool.cfg.target_ready and all(
        m.state.value in ("ready", "claimed") for m in pool.members.values()
    )


async def warm(mgr: PoolManager, timeout: float = 20) -> None:
    await mgr.warm_up(timeout)
    await wait_for(lambda: settled(mgr), timeout, what="ready at target with nothing in flight")


def conserved(mgr: PoolManager, engine: Any) -> None:
    """The engine's ready and claimed members are exactly the running containers of its namespace."""
    pool = mgr.pools[POOL]
    live = {m.id for m in pool.members.values() if m.state.value in ("ready", "claimed")}
    assert set(by_member(engine, mgr.state_dir)) == live
    assert all(m.holders == (1 if m.state.value == "claimed" else 0) for m in pool.members.values())


def drop_state_file(state_dir: Path) -> None:
    """Lose the SQLite state (with its WAL) but keep the directory, so the namespace stays the same."""
    names = [p.name for p in state_dir.iterdir() if p.name.startswith("poolui.sqlite3")]
    assert "poolui.sqlite3" in names, names
    for name in names:
        (state_dir / name).unlink()


# ---------------------------------------------------------------- warm-up, claims, deaths


async def test_warm_up_claim_url_answers_and_release_removes(engine: Any, managers: Managers, tmp_path: Path) -> None:
    mgr = await managers.start(tmp_path)
    await warm(mgr)
    snap = await mgr.snapshot(POOL)
    assert (snap.state, snap.provider, snap.isolation, snap.counts["ready"]) == ("healthy", "docker", "container", 2)
    found = by_member(engine, tmp_path)
    assert set(found) == ready_ids(mgr)
    image_id = engine.images.get(IMAGE).id
    assert {(c["Labels"]["poolui.pool"], c["ImageID"]) for c in found.values()} == {(POOL, image_id)}

    claim = await mgr.claim(POOL, timeout=5)
    assert claim.warm and claim.url.startswith("http://127.0.0.1:")
    assert await http_body(claim.url) == OK_BODY
    port = int(claim.url.rsplit(":", 1)[1])
    # isolated by default: nothing published, the URL's port is the forwarder's (named by a label)
    assert snap.shield is not None and snap.shield["network"] == "isolated"
    assert found[claim.id]["Ports"] == [] and found[claim.id]["Labels"]["poolui.host_port"] == str(port)
    await warm(mgr)
    conserved(mgr, engine)
    assert len(by_member(engine, tmp_path)) == 3

    assert await mgr.release(POOL, claim.id)
    await wait_for(lambda: claim.id not in by_member(engine, tmp_path), 10, what="the released container gone")
    await mgr.stop()
    assert containers(engine, tmp_path) == []


async def test_container_killed_from_outside_is_replaced(engine: Any, managers: Managers, tmp_path: Path) -> None:
    # Health probes an hour apart: the engine's exit report is what must take them out (on a busy machine a
    # probe every second could see the dead container first, with its own, vaguer reason).
    mgr = await managers.start(tmp_path, config({"health": {"http": "/", "timeout": "2s", "interval": "1h"}}))
    await warm(mgr)
    claim = await mgr.claim(POOL, timeout=5)
    await warm(mgr)
    victim = sorted(ready_ids(mgr))[0]
    found = by_member(engine, tmp_path)
    await asyncio.to_thread(engine.api.kill, found[victim]["Id"])
    await asyncio.to_thread(engine.api.kill, found[claim.id]["Id"])

    members = mgr.pools[POOL].members
    await wait_for(lambda: victim not in members and claim.id not in members, 15, what="both removed")
    await warm(mgr)
    assert [e.detail for e in events(mgr, "terminating", victim)] == ["exited on its own: exited with code 137"]
    assert [e.detail for e in events(mgr, "terminating", claim.id)] == [
        "exited while claimed: exited with code 137"]
    assert (await mgr.snapshot(POOL)).state == "healthy" and mgr.pools[POOL].failures == 0
    conserved(mgr, engine)
    assert await mgr.release(POOL, claim.id) is False  # already gone: a friendly no-op


async def test_ttl_expiry_ends_members_and_replaces_them(engine: Any, managers: Managers, tmp_path: Path) -> None:
    mgr = await managers.start(tmp_path, config({"ttl": "2s", "ttl_jitter": 0.0, "target_ready": 1}))
    await warm(mgr)
    claim = await mgr.claim(POOL, timeout=5)
    await warm(mgr)
    first = {claim.id} | ready_ids(mgr)
    await wait_for(lambda: not first & set(mgr.pools[POOL].members), 8, what="both ended at their TTL")
    await warm(mgr)
    assert not first & set(by_member(engine, tmp_path))
    # why, without how it ended (an exit code the provider adds after a colon)
    details = {e.member_id: e.detail.split(":")[0] for e in events(mgr, "terminating") if e.member_id in first}
    assert details[claim.id] in ("hard TTL reached while claimed", "exited while claimed"), details
    assert set(details.values()) - {details[claim.id]} <= {
        "less than min_remaining_ttl left", "exited on its own", "its sandbox has exited"}, details


async def test_ttl_is_enforced_inside_the_container_without_the_controller(
    engine: Any, managers: Managers, tmp_path: Path
) -> None:
    first = await managers.start(tmp_path, config({"ttl": "2s", "ttl_jitter": 0.0, "target_ready": 1}))
    await warm(first)
    claim = await first.claim(POOL, timeout=5)
    await warm(first)
    left = {m.id for m in (await first.snapshot(POOL)).members}
    await first.stop(keep=True)
    assert set(by_member(engine, tmp_path)) == left and claim.id in left

    await wait_for(lambda: containers(engine, tmp_path) == [], 8, what="the containers' own deadline")
    second = await managers.start(tmp_path)
    assert {e.member_id for e in events(second, "lost")} == left
    await warm(second)
    assert not left & set(second.pools[POOL].members)
    conserved(second, engine)


# ---------------------------------------------------------------- restarts and strays


async def test_restart_adopts_claimed_and_ready_containers_by_label(
    engine: Any, managers: Managers, tmp_path: Path
) -> None:
    first = await managers.start(tmp_path)
    await warm(first)
    claim = await first.claim(POOL, timeout=5, claim_key="job-1")
    await warm(first)
    left = {m.id for m in (await first.snapshot(POOL)).members}
    ids = {m: c["Id"] for m, c in by_member(engine, tmp_path).items()}
    await first.stop(keep=True)
    assert set(by_member(engine, tmp_path)) == left

    second = await managers.start(tmp_path)
    snap = await second.snapshot(POOL)
    assert {m.id: (m.state, m.adopted, m.claim_key) for m in snap.members} == {
        **{m: ("ready", True, None) for m in left - {claim.id}},
        claim.id: ("claimed", True, "job-1"),
    }
    assert snap.state == "healthy"
    restarted = [e.detail for e in await second.recent_events(POOL) if e.kind == "restarted"]
    assert restarted == ["adopted 3, killed 0 left over"]
    again = await second.claim(POOL, timeout=5, claim_key="job-1")
    assert (again.id, again.url) == (claim.id, claim.url)
    assert await http_body(claim.url) == OK_BODY

    got = await second.claim(POOL, timeout=5)
    assert got.id in left - {claim.id} and await http_body(got.url) == OK_BODY
    await warm(second)
    now = by_member(engine, tmp_path)
    assert {m: now[m]["Id"] for m in left} == ids, "the very same containers, not new ones"
    assert len(now) == 4  # only the claim's replacement is new
    conserved(second, engine)
    assert await second.release(POOL, claim.id)
    await wait_for(lambda: claim.id not in by_member(engine, tmp_path), 10, what="the adopted claim removed")


async def test_strays_are_removed_and_other_namespaces_untouched(
    engine: Any, managers: Managers, tmp_path: Path
) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    first = await managers.start(here)
    other = await managers.start(elsewhere, config({"target_ready": 1}))
    await asyncio.gather(warm(first), warm(other))
    await first.claim(POOL, timeout=5)
    await warm(first)
    ours = {m.id for m in (await first.snapshot(POOL)).members}
    theirs = set(by_member(engine, elsewhere))
    await first.stop(keep=True)
    assert set(by_member(engine, here)) == ours and len(ours) == 3
    drop_state_file(here)
    # And one the store never knew even before it was lost: a controller died between create and record.
    stray = await asyncio.to_thread(
        engine.api.create_container, IMAGE,
        labels={"poolui.namespace": namespace_of(here), "poolui.pool": POOL, "poolui.member": "pu-stray"},
        host_config=engine.api.create_host_config(auto_remove=True),
    )
    await asyncio.to_thread(engine.api.start, stray["Id"])
    assert set(by_member(engine, here)) == ours | {"pu-stray"}

    second = await managers.start(here)
    restarted = [e.detail for e in await second.recent_events(POOL) if e.kind == "restarted"]
    assert restarted == ["adopted 0, killed 4 left over"]
    assert {e.member_id for e in events(second, "terminated")} >= ours | {"pu-stray"}
    await warm(second)
    assert not (ours | {"pu-stray"}) & set(by_member(engine, here))
    conserved(second, engine)
    assert set(by_member(engine, elsewhere)) == theirs == ready_ids(other)
    assert (await other.snapshot(POOL)).state == "healthy" and not events(other, "terminating")


# ---------------------------------------------------------------- limits


async def test_limits_are_applied_and_an_oom_killed_container_is_replaced(
    engine: Any, managers: Managers, tmp_path: Path
) -> None:
    # The server comes up, then the main process waits for /work/go and turns into a 96 MiB allocation
    # under a 32 MiB limit: the kernel kills it, the container ends, the engine replaces it.
    hog = ("httpd -p {port} -h /www && while [ ! -e /work/go ]; do sleep 0.05; done; "
           "exec dd if=/dev/zero of=/dev/null bs=96M count=1")
    cfg = config({"target_ready": 1, "limits": {"memory": "32MiB", "pids": 24}, "read_only": True},
                 command=["sh", "-c", hog], cpus=0.5, tmpfs_size="8MiB")
    mgr = await managers.start(tmp_path, cfg)
    await warm(mgr)
    claim = await mgr.claim(POOL, timeout=5)
    assert await http_body(claim.url) == OK_BODY
    cid = by_member(engine, tmp_path)[claim.id]["Id"]
    host = engine.api.inspect_container(cid)["HostConfig"]
    assert host["Memory"] == 32 * 1024**2 and host["MemorySwap"] == 32 * 1024**2
    assert host["PidsLimit"] == 24 and host["NanoCpus"] == 500_000_000
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"] and "size=8388608" in host["Tmpfs"]["/work"]

    since = time.time() - 1
    ex = await asyncio.to_thread(engine.api.exec_create, cid, ["touch", "/work/go"])
    await asyncio.to_thread(engine.api.exec_start, ex["Id"])
    await wait_for(lambda: claim.id not in mgr.pools[POOL].members, 15, what="the OOM-killed claim removed")
    [detail] = [e.detail for e in events(mgr, "terminating", claim.id)]
    assert detail.startswith("exited while claimed: exited with code") and "(OOM-killed)" in detail, detail

    def oom_events() -> list[Any]:
        filters = {"container": cid, "type": "container", "event": "oom"}
        return list(engine.events(since=since, until=time.time(), filters=filters, decode=True))

    assert await asyncio.to_thread(oom_events), "the kernel's OOM killer, not something else, ended it"
    await warm(mgr)
    assert (await mgr.snapshot(POOL)).state == "healthy"
    conserved(mgr, engine)


# ---------------------------------------------------------------- engine outage


async def test_engine_stopped_mid_run_degrades_then_recovers(
    engine: Any, stoppable_engine: int, managers: Managers, tmp_path: Path
) -> None:
    import psutil

    mgr = await managers.start(tmp_path, config({"target_ready": 1}))
    await warm(mgr)
    os.kill(stoppable_engine, signal.SIGTERM)
    try:
        await asyncio.to_thread(psutil.Process(stoppable_engine).wait, 60)
        snap = await wait_for(lambda: (s := mgr.pool(POOL).snapshot()).state == "degraded" and s, 20, what="degraded")
        assert "creates failed in a row; last: create failed: pool 'web': no Docker engine answers at" in snap.reason
        assert "docker-engine.sh" in snap.reason, snap.reason
    finally:
        if client_or_none() is None:
            r = await asyncio.to_thread(run_script, "start")
            assert r.returncode == 0, f"could not restart dockerd:\n{r.stdout}{r.stderr}"
    await wait_for(lambda: mgr.pool(POOL).snapshot().state == "healthy", 30, what="healthy after the engine came back")
    assert events(mgr, "recovered") and mgr.pools[POOL].failures == 0
    claim = await mgr.claim(POOL, timeout=5)
    assert await http_body(claim.url) == OK_BODY
    client = client_or_none()  # a fresh client: the engine's process is a new one
    assert client is not None
    try:
        conserved(mgr, client)
    finally:
        client.close()
