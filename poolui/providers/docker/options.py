"""The [pools.NAME.docker] table: DockerOptions and parse_options (no Docker SDK here)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from ... import bounds as b
from ...config import TableReader
from ..common import ENV_ALLOWED, ENV_NAME

_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")

KEYS = (
    "image", "command", "port", "host_port", "network", "env", "memory", "cpus", "pids", "read_only",
    "workdir", "tmpfs_size", "user", "labels", "cap_drop", "cap_add", "no_new_privileges", "ttl_command",
    "stop_timeout", "host", "api_timeout", "agent",
)
CAPS_ALLOWED = 'a list of strings, e.g. ["ALL"]'


@dataclass(frozen=True)
class DockerOptions:
    image: str
    command: tuple[str, ...] = ()  # empty: the pool's command, else the image's own ENTRYPOINT/CMD
    port: int | None = 8080  # the port the server listens on inside the container
    host_port: int | None = None  # None: the engine picks a free one on 127.0.0.1
    network: str = "bridge"  # bridge | host | none | a user-defined network
    env: dict[str, str] = field(default_factory=dict)
    memory: int | None = None
    cpus: float | None = None
    pids: int | None = None
    read_only: bool | None = None  # None: read-only for a reuse pool (its reset then starts clean), else writable
    workdir: str = "/work"
    tmpfs_size: int = 64 * 1024**2
    user: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    cap_drop: tuple[str, ...] = ("ALL",)
    cap_add: tuple[str, ...] = ()
    no_new_privileges: bool = True
    ttl_command: tuple[str, ...] = ("timeout", "-s", "KILL", "{ttl}")
    stop_timeout: float = 1.0
    host: str | None = None  # None: DOCKER_HOST, else the default socket
    api_timeout: float = 30.0
    # exec and files through an agent in the container (agent.py): "auto" where the image has a python3 and
    # the machine allows it, True (an error where it cannot), False (the Engine's exec API)
    agent: bool | str = "auto"


def parse_options(raw: dict[str, Any], where: str) -> DockerOptions:
    """The [pools.NAME.docker] table; ConfigError names `where`, the key, the value and what is allowed."""
    t = TableReader(raw, where)
    d = DockerOptions(image="")
    image = t.get("image")
    if not isinstance(image, str) or not image.strip():
        raise t.error("image", image, 'an image name, e.g. "poolui/busybox:local" (built by scripts/docker-engine.sh)')
    command = t.argv("command", example='["httpd", "-f", "-p", "{port}", "-h", "/www"]') if t.has("command") else ()
    network = t.str_("network", d.network, nonempty=True)
    if not _NAME_RE.match(network):
        raise t.error("network", network, '"bridge", "host", "none" or the name of a Docker network')
    port = t.opt_int("port", 1, 65535) if t.has("port") else d.port
    host_port = t.opt_int("host_port", 1, 65535)
    memory = t.size("memory")
    tmpfs_size = t.size("tmpfs_size")
    if memory is not None and memory < 6 * 1024**2:
        raise t.error("memory", raw["memory"], "a size from 6MiB (the engine's minimum) to 1024GiB")
    cpus = t.get("cpus")
    if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, int | float) or not 0.01 <= cpus <= 1024):
        raise t.error("cpus", cpus, "a number of CPUs from 0.01 to 1024, e.g. 0.5")
    labels = _labels(t)
    ttl_command = _ttl_command(t, d)
    workdir = t.str_("workdir", d.workdir, nonempty=True)
    if not workdir.startswith("/"):
        raise t.error("workdir", workdir, "an absolute path inside the container")
    user = t.get("user")
    if user is not None and (not isinstance(user, str) or not user):
        raise t.error("user", user, 'a user name or "UID[:GID]", e.g. "65534:65534"')
    host = t.get("host")
    if host is not None and (not isinstance(host, str) or "://" not in host):
        raise t.error("host", host, 'an engine address such as "unix:///var/run/docker.sock" or "tcp://127.0.0.1:2375"')
    opts = DockerOptions(
        image=image.strip(),
        command=command,
        port=port,
        host_port=host_port,
        network=network,
        env=t.str_map("env", ENV_NAME, ENV_ALLOWED),
        memory=memory,
        cpus=float(cpus) if cpus is not None else None,
        pids=t.opt_int("pids", 1, 1 << 22),
        read_only=None if t.get("read_only", None) is None else t.bool_("read_only", False),
        workdir=workdir,
        tmpfs_size=tmpfs_size or d.tmpfs_size,
        user=user,
        labels=labels,
        cap_drop=t.str_list("cap_drop", d.cap_drop, CAPS_ALLOWED),
        cap_add=t.str_list("cap_add", d.cap_add, CAPS_ALLOWED),
        no_new_privileges=t.bool_("no_new_privileges", d.no_new_privileges),
        ttl_command=ttl_command,
        stop_timeout=t.duration("stop_timeout", d.stop_timeout, maximum=b.MAX_WAIT),
        host=host,
        api_timeout=t.duration("api_timeout", d.api_timeout, minimum=0.5, maximum=b.MAX_WAIT),
    )
    opts = replace(opts, agent=_agent(t, d, user))
    t.finish(KEYS, sort=False)
    return opts


def _agent(t: TableReader, d: DockerOptions, user: str | None) -> bool | str:
    agent = t.get("agent", d.agent)
    if agent not in (True, False, "auto"):
        raise t.error("agent", agent, 'true, false or "auto" (the agent where the image has a python3)')
    if agent is True and user is not None and user.split(":")[0] in ("0", "root"):
        raise t.error("user", user, "a user other than root: with docker.agent the code may not run as the agent's "
                      "uid (or set agent = false)")
    return agent


def _labels(t: TableReader) -> dict[str, str]:
    labels = t.str_map("labels", None, 'a table of strings, e.g. { team = "infra" }')
    reserved = sorted(k for k in labels if k.startswith("poolui."))
    if reserved:
        raise t.error("labels", labels, f"labels not starting with 'poolui.' (reserved; got '{reserved[0]}')")
    return labels


def _ttl_command(t: TableReader, d: DockerOptions) -> tuple[str, ...]:
    example = '["timeout", "-s", "KILL", "{ttl}"]'
    ttl_command = t.argv("ttl_command", example=example) if t.has("ttl_command") else d.ttl_command
    if "{ttl}" not in ttl_command:
        raise t.error("ttl_command", list(ttl_command), f'an argv prefix containing "{{ttl}}", e.g. {example}')
    return ttl_command
