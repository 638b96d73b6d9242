"""Sandboxes as Docker containers, through the Docker SDK for Python (the `docker` extra).

The SDK is imported lazily: pool files with a docker pool must parse on machines without it, and
importing this package (as poolui.config does for parse_options) never imports it.

What makes a container ours: labels poolui.namespace / poolui.pool / poolui.member (plus expiry and config
revision, so a later manager can adopt it without asking anyone). The hard TTL lives inside the container:
its argv is prefixed with `timeout -s KILL <ttl>` under docker-init (a SIGKILL sent to pid 1 from inside
its own pid namespace is ignored, so the init is what makes the in-container deadline work), and
auto-remove deletes it once dead. Nothing here depends on the controller staying up.

Deaths are learned from the engine's event stream (a watcher thread, reconnecting with backoff); after a
reconnect the live containers are listed again, so deaths during an engine outage are not missed.

Modules: options (the [pools.NAME.docker] table), spec (the container a pool's member is, built without
the engine), provider (DockerProvider), errors (SDK failures as poolui errors), events (the watcher thread),
use (exec and files), agent (the local provider's agent in the container, where the image has a python3;
_agent_boot starts it inside).
"""

from __future__ import annotations

from ...config import PoolConfig
from ...errors import ConfigError
from ..base import ProviderContext
from ..common import options_of
from .options import DockerOptions, parse_options
from .provider import DockerProvider

__all__ = ["DockerOptions", "DockerProvider", "make", "parse_options"]


def make(pool: PoolConfig, ctx: ProviderContext) -> DockerProvider:
    opts = options_of(pool, DockerOptions, parse_options)
    where = f"pool '{pool.name}'"
    probes_used = [p for p in (pool.readiness, pool.health) if p is not None]
    if opts.network == "none" and any(p.kind != "exec" for p in probes_used):
        raise ConfigError(f"{where}: docker.network = \"none\" has no port to probe: use exec readiness/health probes")
    if opts.port is None and opts.network != "none":
        raise ConfigError(f"{where}: docker.port is needed to publish the server (or set network = \"none\")")
    if opts.host_port is not None and pool.max_total > 1:
        raise ConfigError(
            f"{where}: docker.host_port = {opts.host_port} is not allowed with max_total = {pool.max_total}: "
            "a fixed host port fits one container; leave host_port out and the engine picks free ones")
    return DockerProvider(pool, ctx, opts)
