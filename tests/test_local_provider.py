"""The local provider with real processes: bubblewrap and plain, cgroups and rlimits, a real kill -9."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for

from poolui.errors import ConfigError, ProviderUnavailable, ReadinessTimeout, SandboxDied
from poolui.pool_file import parse_config
from poolui.providers import local
from poolui.providers.base import ProviderContext, Sandbox
from poolui.providers.local import _watchdog as wd
from poolui.providers.local import host
from poolui.providers.probes import http_get

HTTP = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
HAVE_BWRAP = shutil.which("bwrap") is not None
REAL_PYTHON = os.path.realpath(sys.executable)  # pyenv's, outside /usr
needs_bwrap = pytest.mark.skipif(not HAVE_BWRAP, reason="bwrap is not installed: apt-get install -y bubblewrap")
BOTH = [pytest.param("bubblewrap", marks=needs_bwrap), "none"]


def escaping(seconds: int) -> list[str]:
    """An HTTP server whose shell first starts a `sleep` in a session of its own (out of the process group)."""
    return ["sh", "-c", f"setsid sleep {seconds} & exec python3 -m http.server \"$1\" --bind 127.0.0.1", "sh",
            "{port}"]


def cmdline(pid: int) -> list[bytes]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")


def plant_token(state: Path) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / "token").write_text("s3cret")


def pids_of(argv: list[str]) -> list[int]:
    want = ("\0".join(argv) + "\0").encode()
    out = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if f.read() == want:
                    out.append(int(name))
        except (OSError, ValueError):
            pass
    return out


def gone(sb: Sandbox, state: Path) -> bool:
    """Nothing of sb is left: no watchdog, no sandbox process, no work directory, no cgroup."""
    ref = sb.ref
    return (not wd.is_alive(ref["watchdog_pid"], ref["watchdog_start"]) and not wd.is_alive(ref["pid"], ref["start"])
            and not (state / "sandboxes" / sb.member_id).exists() and not any(map(os.path.exists, ref["cgroups"])))


def pool(command: list[str] | None = None, **extra: Any) -> Any:
    table: dict[str, Any] = {"provider": "local", "command": command or HTTP,
                             "readiness": {"http": "/", "timeout": "10s", "interval": "5ms"}}
    table.update(extra)
    return parse_config({"pools": {"p": table}}, "test").pools["p"]


Make = Callable[..., Awaitable[local.LocalProvider]]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def namespace(state: Path) -> str:
    """Unique per state directory, as the engine's: concurrent test runs must not see each other's sandboxes."""
    return "t" + hashlib.sha256(str(state).encode()).hexdigest()[:10]


@pytest.fixture
async def make(state: Path) -> AsyncIterator[Make]:
    """Providers that are cleaned up however the test ends; `exits` collects on_exit calls."""
    made: list[local.LocalProvider] = []

    async def make_(isolation: str = "auto", command: list[str] | None = None, ns: str = "", name: str = "p",
                    cgroups: bool = True, on_exit: Callable[[str], None] | None = None,
                    **extra: Any) -> local.LocalProvider:
        table = {"provider": "local", "command": command or HTTP, "local": {"isolation": isolation, "cgroups": cgroups},
                 "readiness": {"http": "/", "timeout": "10s", "interval": "5ms"}, **extra}
        cfg = parse_config({"pools": {name: table}}, "test").pools[name]
        tell = on_exit or (lambda m: None)

        def exited(member_id: str, how: str = "") -> None:
            tell(member_id)

        prov = local.make(cfg, ProviderContext(ns or namespace(state), state, exited))
        await prov.check()
        made.append(prov)
        return prov

    yield make_
    for prov in made:
        for sb in await prov.list_ours():
            await prov.terminate(sb)
        await prov.close()


# ---------------------------------------------------------------- the basics


@pytest.mark.parametrize("isolation", BOTH)
async def test_create_ready_url_answers_then_terminate_leaves_nothing(make: Make, state: Path, isolation: str) -> None:
    prov = await make(isolation, limits={"memory": "256MiB", "pids": 64})
    assert prov.isolation == ("bubblewrap" if isolation == "bubblewrap" else "plain process")
    sb = await prov.create("pu-one", 60)
    assert sb.url == f"http://127.0.0.1:{sb.ref['port']}"
    assert abs(sb.expires_at - (time.time() + 60)) < 5
    assert json.loads(json.dumps(sb.ref)) == sb.ref
    await prov.wait_ready(sb, 10)
    assert (await http_get(sb.url, "/", 5)).ok
    assert prov.alive(sb)
    assert (await prov.health(sb)).ok
    assert sb.ref["cgroups"] and sb.ref["memory_limit"] == "cgroup"
    await prov.terminate(sb)
    assert gone(sb, state)
    assert not prov.alive(sb)
    assert not (await prov.health(sb)).ok
    await prov.terminate(sb)  # idempotent
    await prov.terminate(Sandbox("pu-never-made"))


@pytest.mark.parametrize("isolation", BOTH)
async def test_python_runs_without_the_pyenv_shim(make: Make, isolation: str) -> None:
    prov = await make(isolation)
    sb = await prov.create("pu-py", 60)
    argv = cmdline(sb.ref["watchdog_pid"])
    assert argv[0] == host.PYTHON.encode()
    sandbox_argv = argv[argv.index(b"--") + 1:]
    assert b"/usr/bin/python3" in sandbox_argv and not any(b"shims" in a for a in argv)
    await prov.terminate(sb)


@needs_bwrap
async def test_bubblewrap_hides_state_and_home_and_keeps_usr_read_only(
        make: Make, state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plant_token(state)
    probe = (
        f'cat {state}/token >/work/token 2>&1; echo "token:$?" >>/work/r; '
        'ls /root >/dev/null 2>&1; echo "root:$?" >>/work/r; '
        'touch /usr/poolui-x 2>/dev/null; echo "usr:$?" >>/work/r; '
        'echo "tmp:$(stat -f -c %T /tmp)" >>/work/r; echo "host:$(hostname)" >>/work/r; '
        'echo "procs:$(ls /proc | grep -c "^[0-9]")" >>/work/r; grep CapEff /proc/self/status >>/work/r; '
        'env >/work/env; exec python3 -m http.server "$1" --bind 127.0.0.1'
    )
    monkeypatch.setenv("POOLUI_TEST_CONTROLLER_SECRET", "x")
    prov = await make("bubblewrap", command=["sh", "-c", probe, "sh", "{port}"], local={"env": {"GREETING": "hi"}})
    sb = await prov.create("pu-iso", 60)
    await prov.wait_ready(sb, 10)
    # The work directory is the sandbox's own tmpfs: read through its agent.
    def read(name: str) -> Awaitable[bytes]:
        return prov.get_file(sb, name, 1 << 20)

    r = dict(line.split(":", 1) for line in (await read("r")).decode().split("\n") if line)
    assert r["token"] != "0" and b"s3cret" not in await read("token")
    assert r["root"] != "0"
    assert r["usr"] != "0"
    assert r["tmp"] == "tmpfs"
    assert r["host"] == "sandbox"
    assert int(r["procs"]) < 10  # its own pid namespace: bwrap, sh/python, ls
    assert r["CapEff"].strip() == "0000000000000000"
    env = dict(line.split("=", 1) for line in (await read("env")).decode().splitlines() if "=" in line)
    assert env["HOME"] == "/work" and env["GREETING"] == "hi" and env["PORT"] == str(sb.ref["port"])
    assert "POOLUI_TEST_CONTROLLER_SECRET" not in env
    await prov.terminate(sb)


# ---------------------------------------------------------------- killing the whole tree


@pytest.mark.parametrize("isolation,cgroups", [
    pytest.param("bubblewrap", True, marks=needs_bwrap), pytest.param("bubblewrap", False, marks=needs_bwrap),
    ("none", True), ("none", False),
])
async def test_terminate_kills_a_setsid_escapee(make: Make, state: Path, isolation: str, cgroups: bool) -> None:
    seconds = random.randrange(100_000, 999_999)
    prov = await make(isolation, command=escaping(seconds), cgroups=cgroups)
    sb = await prov.create("pu-esc", 60)
    await prov.wait_ready(sb, 10)
    await wait_for(lambda: pids_of(["sleep", str(seconds)]), 5, what="the escapee started")
    await prov.terminate(sb)  # returns once everything is gone: no wait on our side
    assert pids_of(["sleep", str(seconds)]) == []
    assert gone(sb, state)


CHILD = r"""
import asyncio, json, sys
from pathlib import Path
from poolui.pool_file import parse_config
from poolui.providers import local
from poolui.providers.local import host
from poolui.providers.base import ProviderContext

async def main():
    state, ns, isolation, ttl, command, members = sys.argv[1:7]
    table = {"provider": "local", "command": json.loads(command), "local": {"isolation": isolation}}
    cfg = parse_config({"pools": {"p": table}}, "child").pools["p"]
    prov = local.make(cfg, ProviderContext(ns, Path(state)))
    await prov.check()
    out = []
    for m in members.split(","):
        sb = await prov.create(m, float(ttl))
        await prov.wait_ready(sb, 10)
        out.append({"member_id": sb.member_id, "url": sb.url, "ref": sb.ref, "expires_at": sb.expires_at})
    print(json.dumps(out), flush=True)
    await asyncio.Event().wait()  # until the test kills this process

asyncio.run(main())
"""


async def controller_that_dies(state: Path, isolation: str, ttl: float, command: list[str],
                               members: list[str]) -> list[Sandbox]:
    """Sandboxes made by another process, which is then killed with SIGKILL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(state), namespace(state), isolation, str(ttl), json.dumps(command),
        ",".join(members), stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = await proc.stdout.readline()
    finally:
        proc.kill()
        await proc.wait()
    return [Sandbox(**d) for d in json.loads(line)]


@pytest.mark.parametrize("isolation", BOTH)
async def test_ttl_kills_the_tree_with_the_controller_dead(make: Make, state: Path, isolation: str) -> None:
    seconds = random.randrange(100_000, 999_999)
    [sb] = await controller_that_dies(state, isolation, 2.0, escaping(seconds), ["pu-ttl"])
    assert (await http_get(sb.url, "/", 5)).ok, "the sandbox died with its controller"
    assert pids_of(["sleep", str(seconds)])
    await wait_for(lambda: gone(sb, state) and not pids_of(["sleep", str(seconds)]), 10, what="TTL kill")
    assert time.time() >= sb.expires_at - 0.1
    assert await (await make(isolation)).list_ours() == []


@pytest.mark.parametrize("isolation", BOTH)
async def test_a_killed_watchdog_takes_its_sandbox_along(make: Make, state: Path, isolation: str) -> None:
    """The watchdog owns the sandbox's life; what a SIGKILLed watchdog could not clean up, list_ours sweeps."""
    seconds = random.randrange(100_000, 999_999)
    exits: list[str] = []
    prov = await make(isolation, command=escaping(seconds), on_exit=exits.append)
    sb = await prov.create("pu-orphan", 60)
    await prov.wait_ready(sb, 10)
    await wait_for(lambda: pids_of(["sleep", str(seconds)]), 5, what="the escapee started")
    os.kill(sb.ref["watchdog_pid"], signal.SIGKILL)
    await wait_for(lambda: exits == ["pu-orphan"], 5, what="on_exit")
    await wait_for(lambda: not wd.is_alive(sb.ref["pid"], sb.ref["start"]), 5, what="the sandbox died with it")
    assert await prov.list_ours() == []
    assert gone(sb, state) and not pids_of(["sleep", str(seconds)])


@pytest.mark.parametrize("isolation", BOTH)
async def test_a_watchdog_killed_while_starting_its_sandbox_leaves_no_orphan(
    make: Make, state: Path, isolation: str
) -> None:
    """The moment between the watchdog's fork and bubblewrap's own --die-with-parent is covered too."""
    prov = await make(isolation, cgroups=False)  # no cgroup sweep to hide an orphan
    marker = f"{namespace(state)}/p/".encode()

    def orphans() -> list[int]:
        found = []
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read()
                with open(f"/proc/{pid}/environ", "rb") as f:
                    environ = f.read()
            except OSError:
                continue
            if marker in argv or b"POOLUI_SANDBOX=" + marker in environ:
                found.append(int(pid))
        return found

    for i in range(12):
        sb = await prov.create(f"pu-race{i}", 60)
        for _ in range(i):  # kill at a different point of the start each time
            await asyncio.sleep(0)
        os.kill(sb.ref["watchdog_pid"], signal.SIGKILL)

    # Some outlive a watchdog killed mid-start (bubblewrap's --die-with-parent is not yet in force);
    # the next look for this pool's sandboxes (adoption, every maintenance pass) kills them.
    async def swept() -> bool:
        return await prov.list_ours() == [] and not orphans()

    await wait_for(swept, 5, what="every sandbox gone with its watchdog")


async def test_concurrent_creates_get_their_own_ports_and_all_answer(make: Make, state: Path) -> None:
    prov = await make()
    sbs = await asyncio.gather(*(prov.create(f"pu-c{i}", 60) for i in range(6)))
    assert len({sb.url for sb in sbs}) == 6
    await asyncio.gather(*(prov.wait_ready(sb, 20) for sb in sbs))
    assert all(r.ok for r in await asyncio.gather(*(http_get(sb.url, "/", 5) for sb in sbs)))
    assert sorted(sb.member_id for sb in await prov.list_ours()) == sorted(sb.member_id for sb in sbs)
    await asyncio.gather(*(prov.terminate(sb) for sb in sbs))
    assert all(gone(sb, state) for sb in sbs)


@pytest.mark.parametrize("isolation", BOTH)
async def test_sandboxes_outlive_their_controller_and_are_adopted(make: Make, state: Path, isolation: str) -> None:
    seconds = random.randrange(100_000, 999_999)
    made = await controller_that_dies(state, isolation, 120, escaping(seconds), ["pu-a", "pu-b"])
    for sb in made:
        assert (await http_get(sb.url, "/", 5)).ok, "a sandbox died with its controller"
    exits: list[str] = []
    prov = await make(isolation, on_exit=exits.append)
    found = {sb.member_id: sb for sb in await prov.list_ours()}
    assert set(found) == {"pu-a", "pu-b"}
    for old in made:
        new = found[old.member_id]
        assert (new.url, new.ref["pid"], new.ref["start"]) == (old.url, old.ref["pid"], old.ref["start"])
        assert new.ref["watchdog_pid"] == old.ref["watchdog_pid"] and abs(new.expires_at - old.expires_at) < 0.01
        assert prov.alive(new) and prov.alive(old) and (await prov.health(new)).ok
    a, b = found["pu-a"], found["pu-b"]
    await prov.terminate(a)
    assert gone(a, state)
    assert exits == []
    again = await make(isolation, name="p", on_exit=exits.append)
    [b] = await again.list_ours()  # no other call needed before on_exit works
    os.kill(b.ref["pid"], signal.SIGKILL)  # dies on its own: an adopted sandbox is not our child
    await wait_for(lambda: exits == ["pu-b", "pu-b"], 5, what="on_exit from both adopting providers")
    assert not prov.alive(b) and not again.alive(b)
    await wait_for(lambda: gone(b, state) and not pids_of(["sleep", str(seconds)]), 5)


async def test_list_ours_sees_only_its_namespace_and_pool(make: Make, state: Path) -> None:
    ns = namespace(state)
    mine, other_ns, other_pool = await make(ns=ns), await make(ns=ns + "-b"), await make(ns=ns, name="q")
    sbs = [await p.create(f"pu-{i}", 60) for i, p in enumerate((mine, other_ns, other_pool))]
    for p, sb in zip((mine, other_ns, other_pool), sbs, strict=True):
        assert [s.member_id for s in await p.list_ours()] == [sb.member_id]
    for p, sb in zip((mine, other_ns, other_pool), sbs, strict=True):
        await p.terminate(sb)
        assert await p.list_ours() == []


# ---------------------------------------------------------------- readiness, exits, limits


async def test_never_ready_is_a_readiness_timeout(make: Make) -> None:
    prov = await make(command=["sleep", "300"])
    sb = await prov.create("pu-slow", 60)
    with pytest.raises(ReadinessTimeout, match="not ready after 0.3s"):
        await prov.wait_ready(sb, 0.3)
    assert prov.alive(sb)
    await prov.terminate(sb)


@pytest.mark.parametrize("isolation", BOTH)
async def test_exiting_at_once_is_sandbox_died_fast_with_its_output(make: Make, isolation: str) -> None:
    exits: list[str] = []
    prov = await make(isolation, command=["sh", "-c", "echo boom >&2; exit 3"], on_exit=exits.append)
    sb = await prov.create("pu-dies", 60)
    # SandboxDied, not a ReadinessTimeout after the 30 s: the death ends the wait
    with pytest.raises(SandboxDied, match="exit status 3.*boom"):
        await prov.wait_ready(sb, 30)
    assert not prov.alive(sb)
    await prov.terminate(sb)


@pytest.mark.parametrize("isolation", BOTH)
async def test_a_ready_sandbox_that_dies_calls_on_exit(make: Make, state: Path, isolation: str) -> None:
    exits: list[str] = []
    prov = await make(isolation, on_exit=exits.append)
    sb = await prov.create("pu-gone", 60)
    await prov.wait_ready(sb, 10)
    os.kill(sb.ref["pid"], signal.SIGKILL)
    await wait_for(lambda: exits == ["pu-gone"], 5, what="on_exit")
    assert not prov.alive(sb)
    result = await prov.health(sb)
    assert not result.ok and "exited" in result.detail
    assert gone(sb, state)
    await prov.terminate(sb)
    assert exits == ["pu-gone"]


# bytearray(n) writes every byte, so the pages are really charged.
HOG = ["sh", "-c", 'python3 -c "bytearray(400 << 20)" && exec python3 -m http.server "$1" --bind 127.0.0.1', "sh",
       "{port}"]


@pytest.mark.parametrize("isolation,cgroups,how", [
    pytest.param("bubblewrap", True, "cgroup", marks=needs_bwrap), ("none", True, "cgroup"), ("none", False, "rlimit"),
])
async def test_memory_limit_stops_a_hog(make: Make, isolation: str, cgroups: bool, how: str) -> None:
    tight = await make(isolation, command=HOG, cgroups=cgroups, limits={"memory": "128MiB"})
    sb = await tight.create("pu-hog", 60)
    if sb.ref["memory_limit"] != how:
        await tight.terminate(sb)
        pytest.skip(f"no {how} memory limit here (got {sb.ref['memory_limit']!r}): cgroups not writable")
    with pytest.raises(SandboxDied):
        await tight.wait_ready(sb, 30)
    await tight.terminate(sb)
    roomy = await make(isolation, command=HOG, cgroups=cgroups, name="roomy", limits={"memory": "2GiB"})
    sb = await roomy.create("pu-roomy", 60)
    await roomy.wait_ready(sb, 30)  # the same command fits under a larger limit
    await roomy.terminate(sb)


async def test_tcp_and_exec_probes(make: Make) -> None:
    connect = "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2)"
    prov = await make(readiness={"tcp": True, "timeout": "10s", "interval": "5ms"},
                      health={"exec": ["python3", "-c", connect, "{port}"], "timeout": "5s"})
    sb = await prov.create("pu-probes", 60)
    await prov.wait_ready(sb, 10)
    result = await prov.health(sb)
    assert result.ok, result.detail
    bad = await make(name="bad", health={"exec": ["false"], "timeout": "5s"})
    assert not (await bad.health(sb)).ok
    missing = await make(name="missing", health={"http": "/no-such-page", "timeout": "5s"})
    result = await missing.health(sb)
    assert not result.ok and "404" in result.detail
    never = await make(name="never", command=["sleep", "300"], readiness={"exec": ["false"], "timeout": "0.2s"})
    slow = await never.create("pu-never", 60)
    with pytest.raises(ReadinessTimeout, match="exit 1"):
        await never.wait_ready(slow, 0.2)
    await never.terminate(slow)
    await prov.terminate(sb)


# ---------------------------------------------------------------- options and checks


@pytest.mark.parametrize("raw,key,allowed", [
    ({"isolation": "docker"}, "isolation", '"auto", "bubblewrap", "none"'),
    ({"cgroups": "yes"}, "cgroups", "true or false"),
    ({"env": {"A": 1}}, "env", "NAME = \"value\""),
    ({"env": ["A=1"]}, "env", "NAME = \"value\""),
    ({"ro_paths": ["opt/app"]}, "ro_paths", "absolute paths"),
    ({"tmp_size": "lots"}, "tmp_size", "256MiB"),
])
def test_bad_options_name_where_key_value_and_allowed(raw: dict[str, Any], key: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as e:
        local.parse_options(raw, "f.toml: pool 'p'.local")
    msg = str(e.value)
    assert msg.startswith("f.toml: pool 'p'.local: ") and f"'{key}'" in msg and repr(raw[key]) in msg
    assert allowed in msg


def test_unknown_option_and_the_pool_file_path() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'isolate' = 'none'; allowed keys: isolation, cgroups"):
        local.parse_options({"isolate": "none"}, "x")
    with pytest.raises(ConfigError, match=r"pool 'p'.local: key 'isolation'"):
        pool(local={"isolation": 1})
    opts = pool(local={"isolation": "none", "env": {"B": "2", "A": "1"}, "ro_paths": ["/opt/"],
                       "tmp_size": "1MiB"}).options
    assert opts == local.LocalOptions("none", True, (("A", "1"), ("B", "2")), ("/opt",), 1 << 20)


async def test_check_says_what_is_wrong(make: Make, state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProviderUnavailable, match="'no-such-program-xyz' was not found"):
        await make(command=["no-such-program-xyz"])
    if HAVE_BWRAP:
        with pytest.raises(ProviderUnavailable, match="outside what a bubblewrap sandbox can see"):
            await make("bubblewrap", command=[REAL_PYTHON, "-V"])
        plant_token(state)
        with pytest.raises(ProviderUnavailable, match="would show the controller's state directory"):
            await make("bubblewrap", local={"isolation": "bubblewrap", "ro_paths": [str(state.parent)]})
    monkeypatch.setenv("PATH", "/nonexistent")  # as on a machine without bubblewrap
    with pytest.raises(ProviderUnavailable, match="apt-get install -y bubblewrap"):
        await make("bubblewrap")
    assert (await make("auto")).isolation == "plain process"
