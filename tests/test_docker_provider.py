"""The Docker provider against a real engine, through the Provider protocol only.

The engine and the image come from scripts/docker-engine.sh (run here when no engine answers). These tests
skip only where no engine can run at all (no SDK, or not root and none reachable). Every container a test
makes carries that test's own namespace label and is removed by the `ns` fixture, even on failure.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from docker_support import HTTPD, IMAGE, http_body, run_script
from helpers import Exits

from poolui.errors import ConfigError, ProviderError, ProviderUnavailable, SandboxDied
from poolui.pool_file import load_config, parse_config
from poolui.providers.base import ProviderContext
from poolui.providers.docker import DockerOptions, DockerProvider, make, parse_options

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- config (no engine needed)


def test_shipped_docker_toml_loads() -> None:
    cfg = load_config(ROOT / "config" / "docker.toml")
    pool = cfg.pools["docker-web"]
    assert pool.provider == "docker"
    assert isinstance(pool.options, DockerOptions)
    assert pool.options.image == IMAGE and pool.options.read_only


@pytest.mark.parametrize(
    ("raw", "key", "allowed"),
    [
        ({}, "image", "an image name"),
        ({"image": 3}, "image", "an image name"),
        ({"image": IMAGE, "port": 0}, "port", "from 1 to 65535"),
        ({"image": IMAGE, "memory": "lots"}, "memory", "256MiB"),
        ({"image": IMAGE, "memory": "1MiB"}, "memory", "from 6MiB"),
        ({"image": IMAGE, "cpus": 0}, "cpus", "0.01 to 1024"),
        ({"image": IMAGE, "network": "my net"}, "network", '"bridge", "host", "none"'),
        ({"image": IMAGE, "env": {"A B": "x"}}, "env", 'NAME = "value"'),
        ({"image": IMAGE, "env": {"A": 1}}, "env", 'NAME = "value"'),
        ({"image": IMAGE, "labels": {"poolui.member": "x"}}, "labels", "reserved"),
        ({"image": IMAGE, "ttl_command": ["timeout", "5"]}, "ttl_command", "{ttl}"),
        ({"image": IMAGE, "command": []}, "command", "argv"),
        ({"image": IMAGE, "workdir": "work"}, "workdir", "absolute path"),
        ({"image": IMAGE, "read_only": "yes"}, "read_only", "true or false"),
        ({"image": IMAGE, "stop_timeout": "soon"}, "stop_timeout", "duration"),
        ({"image": IMAGE, "host": "/var/run/docker.sock"}, "host", "unix://"),
    ],
)
def test_bad_options_name_where_key_value_and_allowed(raw: dict[str, Any], key: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_options(raw, "f.toml: pool 'p'.docker")
    msg = str(e.value)
    assert msg.startswith("f.toml: pool 'p'.docker: key ") and f"'{key}'" in msg and allowed in msg


def test_unknown_key_lists_allowed_keys() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'imgae' = .*; allowed keys: image, command"):
        parse_options({"image": IMAGE, "imgae": "x"}, "w")


def test_pool_file_errors_reach_the_docker_table() -> None:
    data = {"pools": {"web": {"provider": "docker", "docker": {"image": IMAGE, "pids": -1}}}}
    with pytest.raises(ConfigError, match=r"pool 'web'.docker: key 'pids' = -1 .*from 1 to"):
        parse_config(data, "x.toml")


@pytest.mark.parametrize(
    ("docker", "extra", "match"),
    [
        ({"network": "none"}, {}, "exec readiness"),
        ({"host_port": 18080}, {"max_total": 2, "max_ready": 2}, "fixed host port fits one container"),
    ],
)
def test_impossible_combinations_fail_in_make(docker: dict[str, Any], extra: dict[str, Any], match: str) -> None:
    data = {"pools": {"web": {"provider": "docker", "target_ready": 1, "min_ready": 1, **extra,
                              "docker": {"image": IMAGE, **docker}}}}
    pool = parse_config(data, "x.toml").pools["web"]
    with pytest.raises(ConfigError, match=match):
        make(pool, ProviderContext("t", Path("/tmp")))


def test_pool_limits_and_docker_limits_combine() -> None:
    data = {"pools": {"web": {"provider": "docker", "limits": {"memory": "64MiB", "pids": 100}, "read_only": True,
                              "docker": {"image": IMAGE, "memory": "128MiB", "pids": 20}}}}
    p = make(parse_config(data, "x.toml").pools["web"], ProviderContext("t", Path("/tmp")))
    assert (p.memory, p.pids, p.read_only) == (64 * 1024**2, 20, True)


# ---------------------------------------------------------------- the engine


def provider(ns: str, pool: str = "web", exits: Exits | None = None, pool_keys: dict[str, Any] | None = None,
             **docker: Any) -> DockerProvider:
    table = {"provider": "docker", "target_ready": 1, "min_ready": 0, "max_ready": 2, "max_total": 4,
             **(pool_keys or {}), "docker": {"image": IMAGE, "command": HTTPD, **docker}}
    cfg = parse_config({"pools": {pool: table}}, "test.toml").pools[pool]
    return make(cfg, ProviderContext(ns, Path("/tmp"), exits or Exits()))


async def test_create_ready_and_the_claim_url_answers(ns: str, engine: Any) -> None:
    p = provider(ns, read_only=True, user="65534:65534")
    try:
        await p.check()
        before = time.time()
        sb = await p.create("m-1", ttl=60)
        await p.wait_ready(sb, timeout=10)
        assert sb.url.startswith("http://127.0.0.1:") and sb.member_id == "m-1"
        assert await http_body(sb.url) == (200, "poolui sandbox ok\n")
        assert before + 59 <= sb.expires_at <= time.time() + 61
        assert set(sb.ref) >= {"container_id", "name", "host_port", "revision"}
        labels = engine.api.inspect_container(sb.ref["container_id"])["Config"]["Labels"]
        assert labels["poolui.namespace"] == ns and labels["poolui.pool"] == "web"
        assert labels["poolui.member"] == "m-1"
        assert (await p.health(sb)).ok and p.alive(sb)
        await p.terminate(sb)
        assert not p.alive(sb) and not (await p.health(sb)).ok
        await p.terminate(sb)  # idempotent
        assert await p.list_ours() == []
    finally:
        await p.close()


async def test_container_killed_from_outside_is_seen_dead(ns: str, engine: Any) -> None:
    exits = Exits()
    p = provider(ns, exits=exits)
    try:
        sb = await p.create("m-1", ttl=60)
        await p.wait_ready(sb, timeout=10)
        await asyncio.to_thread(engine.api.kill, sb.ref["container_id"])
        await exits.wait_for("m-1")
        assert not p.alive(sb)
        h = await p.health(sb)
        assert not h.ok and "137" in h.detail
    finally:
        await p.close()


async def test_command_that_exits_at_once_is_a_clear_sandbox_died(ns: str) -> None:
    p = provider(ns, command=["sh", "-c", "echo bad config >&2; exit 3"])
    try:
        sb = await p.create("m-1", ttl=60)
        # SandboxDied, not a ReadinessTimeout after the 300 s: the death ends the wait
        with pytest.raises(SandboxDied, match="exited with code 3"):
            await p.wait_ready(sb, timeout=300)
    finally:
        await p.close()


async def test_a_create_cancelled_midway_leaves_no_container(ns: str, engine: Any) -> None:
    p = provider(ns)
    since = time.time() - 1
    try:
        task = asyncio.create_task(p.create("m-1", ttl=60))
        await asyncio.sleep(0)  # one loop turn (not time): the create is in its thread; cancel the waiter
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        def destroyed() -> bool:  # the engine's event log, bounded by `until`
            filters = {"label": f"poolui.namespace={ns}", "type": "container", "event": "destroy"}
            return any(True for _ in engine.events(since=since, until=time.time() + 20, filters=filters, decode=True))

        assert await asyncio.to_thread(destroyed)
        assert engine.api.containers(all=True, filters={"label": f"poolui.namespace={ns}"}) == []
    finally:
        await p.close()


async def test_ttl_kills_the_container_without_the_controller(ns: str, engine: Any) -> None:
    import docker.errors

    p = provider(ns)
    since = time.time() - 1
    sb = await p.create("m-1", ttl=2)
    await p.wait_ready(sb, timeout=10)
    await p.close()  # the controller is gone: only the container's own deadline is left
    cid = sb.ref["container_id"]
    try:
        # the engine's own wait: returns when the container is gone (auto-remove)
        await asyncio.to_thread(engine.api.wait, cid, timeout=15, condition="removed")
    except docker.errors.NotFound:
        pass  # removed before the wait was registered
    assert engine.api.containers(all=True, filters={"id": cid}) == []

    # The engine's own record: killed by the TTL command (SIGKILL, 137), and not before the TTL.
    def life() -> dict[str, Any]:
        evs = engine.events(since=since, until=time.time() + 1, decode=True,
                            filters={"container": cid, "event": ["start", "die"]})
        return {ev["Action"]: ev for ev in evs}

    events = await asyncio.to_thread(life)
    assert events["die"]["Actor"]["Attributes"]["exitCode"] == "137"
    assert events["die"]["timeNano"] - events["start"]["timeNano"] >= 2 * 10**9


async def test_list_ours_finds_only_this_namespace_and_pool_and_serves_adoption(ns: str, engine: Any) -> None:
    other_ns = ns + "-b"
    mine, other_pool, other_space = provider(ns), provider(ns, pool="api"), provider(other_ns)
    adopter = provider(ns)
    try:
        sb = await mine.create("m-1", ttl=60)
        await other_pool.create("m-2", ttl=60)
        await other_space.create("m-3", ttl=60)
        await mine.wait_ready(sb, timeout=10)
        assert [s.member_id for s in await mine.list_ours()] == ["m-1"]
        assert [s.member_id for s in await other_pool.list_ours()] == ["m-2"]
        assert [s.member_id for s in await other_space.list_ours()] == ["m-3"]

        # a new controller (same namespace and pool) adopts what the old one left, URL and expiry included
        await mine.close()
        (found,) = await adopter.list_ours()
        assert (found.member_id, found.url, found.ref) == (sb.member_id, sb.url, sb.ref)
        assert abs(found.expires_at - sb.expires_at) < 0.01
        assert (await adopter.health(found)).ok
        assert await http_body(found.url) == (200, "poolui sandbox ok\n")

        # a stray that was created but never started (a controller died in between) is removed on sight
        stray = engine.api.create_container(IMAGE, labels={"poolui.namespace": ns, "poolui.pool": "web",
                                                           "poolui.member": "m-9"})["Id"]
        assert [s.member_id for s in await adopter.list_ours()] == ["m-1"]
        assert engine.api.containers(all=True, filters={"id": stray}) == []

        await adopter.terminate(found)  # stray removal
        assert await adopter.list_ours() == []
        assert [s.member_id for s in await other_pool.list_ours()] == ["m-2"]
    finally:
        for p in (mine, other_pool, other_space, adopter):
            await p.close()
        # the ns fixture only sweeps its own namespace
        for c in engine.api.containers(all=True, filters={"label": f"poolui.namespace={other_ns}"}):
            engine.api.remove_container(c["Id"], force=True)


async def test_limits_are_applied_and_a_memory_hog_is_oom_killed(ns: str, engine: Any) -> None:
    hog = ["dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1"]
    p = provider(ns, pool_keys={"limits": {"memory": "32MiB", "pids": 24}, "read_only": True,
                                "health": {"exec": hog, "timeout": "10s"}},
                 cpus=0.5, tmpfs_size="8MiB")
    try:
        sb = await p.create("m-1", ttl=60)
        await p.wait_ready(sb, timeout=10)
        host = engine.api.inspect_container(sb.ref["container_id"])["HostConfig"]
        assert host["Memory"] == 32 * 1024**2 and host["MemorySwap"] == 32 * 1024**2
        assert host["PidsLimit"] == 24 and host["NanoCpus"] == 500_000_000
        assert host["ReadonlyRootfs"] and host["Init"] and host["AutoRemove"]
        assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
        assert "size=8388608" in host["Tmpfs"]["/work"]

        h = await p.health(sb)  # the probe allocates 96 MiB under a 32 MiB limit
        assert not h.ok and "exit 137" in h.detail, h.detail
        # only the hog died; the server lives on, and the root filesystem is read-only but /work is not
        assert p.alive(sb) and (await http_body(sb.url))[0] == 200
        assert (await p._exec(sb, ["touch", "/work/ok"], 5)).ok
        assert not (await p._exec(sb, ["touch", "/nope"], 5)).ok
    finally:
        await p.close()


async def test_a_reuse_pools_root_is_read_only_unless_its_file_says_otherwise(ns: str, engine: Any) -> None:
    """A reset empties the container's tmpfs places: a writable root would carry what a claim wrote there to
    the next claim, so a reuse pool's root is read-only by default; the file may still say otherwise."""
    reuse = {"reuse": True, "max_uses": 5}
    kinds = {"reuse": provider(ns, pool="reuse", pool_keys=reuse),
             "opted-out": provider(ns, pool="writable", pool_keys=reuse, read_only=False),
             "single-use": provider(ns, pool="single")}
    try:
        roots = {}
        for name, p in kinds.items():
            sb = await p.create(f"m-{name}", ttl=60)
            await p.wait_ready(sb, timeout=10)
            roots[name] = engine.api.inspect_container(sb.ref["container_id"])["HostConfig"]["ReadonlyRootfs"]
            wrote = await p._exec(sb, ["sh", "-c", "echo implant > /etc/implant"], 5)
            assert wrote.ok is (not roots[name]), (name, wrote)
            assert p.shield["disk"] == (p.opts.tmpfs_size if roots[name] else None)
        assert roots == {"reuse": True, "opted-out": False, "single-use": False}
    finally:
        for p in kinds.values():
            await p.close()


async def test_host_network_and_tcp_readiness_through_the_proxy(ns: str) -> None:
    host = provider(ns, pool="host", network="host")
    # the server comes up 1s late: docker-proxy accepts at once, the TCP probe must not be fooled by it
    late = provider(ns, pool="late", pool_keys={"readiness": {"tcp": True, "timeout": "10s"}},
                    command=["sh", "-c", "sleep 1; exec httpd -f -p {port} -h /www"])
    try:
        sb = await host.create("m-1", ttl=60)
        await host.wait_ready(sb, timeout=10)
        assert sb.url == f"http://127.0.0.1:{sb.ref['host_port']}"
        assert await http_body(sb.url) == (200, "poolui sandbox ok\n")
        assert host.isolation == "container (host network)"

        sb2 = await late.create("m-2", ttl=60)
        await late.wait_ready(sb2, timeout=10)  # the server starts a second late: answering proves it waited
        assert (await http_body(sb2.url))[0] == 200
    finally:
        await host.close()
        await late.close()


async def test_port_conflict_is_a_clear_error_and_leaves_nothing(ns: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = provider(ns, pool_keys={"max_total": 1, "max_ready": 1}, host_port=port)
        try:
            with pytest.raises(ProviderError, match="port conflict") as e:
                await p.create("m-1", ttl=60)
            assert e.value.reason == "port_conflict"
            assert await p.list_ours() == []
        finally:
            await p.close()


async def test_missing_image_and_missing_engine_say_what_to_do(ns: str) -> None:
    p = provider(ns, image="poolui/not-built:here")
    nowhere = provider(ns, host="unix:///tmp/poolui-no-such-docker.sock")
    try:
        with pytest.raises(ProviderUnavailable, match=r"image 'poolui/not-built:here' not found.*docker pull"):
            await p.check()
        with pytest.raises(ProviderError, match="docker-engine.sh") as e:
            await p.create("m-1", ttl=60)
        assert e.value.reason == "image_missing"
        with pytest.raises(ProviderUnavailable, match=r"/tmp/poolui-no-such-docker.sock.*docker-engine.sh"):
            await nowhere.check()
    finally:
        await p.close()
        await nowhere.close()


# ---------------------------------------------------------------- engine outage


async def test_engine_stopped_mid_run_fails_fast_and_recovers(ns: str, stoppable_engine: int) -> None:
    import psutil

    exits = Exits()
    p = provider(ns, exits=exits)
    try:
        before = await p.create("m-1", ttl=120)
        await p.wait_ready(before, timeout=10)

        os.kill(stoppable_engine, signal.SIGTERM)
        await asyncio.to_thread(psutil.Process(stoppable_engine).wait, 60)

        # Each call fails with the reason instead of hanging on the dead socket; the deadline only bounds
        # how long a hang would take to show.
        async with asyncio.timeout(30):
            with pytest.raises(ProviderError) as e:
                await p.create("m-2", ttl=60)
            assert e.value.reason == "engine_unreachable" and "docker-engine.sh" in e.value.message
            with pytest.raises(ProviderError):
                await p.list_ours()
            assert not (await p.health(before)).ok  # never raises
            with pytest.raises(ProviderUnavailable):
                await p.check()

        r = await asyncio.to_thread(run_script, "start")
        assert r.returncode == 0, r.stdout + r.stderr

        # the sandbox died with the engine: reported once the event stream is back
        await exits.wait_for("m-1", timeout=30)
        assert not p.alive(before)
        after = await p.create("m-2", ttl=60)
        await p.wait_ready(after, timeout=15)
        assert await http_body(after.url) == (200, "poolui sandbox ok\n")
        assert [s.member_id for s in await p.list_ours()] == ["m-2"]
    finally:
        await p.close()
