"""A console that found its server through the pool file checks, after every outage, that whoever answers there
still runs that file's pools: another file's server on the same port is never shown or steered (the console
stays DISCONNECTED saying which server, what it runs and what to do, and keeps checking), and a token refused
while the console runs is said in words of files and flags, never the server's HTTP words.

Real `poolui serve` processes on one loopback port (instant pools: nothing to wait for but the servers), the
console started the way `poolui --config A.toml` starts it (poolui.tui.launch) and driven with Pilot."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from server_fixtures import pool_table, port_closed, write_pool_file
from textual.pilot import Pilot
from tui_support import free_port, screen_text, until

from poolui.tui.app import PoolApp
from poolui.tui.launch import launch

SERVE = [sys.executable, "-m", "poolui.cli", "serve"]
HTTP_WORDS = ("Authorization", "Bearer", "bearer", "HTTP 401", "header")


class Servers:
    """`poolui serve` processes started on one port, each of a pool file; all stopped at the end."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.procs: list[asyncio.subprocess.Process] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("POOLUI_")}

    async def start(self, config: Path) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *SERVE, "--config", str(config), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            env=self.env)
        self.procs.append(proc)
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()  # "serving URL ..." once it listens
        assert f"serving {self.url}" in line, f"poolui serve --config {config} did not start: {line!r}"
        return proc

    async def kill(self, proc: asyncio.subprocess.Process) -> None:
        proc.kill()
        await proc.wait()

    async def stop_all(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        assert port_closed(self.url)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path, as a user's pool files have (pytest's own are 70 characters): the
    refusal's words, naming the files, then fit the header at 80x24 as they would for a person."""
    with tempfile.TemporaryDirectory(prefix="pu-") as d:
        yield Path(d)


@pytest.fixture
async def servers(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Servers]:
    for k in list(os.environ):
        if k.startswith("POOLUI_"):
            monkeypatch.delenv(k)
    s = Servers(free_port())
    try:
        yield s
    finally:
        await s.stop_all()


def pool_file(tmp_path: Path, name: str, port: int, target: int) -> Path:
    """A pool file with one pool, "web" (both files name it so: only the file tells them apart), served at
    `port`, with a token file both share (so the token is right and only the pools are not the file's)."""
    return write_pool_file(tmp_path / name, {"web": pool_table("instant", target_ready=target, min_ready=0)},
                           listen=f"127.0.0.1:{port}", state_dir=str(tmp_path / f"{name}-state"),
                           token_file=str(tmp_path / "token"))


def console_args(config: Path) -> argparse.Namespace:
    return argparse.Namespace(config=str(config), server=None, read_only=False, token_file=None, state_dir=None,
                              pool=None)


def flat(app: PoolApp) -> str:
    """The screen's words on one line (the header's reason wraps over several)."""
    return " ".join(screen_text(app).split())


async def seen(pilot: Pilot[Any], app: PoolApp, cond: Callable[[], object], timeout: float, what: str) -> None:
    try:
        await until(pilot, cond, timeout, what)
    except AssertionError as e:
        raise AssertionError(f"{e}\nconnection: {app.conn}\nscreen:\n{screen_text(app)}") from None


async def console(config: Path, story: Callable[[PoolApp, Pilot[Any]], Awaitable[None]]) -> None:
    """`poolui --config CONFIG` at 80x24, once it shows pool web with its ready sandboxes: `story`, then q."""
    async def run(app: PoolApp) -> int:
        async with app.run_test(size=(80, 24)) as pilot:
            await seen(pilot, app, lambda: app.conn.state == "connected" and app.state.current is not None
                       and app.state.current.ready == 2, 30, "pool web with two ready")
            await story(app, pilot)
            await pilot.press("q")
            await until(pilot, lambda: app.return_code is not None, 10, "the console to quit")
        return int(app.return_value or 0)

    assert await asyncio.wait_for(launch(console_args(config), PoolApp, run=run), 180) == 0


async def test_a_server_of_another_file_on_reconnect_is_never_shown(servers: Servers, short_dir: Path) -> None:
    tmp_path = short_dir
    a = pool_file(tmp_path, "a.toml", servers.port, target=2)
    b = pool_file(tmp_path, "b.toml", servers.port, target=3)  # its web pool: three ready, other sandboxes
    server_a = await servers.start(a)

    async def story(app: PoolApp, pilot: Pilot[Any]) -> None:
        ours = {m.id for m in app.state.current.members} if app.state.current else set()
        ours |= {e.member_id for e in app.state.events_by_pool.get("web", ()) if e.member_id}
        shown: list[str] = []

        def only_ours() -> bool:
            """Nothing of B's on screen or in the console's state: not its pool's numbers, sandboxes, events."""
            snap = app.state.current
            assert snap is not None and snap.target_ready == 2, f"another pool shown: {snap}"
            ids = {m.id for m in snap.members} | {e.member_id for e in app.state.events_by_pool.get("web", ())
                                                  if e.member_id}
            assert ids <= ours, f"B's sandboxes shown: {ids - ours}"
            assert "ready 3/3" not in screen_text(app) and list(app.state.summaries) == ["web"]
            shown.append(flat(app))
            return True

        await servers.kill(server_a)
        await servers.start(b)  # the same port, another pool file
        said = (f"the poolui server at {servers.url} (the [server] listen address of {a.resolve()}) now runs the "
                f"pool file {b.resolve()} (pools: web), not this file's pools (web): not shown or changed here")
        # its words on the screen too, not only the connection's state (the screen follows a frame later)
        await seen(pilot, app, lambda: only_ours() and app.conn.refused and said in flat(app), 30, "the refusal")
        text = flat(app)
        assert "DISCONNECTED" in screen_text(app).splitlines()[0]
        assert f"`poolui serve --config {a.resolve()}`" in text and f"--server {servers.url}" in text
        assert app.dashboard.active_bindings["c"].enabled is False  # nothing of B's to steer either
        failures = app.conn.failures
        await seen(pilot, app, lambda: only_ours() and app.conn.failures >= failures + 3, 15,
                   "checking again, and again")
        assert app.conn.refused and all("ready 3/3" not in s for s in shown)

        await servers.kill(servers.procs[-1])
        await servers.start(a)  # A's server is back: the console reconnects to it by itself
        await seen(pilot, app, lambda: app.conn.state == "connected" and not app.conn.refused, 15, "reconnected")
        await seen(pilot, app, lambda: "HEALTHY" in screen_text(app).splitlines()[0]
                   and "DISCONNECTED" not in screen_text(app), 30, "A's pool again")
        assert app.state.current is not None and app.state.current.target_ready == 2

    await console(a, story)


async def test_a_token_refused_while_the_console_runs_names_the_token_file(servers: Servers,
                                                                           short_dir: Path) -> None:
    tmp_path = short_dir
    a = pool_file(tmp_path, "a.toml", servers.port, target=2)
    token = tmp_path / "token"
    token.write_text("the-first-token\n")
    first = await servers.start(a)

    async def story(app: PoolApp, pilot: Pilot[Any]) -> None:
        await servers.kill(first)
        token.write_text("another-token\n")  # the server comes back with another token than the console read
        second = await servers.start(a)
        said = (f"the poolui server at {servers.url} (the [server] listen address of {a.resolve()}) refused the "
                f"token from {token} (the [server] token_file of {a.resolve()})")
        # the refusal's own words on the screen, not only its state: the header may still show the reason
        # before (the server was down) for a frame after the connection learns of the refusal
        await seen(pilot, app, lambda: app.conn.refused and "DISCONNECTED" in screen_text(app) and said in flat(app),
                   30, "the token refused, and said so")
        text = flat(app)
        assert "--token-file FILE" in text and "$POOLUI_TOKEN" in text and "start it again" in text
        assert not [w for w in HTTP_WORDS if w in screen_text(app)], screen_text(app)
        assert not [w for w in HTTP_WORDS if w in app.conn.error], app.conn.error

        await servers.kill(second)
        token.write_text("the-first-token\n")
        await servers.start(a)
        await seen(pilot, app, lambda: app.conn.state == "connected" and "HEALTHY" in screen_text(app), 30,
                   "back with the token the console has")

    await console(a, story)
