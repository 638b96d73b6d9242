"""Modal Sandboxes as a pool's home, through the modal SDK's `.aio` calls.

What makes a sandbox ours: its tags poolui.namespace / poolui.pool / poolui.member (plus expiry and config
revision). `list_ours` finds them by tag alone, so a manager that lost its state file can still adopt or
kill them. The hard TTL is Modal's own `timeout=`; nothing depends on the controller staying up.

Modules: options (the [pools.NAME.modal] table; imports no SDK), provider (ModalProvider), session (one
pool's SDK client, app, image and handles, every call bounded), errors (SDK failures as poolui errors),
tags (Modal's tag rules).
"""

from __future__ import annotations

import math

from ...config import PoolConfig
from ...durations import format_duration
from ...errors import ConfigError
from ..base import Provider, ProviderContext
from ..common import options_of
from .options import MAX_TIMEOUT, ImageSpec, ModalOptions, parse_options

__all__ = ["MAX_TIMEOUT", "ImageSpec", "ModalOptions", "make", "parse_options"]


def make(pool: PoolConfig, ctx: ProviderContext) -> Provider:
    """Check what needs the whole pool (ttl, probes, limits), then build the provider; imports no SDK."""
    from .provider import ModalProvider

    opts = options_of(pool, ModalOptions, parse_options)
    where = f"pool '{pool.name}'"
    if not (opts.command or pool.command):
        raise ConfigError(
            f"{where}: the modal provider needs a command: set command = [...] in [pools.{pool.name}.modal] "
            f"(or the pool's own command)"
        )
    if opts.command and pool.command and tuple(opts.command) != tuple(pool.command):
        raise ConfigError(f"{where}: command is set both in the pool and in its modal table, differently; keep one")
    if pool.ttl > MAX_TIMEOUT:
        raise ConfigError(
            f"{where}: ttl = {format_duration(pool.ttl)} is not allowed: Modal sandboxes live at most 24h"
        )
    if pool.limits.pids is not None:
        raise ConfigError(f"{where}: limits.pids is not allowed with provider \"modal\" (Modal has no pid limit)")
    limit_mib = math.ceil(pool.limits.memory / 1024**2) if pool.limits.memory else None
    if limit_mib and opts.memory and opts.memory > limit_mib:
        raise ConfigError(
            f"{where}: modal memory = {opts.memory} MiB is more than limits.memory = {limit_mib} MiB; "
            f"the request must fit under the limit"
        )
    if opts.idle_timeout is not None:
        health = pool.health
        if health is None or health.kind != "http" or health.interval >= opts.idle_timeout:
            raise ConfigError(
                f"{where}: modal idle_timeout = {format_duration(opts.idle_timeout)} would end warm sandboxes "
                f"before anyone claims them: it needs an http health check through the tunnel that runs more "
                f"often than that ([pools.{pool.name}.health] http = \"/\", interval < idle_timeout)"
            )
    return ModalProvider(pool, ctx, opts, limit_mib)
