"""What one container of a pool is: the create request, built from the pool and its [docker] table
without talking to the engine (so it can be read and tested on its own)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ...config import PoolConfig
from ..base import Sandbox
from ..common import EXPIRES, MEMBER, REVISION, fill, owner_marks
from .agent import LABEL as AGENT
from .options import DockerOptions

HOST_PORT = "poolui.host_port"  # the URL's port of a host-network or isolated container (none is published)
NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": "1"}  # no link-local IPv6 beside the firewalled IPv4


def slug(s: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", s)


def drop_none(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


@dataclass(frozen=True)
class ContainerSpec:
    create: dict[str, Any]  # keyword arguments of APIClient.create_container, without host_config
    host_config: dict[str, Any]  # keyword arguments of APIClient.create_host_config
    labels: dict[str, str]
    name: str


def container_spec(pool: PoolConfig, opts: DockerOptions, namespace: str, member_id: str, ttl: float,
                   expires_at: float, host_port: int | None, image_config: dict[str, Any],
                   memory: int | None, pids: int | None, read_only: bool, mode: str, network: str) -> ContainerSpec:
    """The container of one member; `mode` is the pool's network (network.resolve), `network` the Docker
    network it is on ("none" for isolated, the namespace's egress network for egress)."""
    o = opts
    ttl_s = max(1, math.ceil(ttl))
    port = host_port if mode == "host" else o.port
    argv = fill(list(o.command or pool.command or image_config.get("Cmd") or []), port=port or "")
    prefix = [a.replace("{ttl}", str(ttl_s)) for a in o.ttl_command]
    labels = {**o.labels, **owner_marks(namespace, pool.name, member_id, expires_at, pool.revision)}
    if mode in ("host", "isolated"):
        labels[HOST_PORT] = str(host_port)
    tmpfs = {o.workdir: f"rw,size={o.tmpfs_size},mode=1777"}
    if read_only:
        tmpfs.setdefault("/tmp", f"rw,size={o.tmpfs_size},mode=1777")
    ports = [o.port] if network not in ("host", "none") and o.port else []
    security = (["no-new-privileges"] if o.no_new_privileges else []) + ([] if pool.seccomp else ["seccomp=unconfined"])
    host_config = drop_none(
        init=True,
        auto_remove=True,
        read_only=read_only,
        tmpfs=tmpfs,
        network_mode=network,
        sysctls=NO_IPV6 if mode == "egress" else None,
        port_bindings={o.port: ("127.0.0.1", host_port) if host_port else ("127.0.0.1",)} if ports else None,
        cap_drop=list(o.cap_drop) or None,
        cap_add=list(o.cap_add) or None,
        security_opt=security or None,
        mem_limit=memory,
        memswap_limit=memory,  # no swap on top of the limit: over it means OOM-killed
        pids_limit=pids,
        nano_cpus=int(o.cpus * 1e9) if o.cpus else None,
    )
    name = container_name(namespace, pool.name, member_id)
    create = drop_none(
        entrypoint=prefix + list(image_config.get("Entrypoint") or []),
        command=argv,
        name=name,
        labels=labels,
        environment=dict(o.env),
        detach=True,
        stop_timeout=max(0, math.ceil(o.stop_timeout)),
        working_dir=o.workdir,
        user=o.user,
        ports=ports or None,
    )
    return ContainerSpec(create, host_config, labels, name)


def container_name(namespace: str, pool: str, member_id: str) -> str:
    return f"poolui-{slug(namespace)[:24]}-{slug(pool)}-{slug(member_id)}"[:200]


def published(attrs: dict[str, Any], port: int | None) -> int | None:
    """The host port the engine published the container's `port` on (None: not published)."""
    bindings = ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{port}/tcp") or []
    for b in bindings:
        if b.get("HostPort"):
            return int(b["HostPort"])
    return None


def sandbox_of(cid: str, name: str, labels: dict[str, str], published: int | None, image: str) -> Sandbox:
    """A container as a Sandbox, from its labels alone (what a later controller adopts it by)."""
    host_port = int(labels[HOST_PORT]) if HOST_PORT in labels else published
    ref = {"container_id": cid, "name": name.lstrip("/"), "image": image,
           "host_port": host_port, "revision": labels.get(REVISION, ""), "agent": labels.get(AGENT) == "1"}
    url = f"http://127.0.0.1:{host_port}" if host_port else ""
    try:
        expires_at = float(labels.get(EXPIRES, "0"))
    except ValueError:
        expires_at = 0.0
    return Sandbox(labels.get(MEMBER, ""), url, ref, expires_at)
