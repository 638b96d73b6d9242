"""Where the server is and which token to send, for the console and the headless CLI.

Server URL: --server, else $POOLUI_SERVER, else the pool file's [server] table (url, else listen).
Token: $POOLUI_TOKEN, else --token-file, else [server].token_file, else the state directory's token file.
The pool file is read only when the first two give no answer, so `--server URL` never needs one.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, ServerUnreachable, Unauthorized

if TYPE_CHECKING:
    from .client import PoolClient
    from .config import Config
    from .core.manager import PoolManager

SERVER_ENV = "POOLUI_SERVER"
TOKEN_ENV = "POOLUI_TOKEN"
CONFIG_ENV = "POOLUI_CONFIG"


@dataclass
class Endpoint:
    url: str
    url_source: str  # for messages: "--server", "$POOLUI_SERVER", "FILE [server].listen", ...
    token: str | None
    token_source: str  # never the token itself


def config_path(config: str | os.PathLike[str] | None) -> Path:
    """--config, else $POOLUI_CONFIG, else the bundled local pool file."""
    from .config import DEFAULT_CONFIG

    if config:
        return Path(config)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return DEFAULT_CONFIG


def load(config: str | os.PathLike[str] | None) -> Config:
    from .config import load_config

    return load_config(config_path(config))


def url_from_listen(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def state_dir_of(cfg: Config | None, state_dir: str | os.PathLike[str] | None = None) -> Path:
    from .core.store import default_state_dir

    if state_dir:
        return Path(state_dir).expanduser()
    if cfg is not None and cfg.state_dir is not None:
        return cfg.state_dir
    return default_state_dir()


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

    if os.environ.get(TOKEN_ENV):
        return Endpoint(url, url_source, os.environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}")
    if token_file:
        path, source = Path(token_file).expanduser(), "--token-file"
    else:
        # The pool file names a token file or a state directory; with neither, the default state dir.
        # When --server came without --config, the pool file is still read if one was named or set.
        try:
            c2: Config | None = cfg_() if (config or os.environ.get(CONFIG_ENV) or cfg is not None) else None
        except ConfigError:
            c2 = None
        if c2 is not None and c2.server.token_file:
            path, source = Path(c2.server.token_file).expanduser(), f"{c2.path} [server].token_file"
        else:
            path = state_dir_of(c2, state_dir) / "token"
            source = f"{path}"
    token = read_token(path)
    return Endpoint(url, url_source, token, source if token is not None else f"{source} (missing)")


def read_token(path: Path) -> str | None:
    """The token in `path`, or None when there is no such file (the server then answers 401)."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the token file: {e.strerror or e}") from None
    return text or None


def make_client(endpoint: Endpoint, timeout: float = 10.0) -> PoolClient:
    from .client import PoolClient

    return PoolClient(endpoint.url, endpoint.token, timeout=timeout)


def connect(server: str | None = None, config: str | os.PathLike[str] | None = None,
            token_file: str | os.PathLike[str] | None = None, state_dir: str | os.PathLike[str] | None = None,
            timeout: float = 10.0) -> PoolClient:
    """A client for the server that the arguments, environment and pool file point at (not yet contacted)."""
    return make_client(find_endpoint(server, config, token_file, state_dir), timeout)


@asynccontextmanager
async def open_control(server: str | None = None, config: str | os.PathLike[str] | None = None,
                       token_file: str | os.PathLike[str] | None = None,
                       state_dir: str | os.PathLike[str] | None = None,
                       embedded: bool | None = None) -> AsyncIterator[PoolClient | PoolManager]:
    """The control object for the console: the server if one answers, else the pools embedded in-process.

    embedded=True forces in-process, False forces remote (raising ServerUnreachable when it is down);
    None (default) tries the server and falls back to embedded only when no server was named explicitly
    (no --server, no $POOLUI_SERVER) and none answers at the pool file's address.
    """
    explicit = bool(server or os.environ.get(SERVER_ENV))
    if embedded is not True:
        endpoint = find_endpoint(server, config, token_file, state_dir)
        client = make_client(endpoint)
        try:
            await client.ping()
        except Unauthorized:
            await client.aclose()
            raise
        except ServerUnreachable:
            await client.aclose()
            if explicit or embedded is False:
                raise
        else:
            try:
                yield client
            finally:
                await client.aclose()
            return
    from .core.manager import PoolManager

    cfg = load(config)
    async with PoolManager(cfg, state_dir=state_dir_of(cfg, state_dir)) as manager:
        yield manager
