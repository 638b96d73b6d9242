"""The exec spawner (poolui/providers/local/_spawner.py) in real bubblewrap sandboxes: after a claim's
second exec, commands start from a small process that already is the sandbox's uid, with no capability;
the sandbox's code can kill or stop it, or write in its place, and lose only the exec it did that in; the
agent reads the spawner's answers when it needs them, so commands that close their output or outlast the
answer wait still end as they did; a reset replaces it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import wait_for
from server_fixtures import HTTP_SERVER

from poolui.core.manager import PoolManager
from poolui.pool_file import parse_config
from poolui.sandbox_io import ExecResult, collect

pytestmark = [pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed"),
              pytest.mark.skipif(os.geteuid() != 0, reason="the spawner serves a root controller's two-uid sandbox")]
PARENT = 'echo "$PPID $(tr "\\0" " " < /proc/$PPID/cmdline)"'  # who started this command
SPAWNER = "marshal.loads"  # in the spawner's command line, in no other


@pytest.fixture
async def mgr(tmp_path: Path) -> AsyncIterator[PoolManager]:
    """A single-use pool and a reuse pool of one bubblewrap sandbox each, `python3 -m http.server` inside."""
    one = {"provider": "local", "command": HTTP_SERVER, "target_ready": 1, "health": {"enabled": False},
           "readiness": {"http": "/", "timeout": "15s", "interval": "20ms"}}
    reuse = {**one, "min_ready": 0, "max_ready": 1, "max_total": 1, "reuse": True}
    async with PoolManager(parse_config({"pools": {"one": one, "re": reuse}}, "test.toml"), state_dir=tmp_path) as m:
        await m.warm_up(30)
        yield m


async def sh(m: PoolManager, pool: str, sid: str, script: str, stdin: bytes = b"") -> ExecResult:
    return await collect(m.exec(pool, sid, ["sh", "-c", script], stdin=stdin, timeout=30))


async def spawner_pid(m: PoolManager, pool: str, sid: str) -> int:
    """Run commands until one is started by the spawner (it starts after two, and takes a moment); its pid."""
    async def parent() -> int:
        r = await sh(m, pool, sid, PARENT)
        pid, _, cmdline = r.stdout.decode().partition(" ")
        return int(pid) if SPAWNER in cmdline else 0
    pid: int = await wait_for(parent, 30, what="a command started by the spawner")
    return pid


async def test_commands_start_from_a_spawner_with_no_capability(mgr: PoolManager) -> None:
    c = await mgr.claim("one", timeout=30)
    first = await sh(mgr, "one", c.id, PARENT)
    assert SPAWNER not in first.stdout.decode()  # the first exec: the agent itself (a one-shot run pays nothing)
    pid = await spawner_pid(mgr, "one", c.id)
    status = (await sh(mgr, "one", c.id, f"grep -E '^(Uid|Gid|Cap(Inh|Prm|Eff|Amb)):' /proc/{pid}/status")).stdout
    fields = dict(line.split(":", 1) for line in status.decode().splitlines())
    assert fields["Uid"].split() == ["65534"] * 4 and fields["Gid"].split() == ["65534"] * 4
    assert {fields[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")} == {"0000000000000000"}
    # what an exec promises holds through it: stdin, both streams apart, the exit code, a missing program
    r = await sh(mgr, "one", c.id, 'read x; echo "out $x"; echo err >&2; exit 3', stdin=b"in\n")
    assert (r.exit_code, r.stdout, r.stderr) == (3, b"out in\n", b"err\n")
    r = await collect(mgr.exec("one", c.id, ["no-such-program"]))
    assert r.exit_code == 127 and "no-such-program" in r.error
    # as Popen starts it: signals at their defaults (the interpreter ignores SIGPIPE), only its three pipes
    r = await collect(mgr.exec("one", c.id, ["grep", "SigIgn", "/proc/self/status"]))
    ignored = int(r.stdout.split()[1], 16)
    assert ignored & (1 << (13 - 1) | 1 << (25 - 1)) == 0  # SIGPIPE, SIGXFSZ: a command dies of them, as it would
    r = await sh(mgr, "one", c.id, "ls /proc/$$/fd")
    assert sorted(r.stdout.split()) == [b"0", b"1", b"2"]
    # a request too large for one control message (a 120 KB env) goes on the command's own socket
    big = {f"BIG{i}": "x" * 30_000 for i in range(4)}
    r = await collect(mgr.exec("one", c.id, ["sh", "-c", 'echo "${#BIG0}${#BIG3} $PPID"'], env=big, timeout=30))
    assert r.exit_code == 0 and r.stdout.decode().split() == ["3000030000", str(pid)], r
    assert (await sh(mgr, "one", c.id, PARENT)).stdout.decode().startswith(f"{pid} ")  # still the same one
    await mgr.release("one", c.id)


async def test_code_that_kills_or_stops_the_spawner_loses_only_that_exec(mgr: PoolManager) -> None:
    c = await mgr.claim("one", timeout=30)
    old = await spawner_pid(mgr, "one", c.id)
    killed = await sh(mgr, "one", c.id, "kill -9 $PPID")
    assert killed.exit_code is None and "spawner" in killed.error  # its own status went with the spawner
    after = await sh(mgr, "one", c.id, "echo fine")
    assert (after.exit_code, after.stdout) == (0, b"fine\n")  # the agent runs it itself meanwhile
    stopper = await spawner_pid(mgr, "one", c.id)
    assert stopper != old  # a new spawner
    stopped = await sh(mgr, "one", c.id, "kill -STOP $PPID")
    assert stopped.exit_code is None and "spawner" in stopped.error  # said within the spawner's answer wait
    after = await sh(mgr, "one", c.id, "echo fine")
    assert (after.exit_code, after.stdout) == (0, b"fine\n")
    gone = await sh(mgr, "one", c.id, f"test -e /proc/{stopper} && echo there || echo gone")
    assert gone.stdout == b"gone\n"  # the stopped one was killed, not left to hold its commands
    await mgr.release("one", c.id)


async def test_a_reset_replaces_the_spawner(mgr: PoolManager) -> None:
    a = await mgr.claim("re", timeout=30)
    old = await spawner_pid(mgr, "re", a.id)  # the claim's code could write this one's memory
    await mgr.release("re", a.id)
    await wait_for(lambda: len(mgr.pools["re"].handout) == 1, 30, what="the member reset and ready again")
    b = await mgr.claim("re", timeout=30)
    assert b.id == a.id
    first = await sh(mgr, "re", b.id, f"{PARENT}; test -e /proc/{old} && echo there || echo gone")
    assert SPAWNER not in first.stdout.decode().splitlines()[0] and first.stdout.endswith(b"gone\n")
    assert await spawner_pid(mgr, "re", b.id) != old
    await mgr.release("re", b.id)


FORGE = """
import ctypes, os
spawner, libc = os.getppid(), ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(spawner)
for fd in os.listdir(f"/proc/{spawner}/fd"):  # the answer pipe of this very exec (pidfd_getfd: the same uid)
    if int(fd) > 2 and os.readlink(f"/proc/{spawner}/fd/{fd}").startswith("pipe:"):
        os.write(libc.syscall(438, pidfd, int(fd), 0), b"exit 0\\n")
        print("forged", flush=True)
"""


async def test_an_answer_the_code_writes_for_the_spawner_is_refused(tmp_path: Path) -> None:
    # without the seccomp filter, which refuses pidfd_getfd: the code takes the spawner's end of the answer
    # pipe (made by the agent, its /proc/PID/fd link is not the code's to open) and writes a line in it
    table = {"provider": "local", "command": HTTP_SERVER, "target_ready": 1, "seccomp": False,
             "health": {"enabled": False}, "readiness": {"http": "/", "timeout": "15s", "interval": "20ms"}}
    async with PoolManager(parse_config({"pools": {"open": table}}, "test.toml"), state_dir=tmp_path) as m:
        await m.warm_up(30)
        c = await m.claim("open", timeout=30)
        old = await spawner_pid(m, "open", c.id)
        forged = await collect(m.exec("open", c.id, ["python3", "-c", FORGE], timeout=30))
        assert forged.stdout == b"forged\n", forged.stderr  # its output came, and it found the pipe
        assert forged.exit_code is None and "spawner" in forged.error and "not an answer" in forged.error, forged
        after = await sh(m, "open", c.id, PARENT)  # the one spoken for was killed: the agent runs this itself
        assert after.exit_code == 0 and not after.stdout.decode().startswith(f"{old} "), after
        assert await spawner_pid(m, "open", c.id) != old
        await m.release("open", c.id)


async def test_commands_that_close_their_output_or_outlast_the_answer_wait_end_as_they_did(mgr: PoolManager) -> None:
    c = await mgr.claim("one", timeout=30)
    pid = await spawner_pid(mgr, "one", c.id)
    # the agent reads the pid only after 5 s (ANSWER_WAIT) or at the output's end, and the status at the
    # answer pipe's close: neither a command silent for longer nor one that closed its output early is
    # taken for a spawner that stopped answering
    closed, long = await asyncio.gather(
        sh(mgr, "one", c.id, "exec >&- 2>&-; sleep 6; exit 4"), sh(mgr, "one", c.id, "sleep 6; echo $PPID"))
    assert (closed.exit_code, closed.error, closed.stdout) == (4, "", b""), closed
    assert (long.exit_code, long.error, long.stdout) == (0, "", f"{pid}\n".encode()), long
    # a spawner killed under a running command: its output comes to its end, then the lost status is said
    r = await sh(mgr, "one", c.id, "kill -9 $PPID; sleep 0.5; echo after")
    assert (r.exit_code, r.stdout) == (None, b"after\n") and "spawner" in r.error, r
    await mgr.release("one", c.id)
