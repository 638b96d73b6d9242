"""Hostile code against the agents' resets and the spawner, on real pools (tests/hostile/redteam_agents.py
runs inside): a process that hides as well as the code can hide one (out of its session, non-dumpable, its
leader ended alone so that it shows as a zombie) does not outlive a reset of a reused Docker container or
bubblewrap sandbox; nor does a POSIX message queue, which the engine's seccomp profile lets a container's
code make (and a local sandbox's without the seccomp filter); nor do SysV IPC objects the code handed to
root with mode 0 (the local reset's ipcrm could not remove them, so the sandbox was made anew); nor an
extended attribute or a mode the code gave the work directory itself; and a spawner the code speaks for
cannot get the agent to kill the container's root processes (the TTL's `timeout`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for
from server_fixtures import HTTP_SERVER
from test_docker_pool import POOL, config, managers  # noqa: F401 - the fixture

from poolui.core.manager import PoolManager
from poolui.pool_file import parse_config
from poolui.sandbox_io import ExecResult, collect

SCRIPT = (Path(__file__).parent / "hostile" / "redteam_agents.py").read_text()
PY_IMAGE = "poolui/python:local"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the agents' two uids need the controller to be root")


async def attack(mgr: PoolManager, pool: str, sid: str, mode: str, timeout: float = 30) -> ExecResult:
    return await collect(mgr.exec(pool, sid, ["python3", "-I", "-c", SCRIPT, mode], timeout=timeout))


async def seen(mgr: PoolManager, pool: str, sid: str, mode: str) -> dict[str, Any]:
    r = await attack(mgr, pool, sid, mode)
    assert r.exit_code == 0, (r.stdout, r.stderr)
    found: dict[str, Any] = json.loads(r.stdout)
    return found


async def reused(mgr: PoolManager, pool: str, sid: str) -> str:
    """Release the claim, wait for the reset, claim the same sandbox again."""
    await mgr.release(pool, sid)
    await wait_for(lambda: len(mgr.pools[pool].handout) == 1, 60, what="the sandbox reset and ready again")
    again = await mgr.claim(pool, timeout=30)
    assert again.id == sid
    return again.id


def docker_reuse() -> Any:
    return config({"target_ready": 1, "max_ready": 1, "max_total": 1, "reuse": True, "health": {"enabled": False}},
                  image=PY_IMAGE, read_only=True, agent=True)


async def test_a_hidden_process_and_a_message_queue_do_not_outlive_a_docker_reset(managers: Any,  # noqa: F811
                                                                                   tmp_path: Path) -> None:
    mgr = await managers.start(tmp_path / "state", docker_reuse())
    await mgr.warm_up(60)
    a = await mgr.claim(POOL, timeout=30)
    planted = await seen(mgr, POOL, a.id, "plant")
    assert planted["survivor"].startswith("alive") and planted["mq"] == 0  # both made: the container allows them
    assert planted["ipc"] == [0, 0, 0]
    b = await reused(mgr, POOL, a.id)
    left = {"survivor": None, "mq": None, "ipc": [-1, -1, -1], "xattr": None, "mode": planted["mode"]}
    assert await seen(mgr, POOL, b, "look") == left
    await mgr.release(POOL, b)


async def test_a_forged_spawner_answer_kills_no_root_process_of_the_container(managers: Any,  # noqa: F811
                                                                              tmp_path: Path) -> None:
    mgr = await managers.start(tmp_path / "state", docker_reuse())
    await mgr.warm_up(60)
    sid = (await mgr.claim(POOL, timeout=30)).id

    async def through_spawner() -> bool:
        r = await collect(mgr.exec(POOL, sid, ["sh", "-c", "tr '\\0' ' ' < /proc/$PPID/cmdline"]))
        return b"marshal.loads" in r.stdout
    await wait_for(through_spawner, 30, what="an exec started by the spawner")
    forged = await seen(mgr, POOL, sid, "forge")
    assert forged["control"] > 0  # the spawner's socket is the code's to take
    victim = await collect(mgr.exec(POOL, sid, ["true"], timeout=1))  # the TTL's session, and init never ends
    assert victim.timed_out and "spawner" in victim.error, victim
    # the agent killed what carries the exec's marker, and not the TTL's `timeout` (root, in the session the
    # forged answer named): the container still ends at its TTL, and its agent answers
    after = await collect(mgr.exec(POOL, sid, ["cat", f"/proc/{forged['ttl']}/comm"]))
    assert after.stdout == b"timeout\n", after
    await mgr.release(POOL, sid)


@pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed")
async def test_a_hidden_process_and_a_message_queue_do_not_outlive_a_local_reset(tmp_path: Path) -> None:
    # without the seccomp filter, which refuses mq_open: the queues' mount is where the reset finds them
    table = {"provider": "local", "command": HTTP_SERVER, "target_ready": 1, "min_ready": 0, "max_ready": 1,
             "max_total": 1, "reuse": True, "network": "isolated", "seccomp": False, "health": {"enabled": False},
             "readiness": {"http": "/", "timeout": "15s", "interval": "20ms"}}
    async with PoolManager(parse_config({"pools": {"re": table}}, "test.toml"), state_dir=tmp_path) as mgr:
        await mgr.warm_up(30)
        a = await mgr.claim("re", timeout=30)
        planted = await seen(mgr, "re", a.id, "plant")
        assert planted["survivor"].startswith("alive") and planted["mq"] == 0 and planted["ipc"] == [0, 0, 0]
        b = await reused(mgr, "re", a.id)  # the same sandbox: its reset removed the IPC objects too
        left = {"survivor": None, "mq": None, "ipc": [-1, -1, -1], "xattr": None, "mode": planted["mode"]}
        assert await seen(mgr, "re", b, "look") == left
        await mgr.release("re", b)


async def test_a_reused_docker_container_keeps_nothing_a_claim_wrote_anywhere(managers: Any,  # noqa: F811
                                                                              tmp_path: Path) -> None:
    """tests/hostile/scribble.py, as on a local sandbox (test_hostile_reach.py): a reuse pool that says
    nothing of its root filesystem gets a read-only one, so the places a claim can write are the ones the
    reset empties, and the next claim finds nothing of it."""
    cfg = config({"target_ready": 1, "max_ready": 1, "max_total": 1, "reuse": True, "health": {"enabled": False}},
                 image=PY_IMAGE, agent=True, command=["python3", "-m", "http.server", "8080"])
    mgr = await managers.start(tmp_path / "state", cfg)
    await mgr.warm_up(60)
    a = await mgr.claim(POOL, timeout=30)
    script = (Path(__file__).parent / "hostile" / "scribble.py").read_text()

    async def scribble(sid: str, **plan: str) -> dict[str, Any]:
        r = await collect(mgr.exec(POOL, sid, ["python3", "-c", script], stdin=json.dumps(plan).encode(), timeout=60))
        assert r.exit_code == 0, r.stderr.decode()
        out: dict[str, Any] = json.loads(r.stdout)
        return out

    left = await scribble(a.id, tag="a")
    assert {"/work", "/tmp", "/dev/shm"} <= set(left["wrote"])  # it wrote wherever it could
    assert not {"/", "/etc", "/usr", "/var/tmp", "/run"} & set(left["wrote"])  # the root is read-only to it
    assert min(left["shm"], left["msg"], left["sem"]) >= 0 and left["mq_open"] == 0
    b = await reused(mgr, POOL, a.id)
    found = await scribble(b, look="a")
    assert found["server"] and found["server"] != left["server"]  # a new server: A could write the old one's memory
    del found["server"]
    assert found == {"found": [], "ipc": {"shm": 0, "msg": 0, "sem": 0}, "processes": [], "preload": False}
    await mgr.release(POOL, b)
