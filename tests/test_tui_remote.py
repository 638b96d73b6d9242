"""The console against a real `poolui serve`: a killed or stopped server shows as one (STALE, DISCONNECTED, with
the data's age) and the console recovers by itself within about a second of the server's return."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from textual.pilot import Pilot
from tui_support import free_port, local_pool_file, screen_text, until, wait_gone

from poolui import connect
from poolui.clock import Clock
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
        if all(proc.returncode is not None for proc in procs):
            # Killed and never restarted (a test that failed half-way): a new server adopts the sandboxes
            # left behind, and its shutdown ends them.
            with contextlib.suppress(AssertionError):
                procs.append(await start_server(path, port))
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()  # on_shutdown = "terminate": its sandboxes go with it
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        left = wait_gone(namespace_of((tmp_path / "state").resolve()), 30)
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.kill()
        assert not left, "sandbox processes left behind"


class SteppedClock(Clock):
    """Real time, plus what the test adds to the console's monotonic clock: the data ages without waiting."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def header(app: PoolApp) -> str:
    return screen_text(app).splitlines()[0]


async def seen(pilot: Pilot[Any], app: PoolApp, cond: Callable[[], object], timeout: float, what: str) -> None:
    """`until`, and on a timeout the connection's state and the screen, so a failure on CI says what it saw."""
    try:
        await until(pilot, cond, timeout, what)
    except AssertionError as e:
        raise AssertionError(f"{e}\nconnection: {app.conn}\nscreen:\n{screen_text(app)}") from None


@contextlib.asynccontextmanager
async def console_on(port: int, path: Path, timeout: float) -> AsyncIterator[tuple[PoolApp, Pilot[Any], SteppedClock]]:
    """A console at 80x24 on the server at `port`, connected and showing two ready sandboxes."""
    url = f"http://127.0.0.1:{port}"
    clock = SteppedClock()
    client = connect.connect(server=url, config=str(path), timeout=timeout)
    try:
        app = PoolApp(client, source=url, refresh=0.5, clock=clock)
        async with app.run_test(size=(80, 24)) as pilot:
            await seen(pilot, app, lambda: app.conn.state == "connected" and app.state.current is not None
                       and app.state.current.ready == 2, 30, "connected with two ready")
            await seen(pilot, app, lambda: "HEALTHY" in header(app), 5, "the pool's badge")
            yield app, pilot, clock
    finally:
        await client.aclose()


async def test_killed_server_shows_disconnected_and_recovers(
        served: tuple[Path, int, list[asyncio.subprocess.Process]]) -> None:
    """Killed: the badge says DISCONNECTED with the data's age and the retry key; restarted on the same port:
    the console is back within about a second (retries capped at 1 s on this machine), events too."""
    path, port, procs = served
    async with console_on(port, path, timeout=2.0) as (app, pilot, clock):
        assert "● connected" in header(app) and f"127.0.0.1:{port}" in header(app)
        assert "EMBEDDED" not in header(app)
        before = {m.id for m in app.state.groups["ready"]}

        procs[0].kill()
        await procs[0].wait()
        await seen(pilot, app, lambda: "DISCONNECTED" in header(app), 15, "the badge to say so")
        assert "ctrl+r retry now" in header(app) and "HEALTHY" not in header(app)
        # the alert line (the error, the next retry) is painted in the badge's turn or the next
        await seen(pilot, app, lambda: "retry" in screen_text(app).splitlines()[1], 5, "the alert line")
        clock.advance(90)
        app.update_header()
        await seen(pilot, app, lambda: re.search(r"data 1m\d\ds old", header(app)), 5, "the data's age")
        assert app.dashboard.active_bindings["c"].enabled is False  # nothing to act on
        assert {m.id for m in app.state.groups["ready"]} == before  # the last data stays on screen
        # Six failures in a row: past them the old backoff (capped at 15 s) waited 15 s before the next try;
        # capped at 1 s, the next try is at most a second away.
        await seen(pilot, app, lambda: app.conn.failures >= 6, 20, "six failed retries")

        # The same server comes back on the same port and state: it adopts the sandboxes.
        procs.append(await start_server(path, port))
        # About a second; the deadline leaves room for a loaded machine, far under the old 15 s.
        await seen(pilot, app, lambda: app.conn.state == "connected", 4, "the console to reconnect within ~1 s")
        await seen(pilot, app, lambda: app.state.current is not None and app.state.current.ready == 2, 30,
                   "two ready again")
        await seen(pilot, app, lambda: "HEALTHY" in header(app), 5, "the pool's badge again")
        assert "DISCONNECTED" not in screen_text(app)
        assert app.dashboard.active_bindings["c"].enabled is True
        # The event stream is back too: a claim made now shows up in the log pane.
        await pilot.press("c")
        await seen(pilot, app, lambda: any(e.kind == "claimed" for e in app.state.events_by_pool.get("web", ())),
                   20, "the claimed event over the new stream")


async def test_a_stopped_server_turns_the_badge_stale_then_disconnected(
        served: tuple[Path, int, list[asyncio.subprocess.Process]]) -> None:
    """SIGSTOP: the server takes connections and never answers. Data older than three refresh periods is
    STALE; once a fetch times out, DISCONNECTED; SIGCONT: back by itself."""
    path, port, procs = served
    async with console_on(port, path, timeout=4.0) as (app, pilot, clock):
        os.kill(procs[0].pid, signal.SIGSTOP)
        try:
            def stale() -> bool:
                clock.advance(1)  # a snapshot answered just before the stop can land once more: age again
                app.update_header()
                return "STALE" in header(app)

            await seen(pilot, app, stale, 3, "the stale badge")
            assert re.search(r"data \d+s old", header(app)) and app.conn.state == "connected"
            assert "HEALTHY" not in header(app)
            await seen(pilot, app, lambda: "DISCONNECTED" in header(app), 15, "the fetch to time out")
            assert "STALE" not in header(app) and "ctrl+r retry now" in header(app)
        finally:
            os.kill(procs[0].pid, signal.SIGCONT)
        await seen(pilot, app, lambda: app.conn.state == "connected" and "HEALTHY" in header(app), 10,
                    "the console back once the server answers")


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
