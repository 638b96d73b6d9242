"""A pool file's data to a Config: every table read with TableReader, every provider's own table handed
to that provider (through ProviderTables, so this module imports no provider)."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from .. import bounds as b
from ..addresses import split_host_port
from ..durations import format_duration
from ..errors import ConfigError
from .autoscale import parse_autoscale
from .model import ON_EMPTY, PROBE_KINDS, Config, Limits, PoolConfig, ProbeConfig, ReuseConfig, ServerConfig
from .price import price_per_hour, take_rates
from .reader import TableReader
from .sizes import size_problem


class ProviderTables(Protocol):
    """What the pool file needs to know of the providers (poolui.providers.registry answers it)."""

    def names(self) -> tuple[str, ...]: ...

    def needs_command(self, provider: str) -> bool: ...

    def parse_options(self, provider: str, raw: dict[str, Any], where: str) -> Any: ...


POOL_KEYS = (
    "provider", "command", "target_ready", "min_ready", "max_ready", "max_total", "ttl",
    "min_remaining_ttl", "ttl_jitter", "readiness", "health", "maintenance_interval", "on_empty",
    "claim_timeout", "claim_lease", "max_concurrent_creates", "create_retries", "limits", "read_only",
    "reuse", "max_uses", "reset", "reset_timeout", "network", "seccomp", "max_execs", "autoscale", "price_per_hour",
)
NETWORKS = ("auto", "isolated", "egress", "host")
REUSE_KEYS = ("max_uses", "reset", "reset_timeout")


def _probe(t: TableReader | None, default: ProbeConfig | None, readiness: bool) -> ProbeConfig | None:
    if t is None:
        return default
    assert default is not None
    kinds = [k for k in PROBE_KINDS if t.has(k)]
    if t.has("enabled") and t.get("enabled") is False:
        t.finish(("enabled",) + PROBE_KINDS + ("timeout", "interval"))
        if readiness:
            raise t.error("enabled", False, "readiness cannot be disabled")
        return None
    if len(kinds) > 1:
        raise t.error(kinds[1], t.data[kinds[1]], f"only one of {', '.join(PROBE_KINDS)} per probe")
    kind = kinds[0] if kinds else default.kind
    path, argv = default.path, default.argv
    if kind == "http":
        path = t.str_("http", default.path)
        if not path.startswith("/"):
            raise t.error("http", path, 'a URL path starting with "/"')
    elif kind == "tcp":
        if t.get("tcp") is not True:
            raise t.error("tcp", t.data.get("tcp"), "true")
    else:
        argv = t.argv("exec")
    timeout = t.duration("timeout", default.timeout, minimum=0.001, maximum=b.MAX_WAIT)
    interval = t.duration("interval", default.interval, minimum=0.001, maximum=b.MAX_INTERVAL)
    t.finish(("enabled",))
    return ProbeConfig(kind=kind, path=path, argv=argv, timeout=timeout, interval=interval)


def _limits(t: TableReader | None) -> Limits:
    if t is None:
        return Limits()
    memory = t.size("memory", maximum=b.MAX_MEMORY)
    disk = t.size("disk", maximum=b.MAX_MEMORY)
    if disk is not None and disk < 1 << 20:
        raise t.error("disk", t.get("disk"), 'a size of at least "1MiB", e.g. "512MiB"')
    limits = Limits(memory=memory, pids=t.opt_int("pids", 1, b.MAX_PIDS), disk=disk)
    t.finish(())
    return limits


def _reuse(t: TableReader) -> ReuseConfig | None:
    if not t.bool_("reuse", False):
        for key in REUSE_KEYS:
            if t.has(key):
                raise t.error(key, t.get(key), "reuse = true beside it (it only applies to a pool that reuses)")
        return None
    d = ReuseConfig()
    return ReuseConfig(max_uses=t.int_("max_uses", d.max_uses, minimum=1, maximum=1_000_000),
                       reset=t.argv("reset") if t.has("reset") else (),
                       reset_timeout=t.duration("reset_timeout", d.reset_timeout, minimum=0.01, maximum=b.MAX_WAIT))


def _pool(name: str, t: TableReader, tables: ProviderTables) -> PoolConfig:
    d = PoolConfig(name=name)
    provider = t.str_("provider", "local", tables.names())
    raw_opts = t.sub(provider)
    raw_options = dict(raw_opts.data) if raw_opts else {}
    rates = take_rates(raw_options)  # the provider's price, not the provider's to read (price.py)
    options = tables.parse_options(provider, raw_options, f"{t.where}.{provider}")
    command = t.argv("command") if (tables.needs_command(provider) or t.has("command")) else ()
    cfg = PoolConfig(
        name=name,
        provider=provider,
        command=command,
        target_ready=t.int_("target_ready", d.target_ready, maximum=b.MAX_SIZE),
        min_ready=t.int_("min_ready", d.min_ready, maximum=b.MAX_SIZE),
        max_ready=t.int_("max_ready", d.max_ready, maximum=b.MAX_SIZE),
        max_total=t.int_("max_total", d.max_total, minimum=1, maximum=b.MAX_SIZE),
        ttl=t.duration("ttl", d.ttl, minimum=0.1, maximum=b.MAX_TTL),
        min_remaining_ttl=t.duration("min_remaining_ttl", d.min_remaining_ttl, maximum=b.MAX_TTL),
        ttl_jitter=t.float_("ttl_jitter", d.ttl_jitter, 0.0, 0.5),
        readiness=_probe(t.sub("readiness"), d.readiness, readiness=True) or d.readiness,
        health=_probe(t.sub("health"), d.health, readiness=False),
        maintenance_interval=t.duration("maintenance_interval", d.maintenance_interval, minimum=0.05,
                                        maximum=b.MAX_INTERVAL),
        on_empty=t.str_("on_empty", d.on_empty, ON_EMPTY),
        claim_timeout=t.duration("claim_timeout", d.claim_timeout, maximum=b.MAX_WAIT),
        claim_lease=t.duration("claim_lease", 0.0, minimum=b.MIN_LEASE, maximum=b.MAX_LEASE)
        if t.has("claim_lease") else None,
        max_concurrent_creates=t.int_("max_concurrent_creates", d.max_concurrent_creates, minimum=1,
                                      maximum=b.MAX_CONCURRENT_CREATES),
        create_retries=t.int_("create_retries", d.create_retries, minimum=1, maximum=b.MAX_CREATE_RETRIES),
        max_execs=t.int_("max_execs", d.max_execs, minimum=1, maximum=b.MAX_EXECS),
        limits=_limits(t.sub("limits")),
        read_only=t.bool_("read_only", False),
        reuse=_reuse(t),
        network=t.str_("network", d.network, NETWORKS),
        seccomp=t.bool_("seccomp", d.seccomp),
        options=options,
        raw_options=raw_options,
        price_per_hour=price_per_hour(t, provider, rates, options),
    )
    auto = t.sub("autoscale")
    t.finish(POOL_KEYS + tables.names())
    problem = size_problem(cfg.min_ready, cfg.target_ready, cfg.max_ready, cfg.max_total)
    if problem:
        raise ConfigError(f"{t.where}: {problem}")
    if auto is not None:
        cfg = replace(cfg, autoscale=parse_autoscale(auto, cfg.min_ready, cfg.max_ready))
    if cfg.ttl <= cfg.min_remaining_ttl:
        raise ConfigError(
            f"{t.where}: ttl = {format_duration(cfg.ttl)} must be longer than min_remaining_ttl = "
            f"{format_duration(cfg.min_remaining_ttl)}, or no sandbox could ever be handed out"
        )
    return cfg


def _server(t: TableReader | None) -> ServerConfig:
    if t is None:
        return ServerConfig()
    d = ServerConfig()
    listen = t.str_("listen", d.listen)
    try:
        split_host_port(listen)
    except ValueError as e:
        raise t.error("listen", listen, str(e)) from None
    url = t.get("url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise t.error("url", url, "an http:// or https:// URL")
    cfg = ServerConfig(
        listen=listen,
        url=url,
        token_file=t.opt_str("token_file", "a path"),
        on_shutdown=t.str_("on_shutdown", d.on_shutdown, ("keep", "terminate")),
        state_dir=t.opt_str("state_dir", "a path"),
        allow_remote=t.bool_("allow_remote", False),
        tls_cert=t.opt_str("tls_cert", "a path to a PEM certificate"),
        tls_key=t.opt_str("tls_key", "a path to a PEM private key"),
        header_timeout=t.duration("header_timeout", d.header_timeout, minimum=0.1, maximum=b.MAX_WAIT),
        body_timeout=t.duration("body_timeout", d.body_timeout, minimum=0.1, maximum=b.MAX_WAIT),
        keep_alive=t.duration("keep_alive", d.keep_alive, minimum=0.1, maximum=b.MAX_WAIT),
    )
    if (cfg.tls_cert is None) != (cfg.tls_key is None):
        raise t.error("tls_cert" if cfg.tls_cert is None else "tls_key", None,
                      "tls_cert and tls_key together (or neither)")
    t.finish(())
    return cfg


def parse_config(data: dict[str, Any], where: str, tables: ProviderTables, path: Path | None = None) -> Config:
    """A Config from a pool file's data; ConfigError names `where`, the pool, the key, the value and what
    is allowed."""
    top = TableReader(data, where)
    pools_t = top.sub("pools")
    if pools_t is None or not pools_t.data:
        raise ConfigError(f"{where}: no pools: add at least one [pools.NAME] table")
    pools: dict[str, PoolConfig] = {}
    for name in pools_t.data:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"{where}: pool name {name!r} is not allowed: use letters, digits, '-' and '_'")
        sub = pools_t.sub(name)
        assert sub is not None
        sub.where = f"{where}: pool '{name}'"
        pools[name] = _pool(name, sub, tables)
    server = _server(top.sub("server"))
    top.finish(())
    state_dir = Path(server.state_dir).expanduser() if server.state_dir else None
    if state_dir and path and not state_dir.is_absolute():
        state_dir = path.parent / state_dir
    return Config(pools=pools, server=server, path=path, state_dir=state_dir)


def read_pool_file(path: Path, tables: ProviderTables) -> Config:
    """Read and validate a pool file; ConfigError names the file, pool, key, value and what is allowed."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the pool file: {e.strerror or e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_config(data, str(path), tables, path.resolve())
