"""The console against a real `poolui serve`: a killed server shows as disconnected and recovers by itself."""

from __future__ import annotations

import argparse
import asyncio
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tui_support import free_port, local_pool_file, screen_text, until, wait_gone

from poolui import connect
from poolui.core.store import namespace_of
from poolui.tui.app import PoolApp
from poolui.tui.launch import launch
from poolui.tui.screens.claim import ClaimScreen
from poolui.tui.screens.quit import QuitScreen

SERVE = [sys.executable, "-c", "import sys; from poolui.cli import main; sys.exit(main(sys.argv[1:]))", "serve"]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as r:
            return int(r.status) == 200
    except OSError:
        return False


async def start_server(path: Path, port: int) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        *SERVE, "--config", str(path), "--listen", f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = asyncio.get_running_loop().time() + 30
    while not await asyncio.to_thread(healthy, url):
        if proc.returncode is not None or asyncio.get_running_loop().time() > deadline:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"poolui serve did not come up on {url} (exit {proc.returncode})")
        await asyncio.sleep(0.05)  # between health polls, bounded by the deadline above
    return proc


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Path, int, list[asyncio.subprocess.Process]]]:
    port = free_port()
    path = local_pool_file(tmp_path, server_port=port)
    procs = [await start_server(path, port)]
    try:
        yield path, port, procs
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()  # on_shutdown = "terminate": its sandboxes go with it
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        assert not wait_gone(namespace_of((tmp_path / "state").resolve())), "sandbox processes left behind"


async def test_killed_server_shows_disconnected_and_recovers(
        served: tuple[Path, int, list[asyncio.subprocess.Process]]) -> None:
    path, port, procs = served
    url = f"http://127.0.0.1:{port}"
    client = connect.connect(server=url, config=str(path), timeout=2.0)
    try:
        app = PoolApp(client, source=url, refresh=0.5)
        async with app.run_test(size=(130, 40)) as pilot:
            await until(pilot, lambda: app.conn.state == "connected" and app.state.current is not None
                        and app.state.current.ready == 2, 30, "connected with two ready")
            text = screen_text(app)
            assert "connected" in text and url in text and "EMBEDDED" not in text
            before = {m.id for m in app.state.groups["ready"]}

            procs[0].kill()
            await procs[0].wait()
            await until(pilot, lambda: app.conn.state == "disconnected", 15, "the console to notice")
            await until(pilot, lambda: "DISCONNECTED" in screen_text(app), 5, "the header to say so")
            assert "retry" in screen_text(app)
            assert app.dashboard.active_bindings["c"].enabled is False  # nothing to act on
            assert {m.id for m in app.state.groups["ready"]} == before  # the last data stays on screen

            # The same server comes back on the same port and state: it adopts the sandboxes.
            procs.append(await start_server(path, port))
            await until(pilot, lambda: app.conn.state == "connected", 30, "the console to reconnect")
            await until(pilot, lambda: app.state.current is not None and app.state.current.ready == 2, 30,
                        "two ready again")
            assert "DISCONNECTED" not in screen_text(app)
            assert app.dashboard.active_bindings["c"].enabled is True
            # The event stream is back too: a claim made now shows up in the log pane.
            await pilot.press("c")
            await until(pilot, lambda: any(e.kind == "claimed" for e in app.state.events_by_pool.get("web", ())), 20,
                        "the claimed event over the new stream")
    finally:
        await client.aclose()


async def test_a_remote_console_quits_without_asking_and_stops_nothing(
        served: tuple[Path, int, list[asyncio.subprocess.Process]], capsys: pytest.CaptureFixture[str]) -> None:
    """Against `poolui serve`, the pools are the server's: `q` with a claimed sandbox quits at once, and the
    claimed one (and the ready ones) go on."""
    path, port, _ = served
    url = f"http://127.0.0.1:{port}"
    seen: dict[str, Any] = {}

    async def run(app: PoolApp) -> int:
        async with app.run_test(size=(130, 40)) as pilot:
            await until(pilot, lambda: app.state.current is not None and app.state.current.ready == 2, 30,
                        "two ready")
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, ClaimScreen), 10, "the claim dialog")
            assert isinstance(app.screen, ClaimScreen)
            seen["claim"] = app.screen.claim
            await pilot.press("escape", "q")
            await until(pilot, lambda: app.return_code is not None or isinstance(app.screen, QuitScreen), 10,
                        "the console to quit")
            assert not isinstance(app.screen, QuitScreen)
        return int(app.return_value or 0)

    args = argparse.Namespace(config=str(path), server=url, read_only=False, token_file=None, state_dir=None)
    assert await asyncio.wait_for(launch(args, PoolApp, run=run), 60) == 0
    assert "terminating" not in capsys.readouterr().err
    client = connect.connect(server=url, config=str(path))
    try:
        snap = await client.snapshot("web")
        assert [m.id for m in snap.members if m.state == "claimed"] == [seen["claim"].id]
    finally:
        await client.aclose()
