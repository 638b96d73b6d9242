"""Which network a Docker pool gets (the pool table's `network`, docker.network, the default), what the
snapshot's shield says of it, and the isolated container's claim URL: forwarded by a process of the host
that outlives the controller (adoption keeps the URL) and ends with its container."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from docker_net_support import ISOLATED_MISSING, Space, forwarders, space
from docker_support import IMAGE, http_body
from helpers import wait_for

from poolui.errors import ConfigError, ProviderUnavailable, SandboxDied
from poolui.pool_file import parse_config
from poolui.providers.base import ProviderContext
from poolui.providers.docker import make
from poolui.providers.docker.network import resolve

__all__ = ["space"]  # a fixture, used by name


def pool(pool_network: str | None = None, **docker: Any) -> Any:
    """A docker pool's config: `pool_network` is the pool table's network, `docker` its [docker] table."""
    table = {"provider": "docker", **({"network": pool_network} if pool_network else {}),
             "docker": {"image": IMAGE, **docker}}
    return parse_config({"pools": {"web": table}}, "t.toml").pools["web"]


@pytest.mark.parametrize(("network", "docker", "engine", "expected"), [
    (None, {}, "unix:///var/run/docker.sock", "isolated" if not ISOLATED_MISSING else "bridge"),
    (None, {"network": "bridge"}, "unix:///var/run/docker.sock", "bridge"),
    (None, {"network": "none"}, "unix:///var/run/docker.sock", "none"),
    ("host", {}, "unix:///var/run/docker.sock", "host"),
    (None, {}, "tcp://10.0.0.1:2375", "bridge"),  # the default falls back where isolation cannot be had
])
def test_which_network_a_pool_gets(network: str | None, docker: dict[str, Any], engine: str, expected: str) -> None:
    cfg = pool(network, **docker)
    assert resolve(cfg, cfg.options, engine) == expected


def test_a_network_said_twice_names_both_keys_and_the_way_out() -> None:
    cfg = pool("egress", network="bridge")
    with pytest.raises(ConfigError, match=r"pool 'web': network = \"egress\" and docker.network = \"bridge\" both .*"
                                          r"keep one .*\"isolated\" \| \"egress\" \| \"host\""):
        make(cfg, ProviderContext("t", Path("/tmp")))


@pytest.mark.parametrize("network", ["isolated", "egress"])
def test_a_network_this_machine_cannot_give_is_refused_with_the_reason(network: str) -> None:
    cfg = pool(network, host="tcp://10.0.0.1:2375")  # never contacted: refused before
    with pytest.raises(ProviderUnavailable, match=rf"pool 'web': network = \"{network}\" needs the engine on this "
                                                  r"machine .*set network = \"host\", or docker.network = \"bridge\""):
        make(cfg, ProviderContext("t", Path("/tmp")))


def test_the_shield_says_network_user_seccomp_and_disk() -> None:
    ctx = ProviderContext("t", Path("/tmp"))
    p = make(pool(None, network="bridge", user="65534:65534", read_only=True, tmpfs_size="16MiB"), ctx)
    assert p.shield == {"network": "bridge", "uid": 65534, "seccomp": True, "disk": 16 << 20}
    root = make(pool("host"), ctx)
    assert root.shield == {"network": "host", "uid": 0, "seccomp": True, "disk": None}  # root fs writable: unbounded


@pytest.mark.skipif(bool(ISOLATED_MISSING), reason=f"isolated Docker networks need {ISOLATED_MISSING}")
async def test_an_isolated_url_outlives_the_controller_and_ends_with_its_container(space: Space) -> None:
    first = space.provider("web", network="isolated")
    sb = await space.ready(first, "m-1")
    port = sb.ref["host_port"]
    host = space.engine.api.inspect_container(sb.ref["container_id"])["HostConfig"]
    assert host["NetworkMode"] == "none" and not host["PortBindings"]
    assert port in forwarders().values()
    await first.close()  # the controller goes; its forwarder does not

    adopter = space.provider("web", network="isolated")
    (found,) = await adopter.list_ours()
    assert (found.url, found.ref) == (sb.url, sb.ref)
    assert await http_body(found.url) == (200, "poolui sandbox ok\n")
    assert (await adopter.health(found)).ok

    await adopter.terminate(found)
    await wait_for(lambda: port not in forwarders().values(), 10, what="the forwarder to end with its container")
    with pytest.raises(httpx.ConnectError):
        await http_body(sb.url)
    assert os.geteuid() == 0  # ISOLATED_MISSING said so


@pytest.mark.skipif(bool(ISOLATED_MISSING), reason=f"isolated Docker networks need {ISOLATED_MISSING}")
async def test_a_container_that_ends_at_once_leaves_no_forwarder(space: Space) -> None:
    p = space.provider("web", network="isolated", command=["sh", "-c", "exit 3"])
    sb = await p.create("m-1", ttl=60)  # the forwarder was started before the container, and never handed it
    with pytest.raises(SandboxDied, match="exited with code 3"):
        await p.wait_ready(sb, timeout=20)
    await wait_for(lambda: sb.ref["host_port"] not in forwarders().values(), 10, what="the unused forwarder to end")
