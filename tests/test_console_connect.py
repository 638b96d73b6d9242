"""Which server a console (and a headless verb) talks to: never one that runs another pool file's pools, and a
refused token said in words of files and flags. A real `poolui serve` runs pool file A; a console is started
with pool file B, whose [server] listen address is the same one."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from server_fixtures import Served, pool_table, served, write_pool_file
from tui_support import screen_text, until

from poolui.tui.app import PoolApp
from poolui.tui.launch import launch

HTTP_WORDS = ("Authorization", "Bearer", "bearer", "HTTP", "header")


@pytest.fixture
def server_a(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """`poolui serve` of pool file A: one pool, "web"."""
    for k in list(os.environ):
        if k.startswith("POOLUI_"):
            monkeypatch.delenv(k)
    with served({"web": pool_table("instant", target_ready=2, min_ready=0)}) as s:
        yield s


def file_b(tmp_path: Path, a: Served, name: str = "b.toml", **server: Any) -> Path:
    """Pool file B: pool "api", and as its server address the one A's server listens on."""
    listen = a.url.removeprefix("http://")
    return write_pool_file(tmp_path / name, {"api": pool_table("instant", target_ready=1, min_ready=0)},
                           listen=listen, state_dir=str(tmp_path / "b-state"), **server)


def args(config: Path, server: str | None = None, token_file: Path | None = None) -> argparse.Namespace:
    return argparse.Namespace(config=str(config), server=server, read_only=False,
                              token_file=str(token_file) if token_file else None, state_dir=None)


def never_run(ran: list[PoolApp]) -> Callable[[PoolApp], Awaitable[int]]:
    async def run(app: PoolApp) -> int:
        ran.append(app)
        return 0

    return run


def seen_then_quit(seen: dict[str, Any]) -> Callable[[PoolApp], Awaitable[int]]:
    """Runs the console until it shows a pool, keeps what it showed, then quits with `q` as a person would."""
    async def run(app: PoolApp) -> int:
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: app.state.current is not None and app.state.current.ready == 2, 20,
                        "pool web with two ready")
            seen.update(screen=screen_text(app), embedded=app.control.embedded, pool=app.state.pool)
            await pilot.press("q")
            await until(pilot, lambda: app.return_code is not None, 10, "the console to quit")
        return int(app.return_value or 0)

    return run


async def test_a_console_refuses_the_server_of_another_pool_file_and_says_what_to_do(
        server_a: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = server_a.state_dir / "token"  # the token is right: only the pools are not B's
    b = file_b(tmp_path, server_a, token_file=str(token))
    ran: list[PoolApp] = []
    assert await asyncio.wait_for(launch(args(b), PoolApp, run=never_run(ran)), 30) == 2
    assert ran == []  # no console at all: not A's pools, and not B's pools run here beside A's server
    err = " ".join(capsys.readouterr().err.split())
    assert f"the poolui server at {server_a.url} (the [server] listen address of {b.resolve()})" in err
    assert f"runs the pool file {server_a.config.resolve()} (pools: web), not {b.resolve()} (pools: api)" in err
    assert f"pass --server {server_a.url}" in err and "[server] listen address no server uses" in err
    assert not (tmp_path / "b-state").exists()  # B's pools never ran embedded

    # Told to use that server anyway, the console connects and shows A's pools.
    seen: dict[str, Any] = {}
    code = await asyncio.wait_for(launch(args(b, server=server_a.url), PoolApp, run=seen_then_quit(seen)), 60)
    assert code == 0 and seen["embedded"] is False and seen["pool"] == "web"
    assert server_a.url.removeprefix("http://") in seen["screen"] and "api" not in seen["screen"]

    # A's own file, named through a symbolic link and with that address in its [server] table, is
    # recognised as the file the server runs: the console connects without --server.
    port = server_a.url.rsplit(":", 1)[1]
    server_a.config.write_text(server_a.config.read_text() + f"\n[server]\nlisten = '127.0.0.1:{port}'\n")
    link = tmp_path / "a-link.toml"
    link.symlink_to(server_a.config)
    seen.clear()
    code = await asyncio.wait_for(launch(args(link, token_file=token), PoolApp, run=seen_then_quit(seen)), 60)
    assert code == 0 and seen["embedded"] is False and seen["pool"] == "web"
    assert server_a.url.removeprefix("http://") in seen["screen"]


@pytest.mark.parametrize("token", ["wrong", "missing"])
async def test_a_refused_token_names_the_server_and_the_token_file(
        server_a: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str], token: str) -> None:
    token_file = tmp_path / "b-token"
    if token == "wrong":
        token_file.write_text("not-the-token\n")
    b = file_b(tmp_path, server_a, token_file=str(token_file))
    ran: list[PoolApp] = []
    for how in (args(b), args(b, server=server_a.url)):
        assert await asyncio.wait_for(launch(how, PoolApp, run=never_run(ran)), 30) == 2
        err = " ".join(capsys.readouterr().err.split())
        where = "--server" if how.server else f"the [server] listen address of {b.resolve()}"
        assert f"the poolui server at {server_a.url} ({where})" in err
        if token == "wrong":
            assert f"refused the token from {token_file} (the [server] token_file of {b.resolve()})" in err
        else:
            assert f"needs a token and found none: {token_file} (the [server] token_file of" in err
        assert "--token-file FILE" in err and "$POOLUI_TOKEN" in err
        assert not [w for w in HTTP_WORDS if w in err], err
    assert ran == []


def test_headless_verbs_check_the_server_too(server_a: Served, tmp_path: Path) -> None:
    b = file_b(tmp_path, server_a, token_file=str(server_a.state_dir / "token"))
    r = server_a.headless("--config", str(b), "list", server=False)
    assert r.returncode == 2 and r.stdout == ""
    err = " ".join(r.stderr.split())
    assert f"runs the pool file {server_a.config.resolve()} (pools: web), not {b.resolve()}" in err
    r = server_a.headless("--config", str(b), "--server", server_a.url, "list", server=False)
    assert r.returncode == 0 and "web" in r.stdout and "api" not in r.stdout
    r = server_a.headless("--config", str(b), "check", server=False)  # monitoring: UNKNOWN, not A's pools
    assert r.returncode == 3 and r.stdout.startswith("POOLUI UNKNOWN - the poolui server at ")
    assert "runs the pool file" in r.stdout and "web:" not in r.stdout

    wrong = tmp_path / "wrong-token"
    wrong.write_text("nope\n")
    r = server_a.headless("--config", str(b), "--token-file", str(wrong), "resize", "--pool", "web", "3",
                          server=False)
    err = " ".join(r.stderr.split())
    assert r.returncode == 3 and f"refused the token from {wrong} (--token-file)" in err
    assert not [w for w in HTTP_WORDS if w in err], err
    r = server_a.headless("--server", server_a.url, "--token-file", str(wrong), "check", server=False)
    assert r.returncode == 3 and f"refused the token from {wrong} (--token-file)" in r.stdout
    assert not [w for w in HTTP_WORDS if w in r.stdout], r.stdout
