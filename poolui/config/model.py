"""What a pool file says, as frozen dataclasses: pools, their probes and limits, the server."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .autoscale import AutoscaleConfig

ON_EMPTY = ("wait", "create", "fail")
PROBE_KINDS = ("http", "tcp", "exec")


@dataclass(frozen=True)
class ProbeConfig:
    kind: str = "http"  # http | tcp | exec
    path: str = "/"
    argv: tuple[str, ...] = ()
    timeout: float = 10.0  # readiness: the whole wait; health: one probe
    interval: float = 0.05


@dataclass(frozen=True)
class Limits:
    memory: int | None = None  # bytes
    pids: int | None = None
    disk: int | None = None  # bytes of the work directory (None: the provider's default)


@dataclass(frozen=True)
class ReuseConfig:
    """reuse = true: a released sandbox is reset and handed out again, up to max_uses claims in all."""

    max_uses: int = 10
    reset: tuple[str, ...] = ()  # run inside the sandbox after the built-in reset; failing it retires the sandbox
    reset_timeout: float = 30.0


@dataclass(frozen=True)
class PoolConfig:
    """One [pools.NAME] table. Sizes and timings can change at run time (resize); what a sandbox *is*
    (provider, command, options, limits) makes up `revision`, and members of an older one are replaced."""

    name: str
    provider: str = "local"
    command: tuple[str, ...] = ()
    target_ready: int = 3  # warm sandboxes to keep
    min_ready: int = 1  # below this, `check` is CRITICAL
    max_ready: int = 10
    max_total: int = 20  # ready + creating + claimed
    ttl: float = 300.0  # hard lifetime, enforced by the provider itself
    min_remaining_ttl: float = 0.0  # never hand out a sandbox with less left
    ttl_jitter: float = 0.05  # fraction of ttl taken off at random, so members made together do not expire together
    readiness: ProbeConfig = ProbeConfig(kind="http", timeout=10.0, interval=0.02)
    health: ProbeConfig | None = ProbeConfig(kind="http", timeout=2.0, interval=10.0)
    maintenance_interval: float = 30.0
    on_empty: str = "wait"  # wait (bounded, FIFO) | create (a cold claim) | fail (409 at once)
    claim_timeout: float = 10.0
    claim_lease: float | None = None  # a claim ends unless renewed within this long (None: claims have no lease)
    max_concurrent_creates: int = 4
    max_execs: int = 16  # execs one sandbox runs at once; more are refused with 429 (core/use.py)
    create_retries: int = 3  # failures in a row before the pool is degraded
    limits: Limits = Limits()
    read_only: bool = False  # the console and API refuse every change to this pool
    reuse: ReuseConfig | None = None  # None: single use, every release terminates the sandbox
    autoscale: AutoscaleConfig | None = None  # None: the setpoint is target_ready (core/sizing.py)
    price_per_hour: float | None = None  # one sandbox-hour, in the user's currency (None: not priced; price.py)
    network: str = "auto"  # isolated | egress | host; auto: isolated where the provider can, else host
    seccomp: bool = True  # a seccomp filter on the sandbox's processes, where the provider has one
    options: Any = None  # the provider's own parsed table ([pools.NAME.PROVIDER]), typed by the provider
    raw_options: dict[str, Any] = field(default_factory=dict)

    @cached_property  # read for every member on every reconcile: hashing each time cost ~1 ms per claim
    def revision(self) -> str:
        """Changes when what a sandbox *is* changes; sizes and timings do not count."""
        body = json.dumps(
            [self.provider, list(self.command), self.raw_options, self.limits.memory, self.limits.pids,
             self.limits.disk, self.network, self.seccomp],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(body.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "127.0.0.1:8765"
    url: str | None = None  # where clients find the server, when it differs from listen
    token_file: str | None = None
    on_shutdown: str = "keep"  # keep | terminate
    state_dir: str | None = None
    allow_remote: bool = False  # listening beyond loopback; needs tls_cert and tls_key as well
    tls_cert: str | None = None
    tls_key: str | None = None
    header_timeout: float = 10.0  # seconds a request's headers may take to come (server/deadlines.py)
    body_timeout: float = 60.0  # seconds its body may take once the headers are in
    keep_alive: float = 5.0  # seconds an idle keep-alive connection is kept


@dataclass(frozen=True)
class Config:
    pools: dict[str, PoolConfig]
    server: ServerConfig = ServerConfig()
    path: Path | None = None
    state_dir: Path | None = None
