"""Starting the console on what poolui.connect.open_control gives (remote or embedded), and cleaning up.

A server named explicitly (--server, $POOLUI_SERVER) is used even while it is down: the console opens
disconnected and keeps retrying. Otherwise the pool file's server if it answers and runs that file's pools
(one running another file's is refused, exit 2, saying which server answered, what it runs and what to
do), else the pools run embedded in the console's process and are stopped when it quits: their sandboxes
are terminated, except claimed ones the user chose to keep (on SIGTERM or SIGHUP, with nobody to ask,
claimed ones always), which are left running for the next start on the same state directory to adopt.
A remote console stops nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from .. import connect
from ..errors import PoolError, ServerUnreachable, Unauthorized
from .keymap import console_config_path, load_keymap
from .screens.quit import sandboxes

if TYPE_CHECKING:
    from ..control import Control
    from .app import PoolApp


async def launch(args: argparse.Namespace, app_cls: type[PoolApp], *, headless: bool = False,
                 run: Callable[[PoolApp], Awaitable[int]] | None = None) -> int:
    """Run the console on what `connect.open_control` gives; the process exit code (2: bad config or
    token, 3: a named server unreachable). `run` runs the app instead of `App.run_async` (tests: Pilot)."""
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
            pool = getattr(args, "pool", None)
            if pool is not None and pools and pool not in pools:
                print(f"poolui: --pool {pool}: no such pool in {opened.source}; its pools: {', '.join(pools)}",
                      file=sys.stderr)
                return 2
            app = app_cls(control, pools=pools, source=opened.source, read_only=read_only, keymap=keymap, pool=pool,
                          server_check=opened.check)
            code = await (run or partial(_run, opened=opened, headless=headless))(app)
            if control.embedded:
                opened.keep = app.keep_on_exit
                if said := await farewell(control, opened.source, opened.keep):
                    print(said, file=sys.stderr)
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


async def farewell(control: Control, source: str, keep: str) -> str:
    """The line said on stopping embedded pools: what is left running and what is terminated ("" when
    nothing runs)."""
    snaps = await control.list_pools()
    claimed = sum(s.counts.get("claimed", 0) for s in snaps)
    others = sum(s.counts.get(k, 0) for s in snaps for k in ("creating", "starting", "ready"))
    if keep == "claimed" and claimed:
        state_dir = getattr(control, "state_dir", None)
        on = f" on {state_dir}" if state_dir else ""
        left = (f"poolui: stopping the embedded pools of {source}; left {sandboxes(claimed, 'claimed')} "
                f"running for the next start{on} to adopt")
        return left + (f"; terminating {sandboxes(others)} not claimed" if others else "")
    if claimed + others:
        return f"poolui: stopping the embedded pools of {source}; terminating {sandboxes(claimed + others)}"
    return ""


_HANG_UPS: set[asyncio.Task[None]] = set()


def _hang_up(opened: connect.Opened) -> None:
    """The terminal is gone (SIGHUP): stop the pools at once, keeping the claimed sandboxes for the next
    start (nobody can be asked), and exit without Textual's shutdown. That shutdown writes to the gone
    terminal and was seen to wait forever on its output queue, leaving the process holding the pools."""
    async def stop_then_exit() -> None:
        try:
            opened.keep = "claimed"
            await opened.close()
        finally:
            os._exit(128 + signal.SIGHUP)

    task = asyncio.get_running_loop().create_task(stop_then_exit())
    _HANG_UPS.add(task)  # held until the process exits (a task only weakly referenced may be collected)


async def _run(app: Any, opened: connect.Opened, headless: bool) -> int:
    # A `kill` quits like `q`, so an embedded pool is still stopped and cleaned up; with nobody to ask,
    # claimed sandboxes are kept for the next start (Navigation.exit_keeping_claimed). A closed terminal
    # does the same without the app's shutdown (_hang_up).
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGHUP)
    loop.add_signal_handler(signal.SIGTERM, app.exit_keeping_claimed, 128 + signal.SIGTERM)
    loop.add_signal_handler(signal.SIGHUP, _hang_up, opened)
    try:
        code = await app.run_async(headless=headless)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    return int(code or 0)
