"""Deciding what the console talks to, and cleaning up after it.

The server is found as the headless CLI finds it (poolui/connect.py). A server named explicitly (--server,
$POOLUI_SERVER) is used even while it is down: the console opens disconnected and keeps retrying. Otherwise,
when nothing answers at the pool file's address and every pool of the file runs on this machine, the pools
run embedded in the console's process and are stopped (their sandboxes terminated) when it quits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from .. import connect
from ..errors import PoolError, ServerUnreachable, Unauthorized

if TYPE_CHECKING:
    from .app import PoolApp

EMBEDDABLE = ("local", "instant")


async def launch(args: argparse.Namespace, app_cls: type[PoolApp], *, headless: bool = False) -> int:
    config = getattr(args, "config", None)
    server = getattr(args, "server", None)
    token_file = getattr(args, "token_file", None)
    state_dir = getattr(args, "state_dir", None)
    read_only = bool(getattr(args, "read_only", False))
    explicit = bool(server or os.environ.get(connect.SERVER_ENV))
    try:
        endpoint = connect.find_endpoint(server, config, token_file, state_dir)
    except PoolError as e:
        print(f"poolui: {e}", file=sys.stderr)
        return 2
    client = connect.make_client(endpoint)
    try:
        await client.ping()
        reachable = True
    except Unauthorized as e:
        await client.aclose()
        print(f"poolui: {e} (token from {endpoint.token_source})", file=sys.stderr)
        return 2
    except ServerUnreachable:
        reachable = False
    if reachable or explicit:
        try:
            app = app_cls(client, source=endpoint.url, read_only=read_only)
            return await _run(app, headless)
        finally:
            await client.aclose()
    await client.aclose()

    try:
        cfg = connect.load(config)
    except PoolError as e:
        print(f"poolui: {e}", file=sys.stderr)
        return 2
    remote_only = sorted({p.provider for p in cfg.pools.values()} - set(EMBEDDABLE))
    if remote_only:
        print(f"poolui: no poolui server answers at {endpoint.url} ({endpoint.url_source}), and the pools of "
              f"{cfg.path} use {', '.join(remote_only)}, which the console does not run embedded; start one "
              f"with `poolui serve --config {cfg.path}` or name it with --server URL", file=sys.stderr)
        return 3
    from ..core.manager import PoolManager

    manager = PoolManager(cfg, state_dir=connect.state_dir_of(cfg, state_dir))
    try:
        await manager.start()
    except PoolError as e:
        print(f"poolui: cannot run the pools of {cfg.path} embedded: {e}", file=sys.stderr)
        return 2
    try:
        app = app_cls(manager, source=str(cfg.path), read_only=read_only)
        return await _run(app, headless)
    finally:
        live = sum(len(p.members) for p in manager.pools.values())
        await manager.stop(keep=False)
        if live:
            print(f"poolui: stopped the embedded pools of {cfg.path}; terminated {live} "
                  f"sandbox{'es' if live != 1 else ''}", file=sys.stderr)


async def _run(app: Any, headless: bool) -> int:
    # A terminal closed or a `kill` quits like `q`, so an embedded pool is still stopped and cleaned up.
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGHUP)
    for sig in signals:
        loop.add_signal_handler(sig, app.exit, 128 + sig)
    try:
        code = await app.run_async(headless=headless)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    return int(code or 0)
