"""`poolui --pool NAME`: the console opens on that pool, not on the pools overview a file of several pools
opens on; a name the file does not have is refused with the pools it has. Real embedded instant pools."""

from __future__ import annotations

import argparse
import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from server_fixtures import pool_table, write_pool_file
from tui_support import until

from poolui.cli import _console_parser
from poolui.tui.app import PoolApp
from poolui.tui.launch import launch
from poolui.tui.screens.overview import OverviewScreen


def two_pools(tmp_path: Path) -> Path:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nobody listens there: the console runs the pools itself
    return write_pool_file(tmp_path / "two.toml", {"web": pool_table("instant", target_ready=1, min_ready=0),
                                                   "api": pool_table("instant", target_ready=1, min_ready=0)},
                           listen=f"127.0.0.1:{port}", state_dir=str(tmp_path / "state"))


def parsed(*argv: str) -> argparse.Namespace:
    return _console_parser().parse_args(list(argv))


async def opened_on(path: Path, *extra: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def run(app: PoolApp) -> int:
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: app.state.current is not None, 20, "a pool's snapshot")
            await pilot.pause()
            seen.update(pool=app.state.pool, overview=isinstance(app.screen, OverviewScreen))
            await pilot.press("q")
            await until(pilot, lambda: app.return_code is not None, 10, "the console to quit")
        return int(app.return_value or 0)

    assert await asyncio.wait_for(launch(parsed("--config", str(path), *extra), PoolApp, run=run), 60) == 0
    return seen


async def test_pool_opens_the_console_on_that_pool(tmp_path: Path) -> None:
    path = two_pools(tmp_path)
    assert (await opened_on(path))["overview"] is True  # two pools, none asked for: the overview
    seen = await opened_on(path, "--pool", "api")
    assert seen == {"pool": "api", "overview": False}


async def test_a_pool_the_file_has_not_is_refused_naming_its_pools(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[PoolApp] = []

    async def never(app: PoolApp) -> int:
        ran.append(app)
        return 0

    code = await asyncio.wait_for(launch(parsed("--config", str(two_pools(tmp_path)), "--pool", "nope"),
                                         PoolApp, run=never), 60)
    err = capsys.readouterr().err
    assert code == 2 and not ran
    assert "--pool nope: no such pool" in err and "its pools: web, api" in err
