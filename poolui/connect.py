"""The one way to a control object: where the server is, which token to send, or the pools embedded.

Server URL: --server, else $POOLUI_SERVER, else the pool file's [server] table (url, else listen).
Token: $POOLUI_TOKEN, else --token-file, else [server].token_file, else the state directory's token file.
The pool file is read only when the first two give no answer, so `--server URL` never needs one.

open_control() decides between remote and embedded for the console: a server named explicitly is used even
while it is down (the console opens disconnected and keeps retrying); otherwise the pool file's server if it
answers and runs that file's pools (another file's server is refused: ServerMismatch, never shown or
steered), else the pools run in this process when every one of them runs on this machine. A console on the
pool file's server asks it again after every outage (Opened.check): whoever answers then may run another file.
A refused token is said in words of files and flags (`refused`), whichever call of the console meets it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import paths
from .addresses import split_host_port, url_of
from .errors import ConfigError, PoolError, ServerMismatch, ServerUnreachable, Unauthorized

if TYPE_CHECKING:
    from .client import PoolClient
    from .config import Config
    from .control import Control
    from .core.manager import PoolManager
    from .core.model import PoolSnapshot

    def _both_meet_the_contract(m: PoolManager, c: PoolClient) -> tuple[Control, Control]:
        return m, c  # mypy checks this assignment: a verb missing on either side fails the type check

SERVER_ENV = "POOLUI_SERVER"
# What an embedded console leaves running when it ends: nothing; the claimed sandboxes only (the rest are
# terminated); or everything. What is left is adopted by the next start on the same state directory.
Keep = Literal["nothing", "claimed", "all"]


@dataclass
class Endpoint:
    url: str
    url_source: str  # for messages: "--server", "$POOLUI_SERVER", "the [server] listen address of FILE", ...
    token: str | None
    token_source: str  # for messages, never the token itself: "$POOLUI_TOKEN", or the token file and who named it
    token_path: Path | None = None  # the token file read; None when the token came from $POOLUI_TOKEN
    # The pool file whose [server] table gave the URL, and which of its keys ("url" or "listen"): the server
    # found there must run that file's pools. None when the server was named (--server, $POOLUI_SERVER).
    pool_file: Config | None = None
    found_by: Literal["url", "listen"] | None = None


def load(config: str | os.PathLike[str] | None) -> Config:
    """The pool file named (--config), else $POOLUI_CONFIG's, else the user's copy of the bundled local one
    (made on first use: pool_file.user_config)."""
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

    pool_file: Config | None = None
    found_by: Literal["url", "listen"] | None = None
    if server:
        url, url_source = server, "--server"
    elif os.environ.get(SERVER_ENV):
        url, url_source = os.environ[SERVER_ENV], f"${SERVER_ENV}"
    else:
        pool_file = c = cfg_()
        where = str(c.path or "the pool file")
        if c.server.url:
            url, url_source, found_by = c.server.url, f"the [server] url of {where}", "url"
        else:
            url, url_source = url_from_listen(c.server.listen), f"the [server] listen address of {where}"
            found_by = "listen"
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"server address {url!r} ({url_source}) is not allowed: expected an http:// URL")
    if os.environ.get(paths.TOKEN_ENV):
        token: str | None = os.environ[paths.TOKEN_ENV].strip()
        token_source, path = f"${paths.TOKEN_ENV}", None
    else:
        # The pool file names a token file or a state directory; with neither, the default state dir.
        # When --server came without --config, the pool file is still read if one was named or set.
        from .pool_file import CONFIG_ENV

        try:
            c2 = cfg_() if (config or os.environ.get(CONFIG_ENV) or cfg is not None) else None
        except ConfigError:
            c2 = None
        read, token_source = _token_file(token_file, state_dir, c2)
        token, path = paths.read_token(read), read
    return Endpoint(url, url_source, token, token_source, path, pool_file, found_by)


def _token_file(token_file: str | os.PathLike[str] | None, state_dir: str | os.PathLike[str] | None,
                cfg: Config | None) -> tuple[Path, str]:
    """The token file to read, and for messages the file with who named it."""
    if token_file:
        path = Path(token_file).expanduser()
        return path, f"{path} (--token-file)"
    if cfg is not None and cfg.server.token_file:
        path = Path(cfg.server.token_file).expanduser()
        return path, f"{path} (the [server] token_file of {cfg.path})"
    path = paths.token_file(None, None, paths.state_dir(state_dir, cfg.state_dir if cfg else None))
    if state_dir:
        return path, f"{path} (in --state-dir)"
    if cfg is not None and cfg.state_dir:
        return path, f"{path} (in the [server] state_dir of {cfg.path})"
    return path, f"{path} (the default token file)"


def refused(endpoint: Endpoint, e: Unauthorized) -> Unauthorized:
    """The Unauthorized a person reads: which server refused, which token file was read, what to do (never
    the HTTP words of the server's own answer)."""
    server = f"the poolui server at {endpoint.url} ({endpoint.url_source})"
    if endpoint.token is None:
        head = f"{server} needs a token and found none: {endpoint.token_source} is missing or empty"
    else:
        head = f"{server} refused the token from {endpoint.token_source}"
    fix = ("pass the token file of that server with --token-file FILE (`poolui serve` names it as it starts, "
           "after 'token:'), or set $POOLUI_TOKEN")
    if endpoint.pool_file is not None and endpoint.found_by == "listen":
        fix += (f"; if that server does not run the pools of {endpoint.pool_file.path}, give that file a "
                "[server] listen address no server uses")
    return Unauthorized(f"{head}; {fix}", reason=e.reason)


def mismatch(endpoint: Endpoint, pools: list[str], their_file: str | None,
             running: bool = False) -> ServerMismatch | None:
    """Why the server found through a pool file's [server] table does not run that file's pools (their
    names, the file it read), or None when it does. A server named explicitly is never second-guessed.
    `running`: said to a console already open on that file's pools (its server was replaced while it ran)."""
    cfg = endpoint.pool_file
    if cfg is None:
        return None
    ours = list(cfg.pools)
    if their_file and cfg.path is not None and _same_file(their_file, cfg.path):
        return None
    # A server behind a [server] url may see the file under another path; one that read no file says
    # nothing about a path. Then its pools' names are all there is to go by.
    if (endpoint.found_by == "url" or not their_file) and sorted(pools) == sorted(ours):
        return None
    theirs = f"the pool file {their_file}" if their_file else "pools read from no file"
    runs = (f"the poolui server at {endpoint.url} ({endpoint.url_source}) runs {theirs} (pools: "
            f"{', '.join(pools) or 'none'}), not {cfg.path} (pools: {', '.join(ours)})")
    if running:  # the console says the file once (in the address's source) and that it checks again itself
        return ServerMismatch(
            f"the poolui server at {endpoint.url} ({endpoint.url_source}) now runs {theirs} (pools: "
            f"{', '.join(pools) or 'none'}), not this file's pools ({', '.join(ours)}): not shown or changed "
            f"here. Start this file's server (`poolui serve --config {cfg.path}`) and the console reconnects "
            f"by itself; to use that server instead, restart the console with --server {endpoint.url}")
    said = (f"{runs}; not connecting, so that no other pools are shown or changed. To use that server anyway, "
            f"pass --server {endpoint.url}")
    if endpoint.found_by == "url":
        return ServerMismatch(f"{said}; otherwise correct the [server] url of {cfg.path}")
    return ServerMismatch(f"{said}; to run the pools of {cfg.path}, give it a [server] listen address no server "
                          f"uses (the console then runs them itself, or `poolui serve --config {cfg.path}` does)")


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them is not on this machine (any more)
        return os.path.realpath(a) == os.path.realpath(b)


async def check_server(client: PoolClient, endpoint: Endpoint, running: bool = False) -> None:
    """Raise ServerMismatch unless the server found through a pool file runs that file's pools; Unauthorized
    (as `refused` words it) or ServerUnreachable when it cannot be asked. `running`: asked again by a console
    open on those pools, after its server went away (whoever answers now may run another file)."""
    if endpoint.pool_file is None:
        return
    try:
        pools, their_file = await client.names(), await client.config_path()
    except Unauthorized as e:
        raise refused(endpoint, e) from None
    if (wrong := mismatch(endpoint, pools, their_file, running)) is not None:
        raise wrong


def _worded_client(endpoint: Endpoint, timeout: float) -> PoolClient:
    """A client whose refused token is said as `refused` says it (the server and the token file, never the
    server's HTTP words), whichever call meets it while the console runs: a fetch, a resize, a claim."""
    from .client import PoolClient  # here, not at the top: `check` and the CLI's start stay light

    class Worded(PoolClient):
        async def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
                        params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
            try:
                return await super()._call(method, path, body, params, timeout)
            except Unauthorized as e:
                raise refused(endpoint, e) from None

    return Worded(endpoint.url, endpoint.token, timeout=timeout)


def fetch_pools(endpoint: Endpoint, pool: str | None = None, members: bool = False,
                timeout: float = 10.0) -> list[PoolSnapshot]:
    """The synchronous client's pools (`check`: no asyncio), after the check of check_server on the same /info
    answer; a refused token is worded as `refused` words it."""
    from .client_sync import fetch_pools as fetch
    from .client_sync import get_json

    try:
        if endpoint.pool_file is not None:
            info = get_json(endpoint.url, endpoint.token, "/info", timeout)
            if (wrong := mismatch(endpoint, list(info.get("pools") or ()), info.get("config_path"))) is not None:
                raise wrong
        return fetch(endpoint.url, endpoint.token, pool, members=members, timeout=timeout)
    except Unauthorized as e:
        raise refused(endpoint, e) from None


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
    # Remote, with the server found through the pool file: asks that server again whether it runs the file's
    # pools (check_server, worded for a running console). A console calls it after every outage. None
    # otherwise: embedded, or a server named with --server / $POOLUI_SERVER (never second-guessed).
    check: Callable[[], Awaitable[None]] | None = field(default=None, repr=False, compare=False)

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
    as the module docstring says. A server found through the pool file is asked first what it runs:
    ServerMismatch when those are not the file's pools. Raises Unauthorized (naming the server and the token
    file) when a server refuses the token, ServerUnreachable when none answers and the pools cannot run
    here, ConfigError for a bad pool file.
    """
    endpoint = None
    if embedded is not True:
        endpoint = find_endpoint(server, config, token_file, state_dir)
        client = _worded_client(endpoint, timeout)
        try:
            await check_server(client, endpoint)  # a server found through the pool file must run its pools
            remote = True
        except ServerUnreachable:
            remote = embedded is False  # else nothing answers at the pool file's address: the pools run here
            if not remote:
                await client.aclose()
        except BaseException:
            await client.aclose()
            raise
        if remote:
            check = partial(check_server, client, endpoint, running=True) if endpoint.pool_file else None
            try:
                yield Opened(client, endpoint.url, endpoint, check=check)
            except Unauthorized as e:
                raise refused(endpoint, e) from None
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
