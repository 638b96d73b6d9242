"""What one container of a pool is: the create request, built from the pool and its [docker] table
without talking to the engine (so it can be read and tested on its own)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ...config import PoolConfig
from ..common import fill, owner_marks
from .options import DockerOptions

HOST_PORT = "poolui.host_port"  # the host port of a host-network container (it has no published one)


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
                   memory: int | None, pids: int | None, read_only: bool) -> ContainerSpec:
    o = opts
    ttl_s = max(1, math.ceil(ttl))
    port = host_port if o.network == "host" else o.port
    argv = fill(list(o.command or pool.command or image_config.get("Cmd") or []), port=port or "")
    prefix = [a.replace("{ttl}", str(ttl_s)) for a in o.ttl_command]
    labels = {**o.labels, **owner_marks(namespace, pool.name, member_id, expires_at, pool.revision)}
    if o.network == "host":
        labels[HOST_PORT] = str(host_port)
    tmpfs = {o.workdir: f"rw,size={o.tmpfs_size},mode=1777"}
    if read_only:
        tmpfs.setdefault("/tmp", f"rw,size={o.tmpfs_size},mode=1777")
    ports = [o.port] if o.network not in ("host", "none") and o.port else []
    host_config = drop_none(
        init=True,
        auto_remove=True,
        read_only=read_only,
        tmpfs=tmpfs,
        network_mode=o.network,
        port_bindings={o.port: ("127.0.0.1", host_port) if host_port else ("127.0.0.1",)} if ports else None,
        cap_drop=list(o.cap_drop) or None,
        cap_add=list(o.cap_add) or None,
        security_opt=["no-new-privileges"] if o.no_new_privileges else None,
        mem_limit=memory,
        memswap_limit=memory,  # no swap on top of the limit: over it means OOM-killed
        pids_limit=pids,
        nano_cpus=int(o.cpus * 1e9) if o.cpus else None,
    )
    name = f"poolui-{slug(namespace)[:24]}-{slug(pool.name)}-{slug(member_id)}"[:200]
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
