"""A hostile sandbox, on real bubblewrap sandboxes under a real `poolui serve`: every attempt to reach the
API, other sandboxes, the host's services, the controller's files, the kernel's dangerous calls, or to
take the host down with it fails, while the pool stays healthy and the claim URL keeps answering. The
attempts are tests/hostile/attacks.py, run inside the sandbox; a pool with network = "host" runs the
same connects, to show that they would succeed where nothing stops them."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from errno import ECONNREFUSED
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from docker_net_support import elsewhere, link_local
from helpers import wait_for
from server_fixtures import Served, pool_table, served

from poolui.errors import ProviderUnavailable, SandboxDied
from poolui.pool_file import parse_config
from poolui.providers.local.options import LocalOptions
from poolui.providers.local.shield import decide
from poolui.sandbox_io import collect

ATTACKS = (Path(__file__).parent / "hostile" / "attacks.py").read_text()
LIMITS = {"memory": "256MiB", "pids": 64, "disk": "8MiB"}
pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed")
EGRESS = os.geteuid() == 0 and shutil.which("pasta") is not None  # what network = "egress" needs
__all__ = ["elsewhere", "link_local"]  # fixtures, used by name


@pytest.fixture(scope="module")
def host() -> Iterator[Served]:
    pools = {"a": pool_table(target_ready=2, limits=LIMITS), "b": pool_table(target_ready=1),
             "open": pool_table(target_ready=1, network="host", seccomp=False)}
    if EGRESS:
        pools["out"] = pool_table(target_ready=1, network="egress")
    with served(pools, on_shutdown="terminate") as s:
        yield s


def listening_on(address: str) -> Iterator[int]:
    """The port of a socket listening on `address` for the test's length."""
    with socket.socket() as s:
        s.bind((address, 0))
        s.listen(8)
        yield s.getsockname()[1]


@pytest.fixture
def listener() -> Iterator[int]:
    """A service on the host's 127.0.0.1, as any host service."""
    yield from listening_on("127.0.0.1")


async def attack(c: Any, pool: str, sandbox_id: str, **plan: Any) -> dict[str, Any]:
    r = await collect(c.exec(pool, sandbox_id, ["python3", "-c", ATTACKS], stdin=json.dumps(plan),
                                timeout=30))
    assert r.ok, r.stderr.decode()
    result: dict[str, Any] = json.loads(r.stdout)
    return result


async def refilled(c: Any, pool: str) -> None:
    """The pool is healthy and full again: what the sandboxes did cost it nothing lasting."""
    async def full() -> bool:
        snap = await c.snapshot(pool)
        return bool(snap.state == "healthy" and snap.ready >= snap.target_ready)

    await wait_for(full, 30, interval=0.05, what=f"pool {pool} healthy and full again")


def port(url: str) -> int:
    p = urlsplit(url).port
    assert p is not None
    return p


async def test_an_isolated_sandbox_reaches_nothing_but_itself(host: Served, listener: int) -> None:
    async with host.client(timeout=30) as c:
        me, sibling, other, opened = [await c.claim(p, timeout=30) for p in ("a", "a", "b", "open")]
        targets = [port(host.url), port(sibling.url), port(other.url), listener]
        seen = await attack(c, "a", me.id, ports=targets)
        assert all(v != 0 for v in seen["connect"].values()), seen["connect"]
        assert seen["interfaces"] == ["lo"] and seen["routes"] == 0  # nowhere to send a packet
        contrast = await attack(c, "open", opened.id, ports=targets)
        assert all(v == 0 for v in contrast["connect"].values()), contrast["connect"]  # the probe can succeed
        async with httpx.AsyncClient() as h:
            assert (await h.get(me.url)).status_code == 200  # its own URL still works
        for cl, p in ((me, "a"), (sibling, "a"), (other, "b"), (opened, "open")):
            await c.release(p, cl.id)
        await refilled(c, "a")


def own_addresses() -> list[str]:
    """This machine's IPv4 addresses but loopback: an egress sandbox must not reach the host through them
    either. Only addresses of this machine: no test sends a packet off it."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines() if line.split()[1] != "lo"]


@pytest.fixture
def everywhere() -> Iterator[int]:
    """A service on all of the host's addresses (0.0.0.0), as a careless host service listens."""
    yield from listening_on("0.0.0.0")


@pytest.mark.skipif(not EGRESS, reason="egress needs root and pasta (apt-get install -y passt)")
async def test_an_egress_sandbox_has_a_way_out_but_not_to_the_host(host: Served, listener: int, everywhere: int,
                                                                     link_local: tuple[str, int]) -> None:
    # the link-local service (where a cloud machine's metadata service answers) answers the host itself
    async with httpx.AsyncClient() as h:
        assert (await h.get(f"http://{link_local[0]}:{link_local[1]}/")).status_code == 200
    async with host.client(timeout=30) as c:
        # The pool's sandbox started before the link-local fixture's veth: its watchdog reloads its firewall
        # when this machine's addresses change (the test after the next proves it on an address of its own).
        me, sibling, other = [await c.claim(p, timeout=30) for p in ("out", "a", "b")]
        targets = [port(host.url), port(sibling.url), port(other.url), listener, everywhere]
        seen = await attack(c, "out", me.id, ports=targets, hosts=["127.0.0.1", *own_addresses()])
        reached = [where for where, errno in seen["connect"].items() if errno == 0]
        assert not reached, f"reached {reached} (addresses: {own_addresses()})"
        seen = await attack(c, "out", me.id, ports=[link_local[1]], hosts=[link_local[0]])
        assert all(errno != 0 for errno in seen["connect"].values()), seen["connect"]
        assert len(seen["interfaces"]) == 2 and seen["routes"] > 0  # an interface and a route out: pasta's
        async with httpx.AsyncClient() as h:
            assert (await h.get(me.url)).status_code == 200
        for cl, p in ((me, "out"), (sibling, "a"), (other, "b")):
            await c.release(p, cl.id)
        await refilled(c, "out")


@contextmanager
def gained_address() -> Iterator[str]:
    """An address this machine gains now (on its loopback, from RFC 5737's documentation range: nothing
    outside answers there), and loses again at the end."""
    address = f"198.51.100.{random.randrange(1, 255)}"
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
    try:
        yield address
    finally:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=False)


@pytest.mark.skipif(not EGRESS, reason="egress needs root and pasta (apt-get install -y passt)")
async def test_an_egress_sandbox_refuses_an_address_this_machine_gains_after_it_started(host: Served) -> None:
    async with host.client(timeout=30) as c:
        me, opened = await c.claim("out", timeout=30), await c.claim("open", timeout=30)
        with gained_address() as address, contextmanager(listening_on)(address) as service:
            where = {"ports": [service], "hosts": [address]}
            contrast = await attack(c, "open", opened.id, **where)
            assert list(contrast["connect"].values()) == [0]  # the new address answers where nothing stops it

            async def refused() -> bool:
                seen = await attack(c, "out", me.id, **where)
                return list(seen["connect"].values()) == [ECONNREFUSED]  # the firewall's answer, not a timeout

            # its watchdog sees the change and loads the firewall again; until then a connect may pass
            await wait_for(refused, 20, interval=0.05, what=f"{address} refused from the egress sandbox")
        async with httpx.AsyncClient() as h:
            assert (await h.get(me.url)).status_code == 200  # it runs on, its way out and its URL as before
        assert [m.state for m in (await c.snapshot("out")).members if m.id == me.id] == ["claimed"]
        await c.release("out", me.id)
        await c.release("open", opened.id)
        await refilled(c, "out")


@pytest.mark.skipif(not EGRESS, reason="egress needs root and pasta (apt-get install -y passt)")
def test_an_egress_firewall_is_loaded_again_only_for_a_new_address_and_says_when_it_cannot(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from poolui.providers.local import _egress_rules as rules

    # This machine's addresses as the watchdog reads them, fixed: tests beside this one make networks. The
    # namespace handed over is /dev/null's descriptor, no namespace at all: a load can only fail, and nothing
    # is ever loaded into this test's own namespace.
    seen = {"4": ["198.51.100.1"], "6": []}
    monkeypatch.setattr(rules, "host_addresses", lambda: seen)
    rules.watch()
    not_a_namespace = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        monkeypatch.setattr(rules, "_applied", {"4": ["198.51.100.1", "198.51.100.2"], "6": []})
        assert rules.changed(not_a_namespace) is False  # one gone, none new: what is refused stays, nothing runs
        seen["4"].append("198.51.100.3")
        with pytest.raises(OSError, match="the sandbox's firewall could not be set: nsenter"):
            rules.changed(not_a_namespace)  # a new address, and the load fails: the watchdog then ends it
    finally:
        os.close(not_a_namespace)
        rules.stop()
    assert rules.watching() == -1


@pytest.mark.skipif(not EGRESS, reason="egress needs root and pasta (apt-get install -y passt)")
async def test_an_egress_sandbox_reaches_what_lies_outside(host: Served, elsewhere: tuple[str, int]) -> None:
    # "Outside" is a network namespace behind a veth pair, reached through the host's routing as any
    # address off this machine is; no test sends a packet off this machine.
    async with host.client(timeout=30) as c:
        me = await c.claim("out", timeout=30)
        seen = await attack(c, "out", me.id, ports=[elsewhere[1]], hosts=[elsewhere[0]])
        await c.release("out", me.id)
    assert 0 in seen["connect"].values(), seen["connect"]


async def test_an_isolated_sandbox_reads_nothing_of_the_controller(host: Served) -> None:
    state = str(host.state_dir.resolve())
    async with host.client(timeout=30) as c:
        me, sibling = await c.claim("a", timeout=30), await c.claim("a", timeout=30)
        await c.put_file("a", sibling.id, "secret.txt", b"the sibling's")
        paths = [f"{state}/token", f"{state}/poolui.db", f"{state}/sandboxes/{sibling.id}/work/secret.txt",
                 f"{state}/sandboxes/{sibling.id}/agent.sock"]
        seen = await attack(c, "a", me.id, paths=paths, secrets=[state, host.token])
        assert all(v in ("ENOENT", "EACCES") for v in seen["read"].values()), seen["read"]
        assert seen["proc_shows"] == []  # no host path of the state directory, nor the token, in /proc
        if os.geteuid() == 0:
            assert seen["uid"] == 65534  # nobody, never root on the host
        await c.release("a", me.id)
        await c.release("a", sibling.id)


async def test_seccomp_refuses_the_dangerous_calls(host: Served) -> None:
    async with host.client(timeout=30) as c:
        me = await c.claim("a", timeout=30)
        seen = await attack(c, "a", me.id, syscalls=True)
        for call in ("ptrace", "mount", "unshare", "add_key", "clock_settime", "vsock"):
            assert seen[call] == 1, (call, seen[call])  # EPERM
        await c.release("a", me.id)


async def test_bombs_stay_inside_the_sandbox(host: Served) -> None:
    async with host.client(timeout=30) as c:
        me = await c.claim("a", timeout=30)
        fork = await collect(c.exec("a", me.id, ["python3", "-c", (
            "import os\nn = 0\ntry:\n    while n < 10000:\n        if os.fork() == 0:\n            os.pause()\n"
            "        n += 1\nexcept OSError as e:\n    print('stopped', n, e.errno)\n")], timeout=30))
        assert fork.stdout.startswith(b"stopped") and int(fork.stdout.split()[1]) < 64  # the pids limit
        free = os.statvfs(host.state_dir).f_bavail
        disk = await collect(c.exec("a", me.id, ["sh", "-c", "head -c 20000000 /dev/zero > big; echo $?"]))
        assert disk.stdout.strip() != b"0" and b"No space left" in disk.stderr
        assert abs(os.statvfs(host.state_dir).f_bavail - free) * os.statvfs(host.state_dir).f_frsize < 4 << 20
        async with httpx.AsyncClient() as h:
            assert (await h.get(me.url)).status_code == 200  # it survived both
        try:  # the OOM kill ends the whole sandbox: the exec says how it ended, or that the sandbox did
            await collect(c.exec("a", me.id, ["python3", "-c", "b = bytearray(1 << 30)"], timeout=30))
        except SandboxDied:
            pass

        async def ended_by_oom() -> bool:
            events = await c.recent_events("a")
            return any(e.member_id == me.id and "oom" in e.detail for e in events)

        await wait_for(ended_by_oom, 20, interval=0.1, what="the memory bomb's sandbox to end with reason oom")
        await refilled(c, "a")


def test_the_snapshot_and_check_say_what_protects_each_pool(host: Served) -> None:
    r = host.headless("check", "--json")
    shields = {p["name"]: p["snapshot"]["shield"] for p in json.loads(r.stdout)["pools"]}
    assert shields["a"]["network"] == "isolated" and shields["a"]["seccomp"] is True
    assert shields["a"]["disk"] == 8 << 20
    assert shields["open"]["network"] == "host" and shields["open"]["seccomp"] is False
    if EGRESS:
        assert shields["out"]["network"] == "egress"
    if os.geteuid() == 0:
        assert shields["a"]["uid"] == 65534


def test_network_isolation_is_shown_in_the_console_header() -> None:
    from poolui.tui import view

    assert "[b $error]network host[/]" in view.shield({"network": "host", "uid": 1000, "seccomp": True,
                                                       "disk": 1 << 29})
    assert view.shield({"network": "isolated", "uid": 65534, "seccomp": True,
                        "disk": 1 << 29}) == "net isolated · uid 65534 · seccomp · disk 512MiB"


def test_doctor_says_what_this_machine_gives_sandboxes(host: Served) -> None:
    r = host.headless("doctor", "--json", server=False)
    found = {f["name"]: f for f in json.loads(r.stdout)}
    assert {"bubblewrap", "network isolation", "egress (pasta)", "unprivileged uid", "seccomp",
            "cgroups"} <= set(found)
    assert found["bubblewrap"]["ok"] and found["network isolation"]["ok"]  # this module's sandboxes prove it
    assert found["unprivileged uid"]["ok"] is (os.geteuid() == 0)
    assert found["agent apart"]["ok"] is (os.geteuid() == 0)
    assert found["egress (pasta)"]["ok"] is EGRESS
    assert r.returncode == (0 if all(f["ok"] for f in found.values()) else 1)


@pytest.mark.parametrize(("network", "bwrap", "why"), [
    ("egress", True, "needs pasta"), ("egress", False, "needs bubblewrap"), ("isolated", False, "needs bubblewrap"),
])
def test_a_network_that_cannot_be_had_is_refused_with_the_way_out(
        network: str, bwrap: bool, why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without pasta
    pool = parse_config({"pools": {"p": {"provider": "local", "command": ["true"], "network": network}}},
                        "t.toml").pools["p"]
    with pytest.raises(ProviderUnavailable, match=f"pool 'p': network = \"{network}\" {why}.*\"host\""):
        decide(pool, LocalOptions(), bwrap=bwrap, agent=True, state_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written for a pool that cannot start
