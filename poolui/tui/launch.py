"""Starting the console on what poolui.connect.open_control gives (remote or embedded), and cleaning up.

A server named explicitly (--server, $POOLUI_SERVER) is used even while it is down: the console opens
disconnected and keeps retrying. Otherwise the pool file's server if it answers, else the pools run
embedded in the console's process and are stopped (their sandboxes terminated) when it quits.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import TYPE_CHECKING, Any

from .. import connect
from ..errors import PoolError, ServerUnreachable, Unauthorized
from .keymap import console_config_path, load_keymap

if TYPE_CHECKING:
    from .app import PoolApp


async def launch(args: argparse.Namespace, app_cls: type[PoolApp], *, headless: bool = False) -> int:
    """Run the console on what `connect.open_control` gives; the process exit code (2: bad config or
    token, 3: a named server unreachable)."""
    read_only = bool(getattr(args, "read_only", False))
    try:
        keymap = load_keymap(console_config_path(), app_cls.binding_ids())
        async with connect.open_control(getattr(args, "server", None), getattr(args, "config", None),
                                        getattr(args, "token_file", None), getattr(args, "state_dir", None)) as opened:
            control = opened.control
            try:
                pools = await control.names()
            except ServerUnreachable:
                pools = []  # a named server that is down: the console shows it and retries
            app = app_cls(control, pools=pools, source=opened.source, read_only=read_only, keymap=keymap)
            code = await _run(app, headless)
            if control.embedded:
                live = sum(s.counts.get(k, 0) for s in await control.list_pools()
                           for k in ("creating", "starting", "ready", "claimed"))
                if live:
                    print(f"poolui: stopping the embedded pools of {opened.source}; terminating {live} "
                          f"sandbox{'es' if live != 1 else ''}", file=sys.stderr)
            return code
    except Unauthorized as e:
        print(f"poolui: {e}", file=sys.stderr)
        return 2
    except ServerUnreachable as e:
        print(f"poolui: {e}", file=sys.stderr)
        return 3
    except PoolError as e:
        print(f"poolui: {e}", file=sys.stderr)
        return 2


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
