"""Hostile Docker containers on the real engine: network = "isolated" reaches nothing, "egress" reaches the
outside but not the host nor its siblings, while the claim URL answers from the host; a container on the
engine's default bridge runs the same attempts, to show that they succeed where nothing stops them.

The attempts are tests/hostile/net_attacks.sh, run inside a claimed container through the provider's exec.
Every target is an HTTP service this test (or a sibling container) runs: on the host's 127.0.0.1, on all
of the host's addresses, sibling containers' servers and claim URLs, and "elsewhere", a network namespace
this test makes (tests/docker_net_support.py). Nothing is sent off this machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from docker_net_support import (
    EGRESS_MISSING,
    ISOLATED_MISSING,
    Space,
    elsewhere,
    host_services,
    link_local,
    own_addresses,
    space,
)
from docker_support import http_body

from poolui.providers.base import Sandbox
from poolui.providers.docker import DockerProvider
from poolui.sandbox_io import ExecRequest, collect

__all__ = ["elsewhere", "host_services", "link_local", "space"]  # fixtures, used by name
ATTACKS = (Path(__file__).parent / "hostile" / "net_attacks.sh").read_text()
pytestmark = pytest.mark.skipif(bool(ISOLATED_MISSING), reason=f"isolated Docker networks need {ISOLATED_MISSING}")


async def attack(p: DockerProvider, sb: Sandbox, targets: list[tuple[str, int]]) -> dict[str, Any]:
    """What the container reached: {"connect": {"host:port": open?}, "interfaces", "routes", "ipv6_off"}."""
    stdin = "".join(f"{h} {port}\n" for h, port in targets).encode()
    r = await collect(p.exec(sb, ExecRequest(("sh", "-c", ATTACKS), stdin=stdin, timeout=30)))
    assert r.exit_code == 0, r.stderr.decode()
    seen: dict[str, Any] = {"connect": {}, "interfaces": []}
    for line in r.stdout.decode().splitlines():
        word, value = line.split(" ", 1)
        if word == "connect":
            target, how = value.split()
            seen["connect"][target] = how == "open"
        elif word == "interface":
            seen["interfaces"].append(value)
        else:
            seen[word] = value
    assert len(seen["connect"]) == len(set(targets)), r.stdout
    return seen


def address(engine: Any, sb: Sandbox) -> str:
    """A container's address on the network it is on ("" with none)."""
    nets = engine.api.inspect_container(sb.ref["container_id"])["NetworkSettings"]["Networks"]
    return next((n["IPAddress"] for n in nets.values() if n.get("IPAddress")), "")


async def targets_of(space: Space, host_services: tuple[int, int], siblings: list[Sandbox]) -> list[tuple[str, int]]:
    """Everything a container must not reach: the host's services on loopback and on each of its addresses,
    its siblings' servers (their addresses) and claim URLs (the host's loopback)."""
    loop_port, all_port = host_services
    out = [("127.0.0.1", loop_port)] + [(a, all_port) for a in own_addresses()]
    for sb in siblings:
        out.append(("127.0.0.1", sb.ref["host_port"]))
        if address(space.engine, sb):
            out.append((address(space.engine, sb), 8080))
    return out


async def test_an_isolated_container_reaches_nothing_yet_its_url_answers(
        space: Space, host_services: tuple[int, int], elsewhere: tuple[str, int]) -> None:
    iso, bridge = space.provider("iso", network="isolated"), space.provider("open", engine_network="bridge")
    me, sibling = await space.ready(iso, "m-1"), await space.ready(iso, "m-2")
    opened = await space.ready(bridge, "m-3")
    targets = await targets_of(space, host_services, [sibling, opened]) + [elsewhere]
    seen = await attack(iso, me, targets)
    assert not any(seen["connect"].values()), seen["connect"]
    assert seen["interfaces"] == ["lo"] and seen["routes"] == "0"  # nowhere to send a packet
    assert await http_body(me.url) == (200, "poolui sandbox ok\n")  # from the host, through the forwarder
    assert iso.shield["network"] == "isolated" and bridge.shield["network"] == "bridge"

    # The same attempts from the engine's default bridge: the host's services on its addresses answer.
    contrast = await attack(bridge, opened, targets)
    loop_port, all_port = host_services
    assert any(contrast["connect"][f"{a}:{all_port}"] for a in own_addresses()), contrast["connect"]


@pytest.mark.skipif(bool(EGRESS_MISSING), reason=f"egress needs {EGRESS_MISSING}")
async def test_an_egress_container_reaches_elsewhere_but_not_the_host_nor_its_siblings(
        space: Space, host_services: tuple[int, int], elsewhere: tuple[str, int],
        link_local: tuple[str, int]) -> None:
    out, iso = space.provider("out", network="egress"), space.provider("iso", network="isolated")
    me, sibling = await space.ready(out, "m-1"), await space.ready(out, "m-2")
    other = await space.ready(iso, "m-3")
    targets = await targets_of(space, host_services, [sibling, other])
    # a link-local service outside (a cloud metadata service's addresses) answers the host, not the container
    assert (await http_body(f"http://{link_local[0]}:{link_local[1]}/"))[0] == 200
    seen = await attack(out, me, [*targets, link_local, elsewhere])
    outside = seen["connect"].pop(f"{elsewhere[0]}:{elsewhere[1]}")
    assert outside, "the egress container did not reach the service outside the host"
    assert not any(seen["connect"].values()), seen["connect"]  # host (every address) and siblings refused
    assert "eth0" in seen["interfaces"] and int(seen["routes"]) > 0 and seen["ipv6_off"] == "1"
    assert await http_body(me.url) == (200, "poolui sandbox ok\n")
    assert await http_body(sibling.url) == (200, "poolui sandbox ok\n")  # the host reaches them; not each other
    assert out.shield["network"] == "egress"
