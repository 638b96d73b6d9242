"""What the Docker network tests stand on: HTTP services on the host, an "elsewhere" outside it, a
namespace whose containers, egress network, host rules and forwarders are all checked gone afterwards.

"Elsewhere" is a network namespace this test makes with a veth pair to the host, addressed from
198.18.0.0/15 (RFC 2544's range for testing; nothing on the internet answers there) and reached through
the host's routing, as any outside address is; "link-local" is the same with a 169.254/16 address, where
a cloud machine's metadata service answers. Before a packet is sent, the test checks that the route to
it is the veth: no test sends traffic off this machine.
"""

from __future__ import annotations

import ctypes
import http.server
import os
import random
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from docker_support import HTTPD, IMAGE, client_or_none
from helpers import wait_for

from poolui.pool_file import parse_config
from poolui.providers.base import ProviderContext, Sandbox
from poolui.providers.docker import DockerProvider, make
from poolui.providers.docker.network import (
    LINK_LOCAL_COMMENT,
    RULE_COMMENT,
    egress_names,
    remove_egress,
    what_is_missing,
)

CLONE_NEWNET = 0x40000000
EGRESS_MISSING = what_is_missing("egress", "unix:///var/run/docker.sock")
ISOLATED_MISSING = what_is_missing("isolated", "unix:///var/run/docker.sock")


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        body = b"reached\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def serve(sock: socket.socket) -> http.server.ThreadingHTTPServer:
    """An HTTP server on an already bound and listening socket, answering 200 on its own thread."""
    server = http.server.ThreadingHTTPServer(sock.getsockname()[:2], _Answer, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def listening(host: str) -> socket.socket:
    s = socket.socket()
    s.bind((host, 0))
    s.listen(64)
    return s


@pytest.fixture
def host_services() -> Iterator[tuple[int, int]]:
    """(port on the host's 127.0.0.1, port on all of the host's addresses): two HTTP services, as a
    host's services are."""
    servers = [serve(listening("127.0.0.1")), serve(listening("0.0.0.0"))]
    try:
        yield servers[0].socket.getsockname()[1], servers[1].socket.getsockname()[1]
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True, timeout=30).stdout


def socket_in(netns: str, host: str) -> socket.socket:
    """A listening socket made inside network namespace `netns` (setns on a thread of its own, which then
    ends: the socket stays in the namespace it was made in)."""
    made: list[socket.socket | BaseException] = []

    def make_it() -> None:
        try:
            fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            made.append(listening(host))
        except BaseException as e:
            made.append(e)

    t = threading.Thread(target=make_it)
    t.start()
    t.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


@pytest.fixture
def elsewhere() -> Iterator[tuple[str, int]]:
    """(address, port) of an HTTP service outside this host: in a network namespace behind a veth pair."""
    yield from _outside(link_local=False)


@pytest.fixture
def link_local() -> Iterator[tuple[str, int]]:
    """(address, port) of an HTTP service on a link-local address (169.254/16, where a cloud machine's
    metadata service answers) outside this host, routed through a veth pair as `elsewhere` is. Never
    169.254.169.254 itself, which this machine may use."""
    yield from _outside(link_local=True)


def _outside(link_local: bool) -> Iterator[tuple[str, int]]:
    tag = uuid.uuid4().hex[:6]
    netns, outer, inner = f"poolui-t-{tag}", f"pvo{tag}", f"pvi{tag}"
    net = f"198.{18 + random.randrange(2)}.{random.randrange(256)}"
    where = f"169.254.{random.randrange(1, 169)}.{random.randrange(1, 255)}" if link_local else f"{net}.2"
    server = None
    try:
        ip("netns", "add", netns)
        ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        ip("link", "set", inner, "netns", netns)
        ip("addr", "add", f"{net}.1/30", "dev", outer)
        ip("link", "set", outer, "up")
        ip("-n", netns, "addr", "add", f"{net}.2/30", "dev", inner)
        ip("-n", netns, "link", "set", inner, "up")
        ip("-n", netns, "link", "set", "lo", "up")
        if link_local:
            ip("-n", netns, "addr", "add", f"{where}/32", "dev", inner)
            ip("route", "add", f"{where}/32", "via", f"{net}.2", "dev", outer)
        route = ip("route", "get", where)
        assert f"dev {outer}" in route, f"the route to {where} is not the test's veth: {route}"
        server = serve(socket_in(netns, where))
        yield where, server.socket.getsockname()[1]
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        subprocess.run(["ip", "link", "del", outer], capture_output=True, timeout=30)  # its route goes with it
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)
        assert netns not in ip("netns", "list") and outer not in ip("-o", "link")


def forwarders() -> dict[int, int]:
    """pid -> the claim URL's port, of every forwarder running on this machine."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 3 and argv[3].endswith(b"docker/_forward.py"):
            found[int(pid)] = next(int(a[4:]) for a in argv if a.startswith(b"url="))
    return found


def own_addresses() -> list[str]:
    """This machine's IPv4 addresses but loopback (docker0, the egress bridge, the outward interface...)."""
    out = ip("-4", "-o", "addr", "show")
    return [line.split()[3].split("/")[0] for line in out.splitlines() if line.split()[1] != "lo"]


def rules_of(bridge: str) -> list[str]:
    """The host's rules that name `bridge` (INPUT of iptables and ip6tables, and DOCKER-USER)."""
    out = []
    for tool, chain in (("iptables", "INPUT"), ("ip6tables", "INPUT"), ("iptables", "DOCKER-USER")):
        r = subprocess.run([tool, "-w", "5", "-S", chain], capture_output=True, text=True, timeout=30)
        out += [line for line in r.stdout.splitlines()
                if bridge in line or RULE_COMMENT in line or LINK_LOCAL_COMMENT in line]
    return out


@dataclass
class Space:
    """A test's namespace and the providers it made; everything is checked gone at the end."""

    ns: str
    engine: Any
    made: list[DockerProvider] = field(default_factory=list)
    ports: set[int] = field(default_factory=set)

    def provider(self, pool: str, network: str | None = None, engine_network: str | None = None,
                 **docker: Any) -> DockerProvider:
        """A provider of pool `pool`: `network` is the pool table's, `engine_network` docker.network."""
        if engine_network:
            docker["network"] = engine_network
        table = {"provider": "docker", "target_ready": 1, "min_ready": 0, "max_ready": 4, "max_total": 4,
                 **({"network": network} if network else {}),
                 "docker": {"image": IMAGE, "command": HTTPD, **docker}}
        cfg = parse_config({"pools": {pool: table}}, "test.toml").pools[pool]
        p = make(cfg, ProviderContext(self.ns, Path("/tmp")))
        self.made.append(p)
        return p

    async def ready(self, p: DockerProvider, member: str) -> Sandbox:
        """A new member of `p`, ready; its URL's port is remembered for the forwarder check."""
        sb = await p.create(member, ttl=120)
        await p.wait_ready(sb, timeout=20)
        self.ports.add(sb.ref["host_port"])
        return sb


@pytest.fixture
async def space(engine: Any) -> Any:
    """A namespace of this test's own; afterwards its containers, its egress network, the host's rules for
    it and its containers' forwarders are removed, and checked gone."""
    s = Space(f"test-{uuid.uuid4().hex[:10]}", engine)
    try:
        yield s
    finally:
        for p in s.made:
            await p.close()  # a test may have closed it already (a controller gone): closing twice is fine
        client = client_or_none()
        assert client is not None
        mine = {"label": f"poolui.namespace={s.ns}"}
        for c in client.api.containers(all=True, filters=mine):
            try:
                client.api.remove_container(c["Id"], force=True)
            except docker.errors.APIError as e:  # gone, or its auto-remove already under way: wait for it below
                if e.status_code not in (404, 409):
                    raise
        await wait_for(lambda: not client.api.containers(all=True, filters=mine), 30, what="the containers gone")
        await wait_for(lambda: not set(forwarders().values()) & s.ports, 10, what="the forwarders to end")
        remove_egress(client, s.ns)
        name, bridge = egress_names(s.ns)
        assert client.api.networks(names=[name]) == [] and rules_of(bridge) == []
        assert client.api.containers(all=True, filters={"label": f"poolui.namespace={s.ns}"}) == []
        client.close()
