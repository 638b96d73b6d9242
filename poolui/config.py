"""Pool files: TOML to dataclasses (tomllib), validation with clear errors, atomic rewrites (tomli-w)."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, overload

import tomli_w

from .durations import ALLOWED as DURATION_ALLOWED
from .durations import format_duration, parse_duration
from .errors import ConfigError

PROVIDERS = {
    "local": "poolui.providers.local",
    "docker": "poolui.providers.docker",
    "modal": "poolui.providers.modal",
    "instant": "poolui.providers.instant",  # no real sandboxes: benchmarks and fault-injection tests
}
ON_EMPTY = ("wait", "create", "fail")
PROBE_KINDS = ("http", "tcp", "exec")
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "local.toml"


@dataclass(frozen=True)
class ProbeConfig:
    kind: str = "http"  # http | tcp | exec
    path: str = "/"
    argv: tuple[str, ...] = ()
    timeout: float = 10.0  # readiness: the whole wait; health: one probe
    interval: float = 0.05

    def to_toml(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.kind == "http":
            out["http"] = self.path
        elif self.kind == "tcp":
            out["tcp"] = True
        else:
            out["exec"] = list(self.argv)
        out["timeout"] = format_duration(self.timeout)
        out["interval"] = format_duration(self.interval)
        return out


@dataclass(frozen=True)
class Limits:
    memory: int | None = None  # bytes
    pids: int | None = None


@dataclass(frozen=True)
class PoolConfig:
    name: str
    provider: str = "local"
    command: tuple[str, ...] = ()
    target_ready: int = 3
    min_ready: int = 1
    max_ready: int = 10
    max_total: int = 20
    ttl: float = 300.0
    min_remaining_ttl: float = 0.0
    ttl_jitter: float = 0.05  # fraction of ttl taken off at random, so members made together do not expire together
    readiness: ProbeConfig = ProbeConfig(kind="http", timeout=10.0, interval=0.02)
    health: ProbeConfig | None = ProbeConfig(kind="http", timeout=2.0, interval=10.0)
    maintenance_interval: float = 30.0
    on_empty: str = "wait"
    claim_timeout: float = 10.0
    max_concurrent_creates: int = 4
    create_retries: int = 3
    limits: Limits = Limits()
    read_only: bool = False
    options: Any = None  # the provider's own parsed table ([pools.NAME.local|docker|modal])
    raw_options: dict[str, Any] = field(default_factory=dict)

    @cached_property  # read for every member on every reconcile: hashing each time cost ~1 ms per claim
    def revision(self) -> str:
        """Changes when what a sandbox *is* changes; sizes and timings do not count."""
        body = json.dumps(
            [self.provider, list(self.command), self.raw_options, self.limits.memory, self.limits.pids],
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


@dataclass(frozen=True)
class Config:
    pools: dict[str, PoolConfig]
    server: ServerConfig = ServerConfig()
    path: Path | None = None
    state_dir: Path | None = None

    def pool(self, name: str) -> PoolConfig:
        return self.pools[name]


# ---------------------------------------------------------------- reading


class TableReader:
    """One TOML table being read: every key read is ticked off; the rest are unknown keys.

    Errors name where the table is, the key, the value and what is allowed; providers read their own
    [pools.NAME.PROVIDER] tables with it too.
    """

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where
        self.seen: set[str] = set()

    def error(self, key: str, value: object, allowed: str) -> ConfigError:
        return ConfigError(f"{self.where}: key '{key}' = {value!r} is not allowed: expected {allowed}")

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def has(self, key: str) -> bool:
        return key in self.data

    def int_(self, key: str, default: int, minimum: int = 0) -> int:
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.error(key, v, f"a whole number >= {minimum}")
        return v

    def opt_int(self, key: str, lo: int, hi: int | None = None) -> int | None:
        """A whole number from lo (to hi), or None when the key is absent."""
        v = self.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi)):
            allowed = f"a whole number from {lo} to {hi}" if hi is not None else f"a whole number >= {lo}"
            raise self.error(key, v, allowed)
        return v

    def float_(self, key: str, default: float, lo: float, hi: float) -> float:
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise self.error(key, v, f"a number from {lo} to {hi}")
        return float(v)

    def duration(self, key: str, default: float, minimum: float = 0.0) -> float:
        v = self.get(key, default)
        try:
            seconds = parse_duration(v)
        except ValueError:
            raise self.error(key, v, DURATION_ALLOWED) from None
        if seconds < minimum:
            raise self.error(key, v, f"{DURATION_ALLOWED}, at least {format_duration(minimum)}")
        return seconds

    @overload
    def size(self, key: str, default: int) -> int: ...
    @overload
    def size(self, key: str, default: None = None) -> int | None: ...
    def size(self, key: str, default: int | None = None) -> int | None:
        """Bytes (see parse_size), or None when the key is absent and there is no default."""
        v = self.get(key, default)
        if v is None:
            return None
        try:
            return parse_size(v)
        except ValueError as e:
            raise self.error(key, v, str(e)) from None

    def str_(self, key: str, default: str, choices: tuple[str, ...] | None = None, *, nonempty: bool = False) -> str:
        v = self.get(key, default)
        if not isinstance(v, str) or (choices and v not in choices) or (nonempty and not v):
            if choices:
                allowed = "one of " + ", ".join(f'"{c}"' for c in choices)
            else:
                allowed = "a non-empty string" if nonempty else "a string"
            raise self.error(key, v, allowed)
        return v

    def bool_(self, key: str, default: bool) -> bool:
        v = self.get(key, default)
        if not isinstance(v, bool):
            raise self.error(key, v, "true or false")
        return v

    def argv(
        self, key: str, default: tuple[str, ...] = (), example: str = '["python3", "-m", "http.server"]'
    ) -> tuple[str, ...]:
        v = self.get(key, list(default))
        if isinstance(v, str):
            v = v.split()
        if not isinstance(v, list) or not v or not all(isinstance(a, str) and a for a in v):
            raise self.error(key, v, f"a non-empty list of strings (an argv), e.g. {example}")
        return tuple(v)

    def str_list(self, key: str, default: tuple[str, ...], allowed: str) -> tuple[str, ...]:
        """A list of non-empty strings."""
        v = self.get(key, list(default))
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise self.error(key, v, allowed)
        return tuple(v)

    def str_map(self, key: str, key_re: re.Pattern[str] | None, allowed: str) -> dict[str, str]:
        """A table of strings whose keys match key_re (from their start); empty when absent."""
        v = self.get(key, {})
        ok = isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())
        if not ok or (key_re and not all(key_re.match(k) for k in v)):
            raise self.error(key, v, allowed)
        return dict(v)

    def sub(self, key: str) -> TableReader | None:
        v = self.get(key)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise self.error(key, v, "a table")
        return TableReader(v, f"{self.where}.{key}")

    def finish(self, allowed: tuple[str, ...], *, sort: bool = True) -> None:
        """Refuse unknown keys; the message lists the known ones, sorted or (sort=False) allowed's order first."""
        unknown = sorted(set(self.data) - self.seen - set(allowed))
        if unknown:
            known = sorted(self.seen | set(allowed)) if sort else [*allowed, *sorted(self.seen - set(allowed))]
            raise ConfigError(f"{self.where}: unknown key '{unknown[0]}'; allowed keys: {', '.join(known)}")


def parse_size(value: object) -> int:
    """Bytes from 256, "256MiB", "1G", "512k"."""
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        s = value.strip().lower().removesuffix("b").removesuffix("i")
        num = s.rstrip("kmg")
        unit = s[len(num):]
        try:
            n = float(num)
        except ValueError:
            n = -1
        if n > 0 and unit in units:
            return int(n * units[unit])
    raise ValueError('a size such as "256MiB", "1GiB" or a number of bytes')


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
    timeout = t.duration("timeout", default.timeout, minimum=0.001)
    interval = t.duration("interval", default.interval, minimum=0.001)
    t.finish(("enabled",))
    return ProbeConfig(kind=kind, path=path, argv=argv, timeout=timeout, interval=interval)


POOL_KEYS = (
    "provider", "command", "target_ready", "min_ready", "max_ready", "max_total", "ttl",
    "min_remaining_ttl", "ttl_jitter", "readiness", "health", "maintenance_interval", "on_empty",
    "claim_timeout", "max_concurrent_creates", "create_retries", "limits", "read_only",
) + tuple(PROVIDERS)


def _pool(name: str, t: TableReader) -> PoolConfig:
    d = PoolConfig(name=name)
    provider = t.str_("provider", "local", tuple(PROVIDERS))
    raw_opts = t.sub(provider)
    raw_options = dict(raw_opts.data) if raw_opts else {}
    options = importlib.import_module(PROVIDERS[provider]).parse_options(
        raw_options, f"{t.where}.{provider}"
    )
    needs_command = provider == "local"
    command = t.argv("command") if (needs_command or t.has("command")) else ()
    limits_t = t.sub("limits")
    limits = Limits()
    if limits_t:
        limits = Limits(memory=limits_t.size("memory"), pids=limits_t.opt_int("pids", 1))
        limits_t.finish(())
    cfg = PoolConfig(
        name=name,
        provider=provider,
        command=command,
        target_ready=t.int_("target_ready", d.target_ready),
        min_ready=t.int_("min_ready", d.min_ready),
        max_ready=t.int_("max_ready", d.max_ready),
        max_total=t.int_("max_total", d.max_total, minimum=1),
        ttl=t.duration("ttl", d.ttl, minimum=0.1),
        min_remaining_ttl=t.duration("min_remaining_ttl", d.min_remaining_ttl),
        ttl_jitter=t.float_("ttl_jitter", d.ttl_jitter, 0.0, 0.5),
        readiness=_probe(t.sub("readiness"), d.readiness, readiness=True) or d.readiness,
        health=_probe(t.sub("health"), d.health, readiness=False),
        maintenance_interval=t.duration("maintenance_interval", d.maintenance_interval, minimum=0.05),
        on_empty=t.str_("on_empty", d.on_empty, ON_EMPTY),
        claim_timeout=t.duration("claim_timeout", d.claim_timeout),
        max_concurrent_creates=t.int_("max_concurrent_creates", d.max_concurrent_creates, minimum=1),
        create_retries=t.int_("create_retries", d.create_retries, minimum=1),
        limits=limits,
        read_only=t.bool_("read_only", False),
        options=options,
        raw_options=raw_options,
    )
    t.finish(POOL_KEYS)
    check_sizes(cfg, t.where)
    if cfg.ttl <= cfg.min_remaining_ttl:
        raise ConfigError(
            f"{t.where}: ttl = {format_duration(cfg.ttl)} must be longer than min_remaining_ttl = "
            f"{format_duration(cfg.min_remaining_ttl)}, or no sandbox could ever be handed out"
        )
    return cfg


def check_sizes(cfg: PoolConfig, where: str) -> None:
    """The size rules, shared by the file reader and resize: min <= target <= max <= max_total."""
    if not cfg.min_ready <= cfg.target_ready <= cfg.max_ready:
        raise ConfigError(
            f"{where}: min_ready = {cfg.min_ready}, target_ready = {cfg.target_ready}, max_ready = "
            f"{cfg.max_ready} are not allowed: expected min_ready <= target_ready <= max_ready"
        )
    if cfg.max_ready > cfg.max_total:
        raise ConfigError(
            f"{where}: max_ready = {cfg.max_ready} is not allowed: expected at most max_total = {cfg.max_total}"
        )


def _server(t: TableReader | None) -> ServerConfig:
    if t is None:
        return ServerConfig()
    d = ServerConfig()
    listen = t.str_("listen", d.listen)
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise t.error("listen", listen, 'HOST:PORT, e.g. "127.0.0.1:8765"')
    url = t.get("url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise t.error("url", url, "an http:// or https:// URL")
    token_file = t.get("token_file")
    if token_file is not None and not isinstance(token_file, str):
        raise t.error("token_file", token_file, "a path")
    state_dir = t.get("state_dir")
    if state_dir is not None and not isinstance(state_dir, str):
        raise t.error("state_dir", state_dir, "a path")
    cfg = ServerConfig(
        listen=listen,
        url=url,
        token_file=token_file,
        on_shutdown=t.str_("on_shutdown", d.on_shutdown, ("keep", "terminate")),
        state_dir=state_dir,
    )
    t.finish(())
    return cfg


def parse_config(data: dict[str, Any], where: str, path: Path | None = None) -> Config:
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
        pools[name] = _pool(name, sub)
    server = _server(top.sub("server"))
    top.finish(())
    state_dir = Path(server.state_dir).expanduser() if server.state_dir else None
    if state_dir and path and not state_dir.is_absolute():
        state_dir = path.parent / state_dir
    return Config(pools=pools, server=server, path=path, state_dir=state_dir)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a pool file; ConfigError names the file, pool, key, value and what is allowed."""
    p = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the pool file: {e.strerror or e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    return parse_config(data, str(p), p.resolve())


# ---------------------------------------------------------------- writing


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_pool_sizes(path: Path, pool: str, **sizes: int) -> None:
    """Write new sizes of one pool into its file; every other pool, key and table is kept as it was.

    The file is re-read and the result validated before the atomic replace, so a bad value changes nothing.
    """
    data = tomllib.loads(path.read_text())
    table = data.get("pools", {}).get(pool)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: no pool '{pool}' to save")
    for key, value in sizes.items():
        if value is not None:
            table[key] = value
    parse_config(data, str(path), path)
    _atomic_write(path, tomli_w.dumps(data).encode())


def with_sizes(cfg: PoolConfig, target: int | None, min_ready: int | None, max_ready: int | None) -> PoolConfig:
    new = replace(
        cfg,
        target_ready=cfg.target_ready if target is None else target,
        min_ready=cfg.min_ready if min_ready is None else min_ready,
        max_ready=cfg.max_ready if max_ready is None else max_ready,
    )
    for key, v in (("target", target), ("min_ready", min_ready), ("max_ready", max_ready)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            from .errors import InvalidRequest

            raise InvalidRequest(f"pool '{cfg.name}': {key} = {v!r} is not allowed: expected a whole number >= 0")
    try:
        check_sizes(new, f"pool '{cfg.name}'")
    except ConfigError as e:
        from .errors import InvalidRequest

        raise InvalidRequest(str(e)) from None
    return new
