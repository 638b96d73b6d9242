"""The agent out of the tenant's reach, and reuse that starts clean: real bubblewrap sandboxes, hostile code
inside them (tests/hostile/reach.py, tests/hostile/scribble.py).

Code in a sandbox may not read or write the agent's memory, take or list its descriptors, or signal it:
the agent answers the controller, and an impostor could forge results and read the next claim's secrets.
No process that code can see holds a socket of any network namespace but the sandbox's own (the claim
URL's socket stays with the forwarder, outside). A reused sandbox is reset: whatever claim A leaves in
any place it can write, in SysV IPC or as a process, claim B does not see."""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import functools
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import wait_for
from server_fixtures import HTTP_SERVER

from poolui.core.manager import PoolManager
from poolui.pool_file import parse_config
from poolui.providers.local._forward import inner_pid
from poolui.sandbox_io import collect

HOSTILE = Path(__file__).parent / "hostile"
ROOT = os.geteuid() == 0
pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed")
SIOCGSKNS = 0x894C  # the network namespace of a socket
EPERM, EACCES = 1, 13


def config() -> Any:
    base = {"provider": "local", "command": HTTP_SERVER, "claim_timeout": "30s", "health": {"enabled": False},
            "readiness": {"http": "/", "timeout": "15s", "interval": "20ms"}, "limits": {"disk": "16MiB"}}
    return parse_config({"pools": {
        "iso": {**base, "target_ready": 1},
        "re": {**base, "target_ready": 1, "min_ready": 0, "max_ready": 1, "max_total": 1, "reuse": True},
        "few": {**base, "target_ready": 1, "limits": {"disk": "16MiB", "pids": 48}},
        "hp": {**base, "target_ready": 1, "health": {"http": "/", "interval": "1h", "timeout": "2s"}},
    }}, "test.toml")


@pytest.fixture
async def mgr(tmp_path: Path) -> AsyncIterator[PoolManager]:
    async with PoolManager(config(), state_dir=tmp_path / "state") as m:
        await m.warm_up(30)
        yield m


async def run(m: PoolManager, pool: str, sandbox: str, script: str, **plan: Any) -> dict[str, Any]:
    r = await collect(m.exec(pool, sandbox, ["python3", "-c", (HOSTILE / script).read_text()],
                             stdin=json.dumps(plan).encode(), timeout=60))
    assert r.exit_code == 0, r.stderr.decode()
    out: dict[str, Any] = json.loads(r.stdout)
    return out


async def test_sandbox_code_cannot_reach_the_agent(mgr: PoolManager) -> None:
    c = await mgr.claim("iso", timeout=30)
    seen = await run(mgr, "iso", c.id, "reach.py")
    assert seen["agent"] > 0
    for attempt in ("mem", "mem_read", "fd", "environ", "cwd"):
        assert seen[attempt] in (EPERM, EACCES), (attempt, seen["names"])
    assert seen["pidfd_getfd"] == EPERM, seen["names"]
    zero = "0" * 16  # the code holds no capability, not even an inheritable one left by the agent's
    assert [seen["caps"][k] for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")] == [zero] * 4, seen["caps"]
    if ROOT:  # the agent is the namespace's root, the code nobody: no signal passes
        assert seen["stop"] == EPERM and seen["kill"] == EPERM, seen["names"]
        again = await collect(mgr.exec("iso", c.id, ["echo", "still here"]))
        assert again.stdout == b"still here\n"  # the agent lived through it
    await mgr.release("iso", c.id)


def _netns_of_sockets(pid: int) -> dict[int, int]:
    """fd -> inode of the network namespace of each socket `pid` holds (pidfd_getfd, then SIOCGSKNS)."""
    libc = ctypes.CDLL(None, use_errno=True)
    out = {}
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = libc.syscall(438, pidfd, int(name), 0)
            if fd < 0:
                continue
            try:
                ns = fcntl.ioctl(fd, SIOCGSKNS)
                out[int(name)] = os.fstat(ns).st_ino
                os.close(ns)
            finally:
                os.close(fd)
    finally:
        os.close(pidfd)
    return out


@pytest.mark.skipif(not ROOT, reason="looking into another process's descriptors takes root")
async def test_no_process_in_the_sandbox_holds_a_socket_of_the_host(mgr: PoolManager) -> None:
    c = await mgr.claim("iso", timeout=30)
    # A process of the sandbox's own with a socket, alive while it is looked at below: the check can see one.
    holder = ("import os, socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\n"
              "if os.fork():\n    os._exit(0)\ntime.sleep(600)\n")
    assert (await collect(mgr.exec("iso", c.id, ["python3", "-c", holder]))).exit_code == 0
    sandbox = mgr.pools["iso"].members[c.id].sandbox
    assert sandbox is not None
    watchdog = int(sandbox.ref["watchdog_pid"])
    inner = inner_pid(_first_child(watchdog), float("inf"))
    own_net = os.stat(f"/proc/{inner}/ns/net").st_ino
    own_pid = os.stat(f"/proc/{inner}/ns/pid").st_ino
    inside = [int(p) for p in os.listdir("/proc") if p.isdigit() and _pidns(int(p)) == own_pid]
    assert len(inside) >= 3  # bubblewrap's init, the server, the agent
    holders = {pid for pid in inside if _netns_of_sockets(pid)}
    assert len(holders) >= 2  # the holder's own socket and the agent's listener were seen
    # The agent's sockets are its listener (fd 3, the one socket made outside) and the controller's
    # connections it accepted from it (a health probe may be in one as this looks): the agent's alone, out of
    # the code's reach (above). Any other process holding a socket of another namespace fails the test.
    foreign = {}
    for pid in inside:
        for fd, ns in _netns_of_sockets(pid).items():
            if ns != own_net and not _is_agent(pid):
                foreign[(pid, fd)] = _cmdline(pid)
    assert not foreign, foreign
    async with httpx.AsyncClient() as h:  # the URL still answers: through the forwarder, outside
        assert (await h.get(c.url)).status_code == 200
    await mgr.release("iso", c.id)


def _first_child(pid: int) -> int:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return int(f.read().split()[0])


def _pidns(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return 0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "(gone)"


async def test_a_reused_sandbox_keeps_nothing_of_the_claim_before(mgr: PoolManager) -> None:
    a = await mgr.claim("re", timeout=30)
    left = await run(mgr, "re", a.id, "scribble.py", tag="a")
    assert {"/work", "/tmp", "/var/tmp", "/dev/shm"} <= set(left["wrote"])  # it wrote wherever it could
    assert not {"/", "/etc", "/run", "/usr", "/dev"} & set(left["wrote"])  # the root and /dev are read-only to it
    assert left["preload"] in (EACCES, 30) and left["mq_open"] == EPERM  # EROFS; no POSIX queues at all
    assert min(left["shm"], left["msg"], left["sem"]) >= 0  # SysV IPC can be made: the reset must remove it
    assert left["server_mem"] == 0  # and the server's memory is the code's to write: the reset must replace it
    await mgr.release("re", a.id)
    await wait_for(lambda: len(mgr.pools["re"].handout) == 1, 30, what="the member reset and ready again")
    b = await mgr.claim("re", timeout=30)
    assert b.id == a.id  # the same sandbox, a new claim
    found = await run(mgr, "re", b.id, "scribble.py", look="a")
    assert found["server"] and found["server"] != left["server"]  # a new server: A could write the old one's memory
    del found["server"]
    assert found == {"found": [], "ipc": {"shm": 0, "msg": 0, "sem": 0}, "processes": [], "preload": False}
    await mgr.release("re", b.id)


async def test_every_writable_place_is_capped(mgr: PoolManager) -> None:
    c = await mgr.claim("iso", timeout=30)
    for place in ("/tmp", "/var/tmp", "/dev/shm", "/work"):
        r = await collect(mgr.exec("iso", c.id, ["sh", "-c", f"head -c 100000000 /dev/zero > {place}/big"]))
        assert r.exit_code != 0 and b"No space left" in r.stderr, (place, r.stderr)
    await mgr.release("iso", c.id)


@pytest.mark.skipif(not ROOT, reason="the agent has a uid of its own only when the controller is root")
@pytest.mark.parametrize("agent_user", ["0", "65534", "no-such-user-here"])
def test_an_agent_uid_within_the_sandboxs_reach_is_refused(agent_user: str, tmp_path: Path) -> None:
    from poolui.errors import ProviderUnavailable
    from poolui.providers.local.options import parse_options
    from poolui.providers.local.shield import decide

    pool = config().pools["iso"]
    opts = parse_options({"agent_user": agent_user}, "pools.iso.local")
    with pytest.raises(ProviderUnavailable, match="agent_user|no such user"):
        decide(pool, opts, bwrap=True, agent=True, state_dir=tmp_path)


async def test_a_sandbox_whose_agent_died_is_unhealthy_and_replaced(mgr: PoolManager) -> None:
    [m] = mgr.pools["hp"].handout.members()
    assert m.sandbox is not None
    agent = next(p for p in _tree(int(m.sandbox.ref["watchdog_pid"])) if _is_agent(p))
    os.kill(agent, 9)  # what an OOM kill, or code that could reach it, would do
    report = await mgr.maintain("hp")
    assert report.removed_unhealthy == [m.id]
    await wait_for(lambda: len(mgr.pools["hp"].handout) == 1 and mgr.pools["hp"].handout.members()[0].id != m.id,
                   30, what="a new sandbox in the dead agent's place")


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def _is_agent(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"_agent.main()" in f.read()
    except OSError:
        return False


BOMB = """import os, sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:  # takes every pid there is, and each one given back, until the end
    try:
        if os.fork() == 0:
            time.sleep(max(0, end - time.monotonic()))
            os._exit(0)
    except OSError:
        time.sleep(0.001)
"""


async def test_an_agent_out_of_threads_refuses_and_lives_on(mgr: PoolManager) -> None:
    from poolui.errors import TooManyExecs

    c = await mgr.claim("few", timeout=30)
    sandbox = mgr.pools["few"].members[c.id].sandbox
    assert sandbox is not None
    pids = _pids_files(sandbox.ref["cgroups"])
    if not pids:
        pytest.skip("no pids cgroup here to fill")
    bomb = ["sh", "-c", 'setsid python3 -c "$0" 5 >/dev/null 2>&1 &', BOMB]
    assert (await collect(mgr.exec("few", c.id, bomb))).exit_code == 0

    def full() -> bool:
        with open(pids[0]) as f:
            return int(f.read()) >= 48

    await wait_for(full, 10, interval=0.01, what="every pid of the sandbox taken")
    with pytest.raises(TooManyExecs, match="no thread left"):
        await collect(mgr.exec("few", c.id, ["true"]))

    async def answers() -> bool:
        try:
            return (await collect(mgr.exec("few", c.id, ["echo", "back"]))).stdout == b"back\n"
        except TooManyExecs:
            return False

    await wait_for(answers, 30, interval=0.2, what="the agent to answer once the pids come back")
    await mgr.release("few", c.id)


def _pids_files(cgroups: list[str]) -> list[str]:
    return [f"{d}/pids.current" for d in cgroups if os.path.exists(f"{d}/pids.current")]


@pytest.mark.skipif(not ROOT, reason="the controller kills as root only when it is root")
async def test_code_that_poses_as_a_watchdog_gets_nothing_killed(mgr: PoolManager) -> None:
    c = await mgr.claim("iso", timeout=30)
    other = await mgr.claim("re", timeout=30)  # another pool's sandbox, named by the forger below
    sandbox = mgr.pools["iso"].members[c.id].sandbox
    assert sandbox is not None
    inside = _tree(int(sandbox.ref["watchdog_pid"]))
    canary = await asyncio.create_subprocess_exec("sleep", "600")  # a host process nothing should kill
    try:
        for member in ("pwn1", other.id):
            plan = {"member": member, "roots": inside, "victims": [canary.pid]}
            r = await collect(mgr.exec("iso", c.id, ["python3", "-c", (HOSTILE / "forge.py").read_text()],
                                       stdin=json.dumps(plan).encode()))
            assert r.stdout == b"forged\n", r.stderr
            await wait_for(functools.partial(_forgery, member), 10, interval=0.01, what="the forged watchdog running")
            report = await mgr.maintain("iso")
            assert report.removed_strays == []  # not taken for a sandbox of the pool's
        assert canary.returncode is None  # alive
        again = await collect(mgr.exec("re", other.id, ["echo", "alive"]))
        assert again.stdout == b"alive\n"  # the other pool's sandbox kept its agent and its directory
    finally:
        canary.kill()
        await canary.wait()
    await mgr.release("iso", c.id)
    await mgr.release("re", other.id)


def _forgery(member: str) -> bool:
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
            if f"member={member}".encode() in cmd and b"time.sleep(3600)" in cmd:
                return True
        except OSError:
            pass
    return False
