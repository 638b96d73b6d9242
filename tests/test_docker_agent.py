"""The agent in Docker containers (poolui/providers/docker/agent.py) on the real engine: exec and files go
through it, never through the Engine's exec API (the container's ExecIDs stay empty); the container's code
cannot reach it (tests/hostile/docker_agent.py tries from inside); a container whose agent dies is reported
dead; an image without python3 keeps the Engine's way; nothing is left behind.

The image with python3 is poolui/python:local, which scripts/docker-engine.sh builds from this machine's
own python3 and busybox (no registry)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import AsyncIterator
from errno import EACCES, EPERM
from pathlib import Path
from typing import Any

import pytest
from docker_support import HTTPD, IMAGE, http_body
from helpers import Exits, wait_for

from poolui.errors import ConfigError, ProviderUnavailable, SandboxDied
from poolui.pool_file import parse_config
from poolui.providers.base import ProviderContext, Sandbox
from poolui.providers.docker import DockerProvider, make
from poolui.providers.docker.agent import DIR
from poolui.sandbox_io import ExecRequest, collect

ATTACKS = (Path(__file__).parent / "hostile" / "docker_agent.py").read_text()
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the Docker agent needs the controller to be root")


@pytest.fixture
async def made(ns: str, engine: Any, tmp_path: Path) -> AsyncIterator[list[DockerProvider]]:
    """Providers a test makes, closed at the end; then no container of the test's namespace (the image's
    python3 check's included) and no socket directory is left."""
    providers: list[DockerProvider] = []
    yield providers
    for p in providers:
        for sb in await p.list_ours():
            await p.terminate(sb)
        await p.close()
    ours = {"label": f"poolui.namespace={ns}"}  # a dead one is removed by the engine (auto-remove), soon
    await wait_for(lambda: engine.api.containers(all=True, filters=ours) == [], 20, what="no container left")
    left = [str(d) for d in (tmp_path / DIR).glob("*/*/*") if d.is_dir()]
    assert left == [], f"socket directories left behind: {left}"


def provider(made: list[DockerProvider], ns: str, state: Path, image: str, exits: Exits | None = None,
             **docker: Any) -> DockerProvider:
    table = {"provider": "docker", "target_ready": 1, "min_ready": 0, "max_ready": 2, "max_total": 4,
             "readiness": {"http": "/", "timeout": "10s", "interval": "20ms"},
             "docker": {"image": image, "command": HTTPD, **docker}}
    cfg = parse_config({"pools": {"web": table}}, "test.toml").pools["web"]
    p = make(cfg, ProviderContext(ns, state, exits or Exits()))
    made.append(p)
    return p


async def ready(p: DockerProvider, member: str) -> Sandbox:
    sb = await p.create(member, ttl=60)
    await p.wait_ready(sb, timeout=20)
    return sb


def engine_execs(engine: Any, sb: Sandbox) -> int:
    """How many execs the Engine made in the container so far (its event log, up to now)."""
    filters = {"container": sb.ref["container_id"], "event": "exec_create"}
    return sum(1 for _ in engine.events(since=sb.expires_at - 120, until=time.time(), filters=filters, decode=True))


async def run(p: DockerProvider, sb: Sandbox, argv: list[str], **kw: Any) -> Any:
    return await collect(p.exec(sb, ExecRequest(tuple(argv), **kw)))


async def test_exec_and_files_go_through_the_agent(ns: str, engine: Any, py_image: str, tmp_path: Path,
                                                   made: list[DockerProvider]) -> None:
    p = provider(made, ns, tmp_path, py_image, read_only=True)
    await p.check()
    assert p.shield["uid"] == 65534  # not the image's root: the code's user beside the agent
    sb = await ready(p, "m-1")
    assert sb.ref["agent"] and await http_body(sb.url) == (200, "poolui sandbox ok\n")
    r = await run(p, sb, ["sh", "-c", "echo out; echo err >&2; id -u; echo $GREETING; pwd; cat; exit 3"],
                  env={"GREETING": "hi"}, stdin=b"from stdin", cwd="")
    assert (r.exit_code, r.stderr) == (3, b"err\n")
    assert r.stdout == b"out\n65534\nhi\n/work\nfrom stdin"
    slow = await run(p, sb, ["sh", "-c", "setsid sleep 600 & echo $! > bg.pid; sleep 600"], timeout=0.5)
    assert slow.timed_out and slow.signal == 9
    child = (await p.get_file(sb, "bg.pid", 100)).decode().strip()
    assert (await run(p, sb, ["kill", "-0", child])).exit_code != 0  # left its session: found by its marker
    assert (await run(p, sb, ["no-such-program"])).exit_code == 127
    await p.put_file(sb, "a/b.txt", b"\x00\xff")
    assert await p.get_file(sb, "a/b.txt", 100) == b"\x00\xff"
    assert ("a/b.txt", 2) in await p.list_files(sb, "", 100)
    server = (await run(p, sb, ["sh", "-c", "ps -o user,comm | grep httpd"])).stdout
    assert server.split()[0] == b"nobody"  # the server is the code's user too
    assert engine_execs(engine, sb) == 0  # not one exec through the Engine (ttl 60: it was made after expires - 120)
    again = provider(made, ns, tmp_path, py_image, read_only=True)  # a controller restarted: adopts by label
    [adopted] = await again.list_ours()
    assert adopted.ref["agent"] and (await run(again, adopted, ["echo", "adopted"])).stdout == b"adopted\n"
    await p.terminate(sb)
    assert not (tmp_path / DIR / ns / "web" / sb.ref["name"]).exists()


async def test_the_containers_code_cannot_reach_the_agent(ns: str, engine: Any, py_image: str, tmp_path: Path,
                                                          made: list[DockerProvider]) -> None:
    p = provider(made, ns, tmp_path, py_image)
    sb = await ready(p, "m-1")
    r = await run(p, sb, ["python3", "-I", "-c", ATTACKS], timeout=20)
    assert r.exit_code == 0, r.stderr.decode()
    seen = json.loads(r.stdout)
    assert seen["agent"] > 0 and seen["uid"] == 65534
    for attempt in ("mem", "mem_read", "fd", "environ", "cwd", "connect", "list_run", "impostor"):
        assert seen[attempt] in (EPERM, EACCES), (attempt, seen["names"])
    for attempt in ("pidfd_getfd", "ptrace", "stop", "kill"):
        assert seen[attempt] == EPERM, (attempt, seen["names"])
    zero = "0" * 16
    assert [seen["caps"][k] for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")] == [zero] * 4, seen["caps"]
    assert seen["no_new_privs"] == "1"
    assert (await run(p, sb, ["echo", "still here"])).stdout == b"still here\n"  # the agent lived through it


async def test_a_container_whose_agent_dies_is_reported_dead(ns: str, engine: Any, py_image: str, tmp_path: Path,
                                                             made: list[DockerProvider]) -> None:
    exits = Exits()
    p = provider(made, ns, tmp_path, py_image, exits)
    sb = await ready(p, "m-1")
    top = engine.api.top(sb.ref["container_id"], ps_args="-o pid,comm")
    [agent] = [int(pid) for pid, comm in top["Processes"] if comm == "python3"]  # the only one in there
    os.kill(agent, signal.SIGKILL)  # from the host: the container's code cannot
    await exits.wait_for("m-1", 20)
    assert not p.alive(sb) and not (await p.health(sb)).ok
    with pytest.raises(SandboxDied):
        await run(p, sb, ["true"])
    await wait_for(lambda: not (tmp_path / DIR / ns / "web" / sb.ref["name"]).exists(), 10, what="its socket dir gone")


async def test_a_reset_through_the_agent_leaves_nothing_and_starts_the_server_again(ns: str, engine: Any, py_image: str,
                                                                     tmp_path: Path,
                                                                     made: list[DockerProvider]) -> None:
    p = provider(made, ns, tmp_path, py_image)
    sb = await ready(p, "m-1")
    await p.put_file(sb, "d/f", b"x")
    server = (await run(p, sb, ["sh", "-c", "pidof httpd"])).stdout
    shm = "python3 -c 'import ctypes; ctypes.CDLL(None).shmget(0, 4096, 0o1600)'"  # IPC_PRIVATE, IPC_CREAT
    r = await run(p, sb, ["sh", "-c", "mkdir locked && touch locked/f && chmod 0 locked; setsid sleep 600 & "
                                      f"echo s > /tmp/t; echo s > /dev/shm/s; {shm}; "
                                      "tail -n +2 /proc/sysvipc/shm | wc -l"])
    assert r.stdout == b"1\n", r.stderr
    await p.reset(sb, ("sh", "-c", "id -u > reset-by"))
    await p.wait_ready(sb, timeout=20)  # the server started again: the pool probes it
    left = await run(p, sb, ["sh", "-c", "ls -A /work /tmp /dev/shm; ps -o args | grep -c '[s]leep 600'; "
                                         "tail -n +2 /proc/sysvipc/shm | wc -l"])
    assert left.stdout == b"/dev/shm:\n\n/tmp:\n\n/work:\nreset-by\n0\n0\n"  # busybox ls sorts its arguments
    assert await p.get_file(sb, "reset-by", 100) == b"65534\n"  # the pool's reset command runs as the code
    assert await http_body(sb.url) == (200, "poolui sandbox ok\n")
    assert (await run(p, sb, ["sh", "-c", "pidof httpd"])).stdout != server  # a new server: nothing carried
    assert engine_execs(engine, sb) == 0


async def test_an_image_without_python_keeps_the_engines_way(ns: str, engine: Any, py_image: str, tmp_path: Path,
                                                             made: list[DockerProvider]) -> None:
    p = provider(made, ns, tmp_path, IMAGE)
    sb = await ready(p, "m-1")
    assert not sb.ref["agent"]
    assert (await run(p, sb, ["echo", "engine"])).stdout == b"engine\n" and engine_execs(engine, sb) > 0
    with pytest.raises(ProviderUnavailable, match="python3"):
        await provider(made, ns, tmp_path, IMAGE, agent=True).check()
    off = provider(made, ns, tmp_path, py_image, agent=False)
    sb = await ready(off, "m-2")
    assert not sb.ref["agent"] and (await run(off, sb, ["id", "-u"])).stdout == b"0\n"
    assert not (tmp_path / DIR / ns / "web").exists() or not any((tmp_path / DIR / ns / "web").iterdir())


@pytest.mark.parametrize(("docker", "match"), [({"agent": "yes"}, "agent"),
                                                ({"agent": True, "user": "root"}, "other than root")])
def test_the_agent_key_is_checked(docker: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config({"pools": {"web": {"provider": "docker", "docker": {"image": IMAGE, **docker}}}}, "x.toml")
