"""The one way to a control object: where the server is, which token to send, or the pools embedded.

Server URL: --server, else $POOLUI_SERVER, else the pool file's [server] table (url, else listen).
Token: $POOLUI_TOKEN, else --token-file, else [server].token_file, else the state directory's token file.
The pool file is read only when the first two give no answer, so `--server URL` never needs one.

open_control() decides between remote and embedded for the console: a server named explicitly is used even
while it is down (the console opens disconnected and keeps retrying); otherwise the pool file's server if it
answers, else the pools run in this process when every one of them runs on this machine.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from . import paths
from .addresses import split_host_port, url_of
from .errors import ConfigError, PoolError, ServerUnreachable

if TYPE_CHECKING:
    from .client import PoolClient
    from .config import Config
    from .control import Control
    from .core.manager import PoolManager

    def _both_meet_the_contract(m: PoolManager, c: PoolClient) -> tuple[Control, Control]:
        return m, c  # mypy checks this assignment: a verb missing on either side fails the type check

SERVER_ENV = "POOLUI_SERVER"
# What an embedded console leaves running when it ends: nothing; the claimed sandboxes only (the rest are
# terminated); or everything. What is left is adopted by the next start on the same state directory.
Keep = Literal["nothing", "claimed", "all"]


@dataclass
class Endpoint:
    url: str
    url_source: str  # for messages: "--server", "$POOLUI_SERVER", "FILE [server].listen", ...
    token: str | None
    token_source: str  # never the token itself


def load(config: str | os.PathLike[str] | None) -> Config:
    """The pool file named (--config), else $POOLUI_CONFIG's, else the bundled local one."""
    from .pool_file import config_path, load_config

    return load_config(config_path(config))


def url_from_listen(listen: str) -> str:
    try:
        host, port = split_host_port(listen)
    except ValueError as e:
        raise ConfigError(f"listen address {listen!r} is not allowed: expected {e}") from None
    return url_of(host, port)


def find_endpoint(server: str | None = None, config: str | os.PathLike[str] | None = None,
                  token_file: str | os.PathLike[str] | None = None,
                  state_dir: str | os.PathLike[str] | None = None) -> Endpoint:
    """Resolve URL and token; raises ConfigError when a named file cannot be read."""
    cfg: Config | None = None

    def cfg_() -> Config:
        nonlocal cfg
        if cfg is None:
            cfg = load(config)
        return cfg

    if server:
        url, url_source = server, "--server"
    elif os.environ.get(SERVER_ENV):
        url, url_source = os.environ[SERVER_ENV], f"${SERVER_ENV}"
    else:
        c = cfg_()
        where = str(c.path or "the pool file")
        if c.server.url:
            url, url_source = c.server.url, f"{where} [server].url"
        else:
            url, url_source = url_from_listen(c.server.listen), f"{where} [server].listen"
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"server address {url!r} ({url_source}) is not allowed: expected an http:// URL")
    if os.environ.get(paths.TOKEN_ENV):
        return Endpoint(url, url_source, os.environ[paths.TOKEN_ENV].strip(), f"${paths.TOKEN_ENV}")
    if token_file:
        path, source = Path(token_file).expanduser(), "--token-file"
    else:
        # The pool file names a token file or a state directory; with neither, the default state dir.
        # When --server came without --config, the pool file is still read if one was named or set.
        from .pool_file import CONFIG_ENV

        try:
            c2 = cfg_() if (config or os.environ.get(CONFIG_ENV) or cfg is not None) else None
        except ConfigError:
            c2 = None
        configured = c2.server.token_file if c2 is not None else None
        path = paths.token_file(None, configured, paths.state_dir(state_dir, c2.state_dir if c2 else None))
        source = f"{c2.path} [server].token_file" if configured and c2 is not None else str(path)
    token = paths.read_token(path)
    return Endpoint(url, url_source, token, source if token is not None else f"{source} (missing)")


def connect(server: str | None = None, config: str | os.PathLike[str] | None = None,
            token_file: str | os.PathLike[str] | None = None, state_dir: str | os.PathLike[str] | None = None,
            timeout: float = 10.0) -> PoolClient:
    """A client for the server that the arguments, environment and pool file point at (not yet contacted)."""
    from .client import PoolClient

    endpoint = find_endpoint(server, config, token_file, state_dir)
    return PoolClient(endpoint.url, endpoint.token, timeout=timeout)


@dataclass
class Opened:
    """What open_control() gave: the control object and, for people, where it leads."""

    control: Control
    source: str  # the server's URL, or the pool file run embedded
    endpoint: Endpoint | None  # how the server was looked for (None when embedded was asked for)
    keep: Keep = "nothing"  # embedded: what to leave running at the end, for the next start to adopt
    stopper: Callable[[Keep], Awaitable[None]] | None = field(default=None, repr=False, compare=False)

    async def close(self) -> None:
        """Embedded: stop the pools now, leaving running what `keep` says (the end of open_control does it
        otherwise; it happens once). Remote: nothing to stop."""
        stop, self.stopper = self.stopper, None
        if stop is not None:
            await stop(self.keep)


@asynccontextmanager
async def open_control(server: str | None = None, config: str | os.PathLike[str] | None = None,
                       token_file: str | os.PathLike[str] | None = None,
                       state_dir: str | os.PathLike[str] | None = None,
                       embedded: bool | None = None, timeout: float = 10.0) -> AsyncIterator[Opened]:
    """The control object: remote (explicit server, else a reachable one) or embedded, closed at the end.

    embedded=True runs the pools here; False always connects (even to a server that is down); None decides
    as the module docstring says. Raises Unauthorized when a server refuses the token, ServerUnreachable
    when none answers and the pools cannot run here, ConfigError for a bad pool file.
    """
    from .client import PoolClient

    endpoint = None
    if embedded is not True:
        endpoint = find_endpoint(server, config, token_file, state_dir)
        client = PoolClient(endpoint.url, endpoint.token, timeout=timeout)
        explicit = bool(server or os.environ.get(SERVER_ENV)) or embedded is False
        try:
            if not explicit:
                await client.ping()  # Unauthorized goes to the caller: a server is there and refuses us
        except ServerUnreachable:
            await client.aclose()
        except BaseException:
            await client.aclose()
            raise
        else:
            try:
                yield Opened(client, endpoint.url, endpoint)
            finally:
                await client.aclose()
            return
    async with _embedded(config, state_dir, endpoint) as opened:
        yield opened


@asynccontextmanager
async def _embedded(config: str | os.PathLike[str] | None, state_dir: str | os.PathLike[str] | None,
                    endpoint: Endpoint | None) -> AsyncIterator[Opened]:
    from .core.manager import PoolManager
    from .providers.registry import runs_here

    cfg = load(config)
    elsewhere = sorted({p.provider for p in cfg.pools.values() if not runs_here(p.provider)})
    if elsewhere:
        where = f" at {endpoint.url} ({endpoint.url_source})" if endpoint else ""
        raise ServerUnreachable(
            f"no poolui server answers{where}, and the pools of {cfg.path} use {', '.join(elsewhere)}, which "
            f"do not run embedded; start one with `poolui serve --config {cfg.path}` or name it with --server URL")
    manager = PoolManager(cfg, state_dir=state_dir)
    await manager.start()
    opened = Opened(manager, str(cfg.path), endpoint, stopper=partial(_stop, manager))
    try:
        yield opened
    finally:
        await opened.close()


async def _stop(manager: PoolManager, keep: Keep) -> None:
    """Stop the embedded pools, leaving running what `keep` says. For "claimed", refill is paused first so
    that nothing new becomes ready, then every sandbox not claimed is terminated."""
    try:
        if keep == "claimed":
            snaps = await manager.list_pools()
            for snap in snaps:
                if snap.state not in ("draining", "drained"):  # a draining pool refills nothing already
                    await manager.pause(snap.name)
            for snap in await manager.list_pools(members=True):
                idle = [m.id for m in snap.members if m.state not in ("claimed", "terminating", "gone")]
                if idle:
                    await manager.terminate(snap.name, idle)
    except PoolError:
        pass  # stopped below all the same, keeping what is left: never kill a claimed one by mistake
    finally:
        await manager.stop(keep=keep in ("claimed", "all"))
