"""`poolui serve`: one PoolManager behind uvicorn, with poolui's own signal handling.

First SIGTERM/SIGINT: stop accepting, end event streams, let in-flight requests finish (up to `grace`),
then stop the pools keeping (default) or terminating their sandboxes per [server].on_shutdown.
A second signal exits at once; whatever runs is adopted by the next start on the same state directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from .. import paths
from ..addresses import is_loopback, split_host_port, url_of
from ..config import Config
from ..core.manager import PoolManager
from ..errors import ConfigError
from .app import ServerOptions, create_app
from .auth import loose_permissions, server_token
from .deadlines import deadline_protocol

T = TypeVar("T")

log = logging.getLogger("poolui.server")


@dataclass
class ServeOptions:
    listen: str | None = None  # HOST:PORT; port 0 picks a free one (printed on the ready line)
    token_file: str | None = None
    state_dir: str | None = None
    on_shutdown: str | None = None  # keep | terminate; default from the pool file
    grace: float = 10.0  # how long in-flight requests may take after the first signal
    log_level: str = "warning"
    events_queue: int = 1000
    events_write_timeout: float = 10.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # serve() owns the signals: uvicorn's own handler re-raises them after shutdown, which would kill
        # the process before the pools are stopped.
        yield


def split_listen(listen: str) -> tuple[str, int]:
    try:
        return split_host_port(listen)
    except ValueError as e:
        raise ConfigError(f"listen address {listen!r} is not allowed: expected {e}") from None


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run the server's coroutine on uvloop when it is installed (a dependency on Linux), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def freeze_heap() -> int:
    """Move every object alive now out of the collector's sight; how many were moved.

    What start-up made (the imported modules, FastAPI's routes and models, the pools) lives as long as the
    server, yet every full collection walked it again: measured, 38-49 ms for the start-up heap, and the
    allocations of a refill burst set such collections off in the middle of claims (40-59 ms maximums).
    Frozen, a collection only walks what was made since. One collection first, so the garbage start-up left
    is freed rather than kept for ever."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP is what makes asyncio set TCP_NODELAY on accepted connections; with proto 0 every
    # response written in two parts waits ~40 ms for the peer's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def _prepare(config: Config, opts: ServeOptions) -> tuple[Path, str, str, str]:
    """State directory, shutdown policy and token; blocking file work, done before the loop gets busy."""
    state_dir = paths.state_dir(opts.state_dir, config.state_dir)
    on_shutdown = opts.on_shutdown or config.server.on_shutdown
    if on_shutdown not in ("keep", "terminate"):
        raise ConfigError(f"on_shutdown = {on_shutdown!r} is not allowed: expected keep or terminate")
    token, token_source = server_token(state_dir, opts.token_file or config.server.token_file)
    token_path = paths.token_file(opts.token_file, config.server.token_file, state_dir)
    if not token_source.startswith("$") and loose_permissions(token_path):
        print(f"poolui: warning: {token_path} can be read by others than its owner; chmod 600 it",
              file=sys.stderr)
    return state_dir, on_shutdown, token, token_source


def check_exposure(host: str, config: Config) -> bool:
    """True when the server serves TLS. A listener beyond loopback would send the bearer token over the
    network, so it needs `[server] allow_remote = true` and a certificate; else ConfigError saying so."""
    srv = config.server
    tls = srv.tls_cert is not None and srv.tls_key is not None
    if is_loopback(host):
        return tls
    if not srv.allow_remote:
        raise ConfigError(f"listen host {host!r} is not loopback: the API and its bearer token would be reachable "
                          "from the network. Set [server] allow_remote = true with tls_cert and tls_key to "
                          "serve HTTPS there, or listen on 127.0.0.1")
    if not tls:
        raise ConfigError(f"listen host {host!r} with allow_remote needs TLS: set [server] tls_cert and tls_key "
                          "(PEM files); the token is never sent in plain HTTP beyond loopback")
    return True


async def serve(config: Config, opts: ServeOptions) -> int:
    host, port = split_listen(opts.listen or config.server.listen)
    tls = check_exposure(host, config)
    state_dir, on_shutdown, token, token_source = _prepare(config, opts)
    sock = bind(host, port)
    manager = PoolManager(config, state_dir=state_dir)
    try:
        await manager.start()
    except BaseException:
        sock.close()
        raise
    server_opts = ServerOptions(events_queue=opts.events_queue, events_write_timeout=opts.events_write_timeout)
    app = create_app(manager, token, server_opts)
    srv = config.server
    # Slow and silent clients are dropped: keep-alive by uvicorn, headers and bodies by deadlines.py.
    server = _Server(uvicorn.Config(app, lifespan="off", access_log=False, log_level=opts.log_level,
                                    timeout_graceful_shutdown=int(max(1, opts.grace)), server_header=False,
                                    ssl_certfile=srv.tls_cert if tls else None,
                                    ssl_keyfile=srv.tls_key if tls else None,
                                    http=deadline_protocol(srv.header_timeout, srv.body_timeout),
                                    timeout_keep_alive=srv.keep_alive))  # type: ignore[arg-type]  # a float works
    server.config.load()  # uvicorn's own imports and the protocol class, before the heap is frozen
    freeze_heap()
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            print("poolui: second signal: exiting now; running sandboxes are adopted by the next start",
                  file=sys.stderr, flush=True)
            os._exit(128 + signum)
        print(f"poolui: {signal.Signals(signum).name}: finishing requests, then "
              f"{'keeping' if on_shutdown == 'keep' else 'terminating'} the sandboxes (again to exit at once)",
              file=sys.stderr, flush=True)
        server_opts.stopping.set()
        server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        bound_host, bound_port = sock.getsockname()[:2]
        where = url_of(bound_host, bound_port, "https" if tls else "http")
        print(f"poolui: serving {where} pools: {', '.join(manager.pools)}; "
              f"token: {token_source}; state: {state_dir}; on shutdown: {on_shutdown}", flush=True)
        await server.serve(sockets=[sock])
    finally:
        server_opts.stopping.set()
        sock.close()
        await manager.stop(keep=on_shutdown == "keep")
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    print("poolui: stopped", file=sys.stderr, flush=True)
    return 0
