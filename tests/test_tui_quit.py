"""Quitting an embedded console with a claimed sandbox: keep it for the next start, terminate all, or stay.

Each test runs the console as `poolui --config FILE` does (launch: embedded pools, the app, stopping them),
with keys pressed through Pilot, or typed into a real terminal (tmux). Afterwards the pools, the processes
and the next start on the same state directory say what happened.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tui_support import listening, local_pool_file, screen_text, until, wait_gone

from poolui.core.manager import PoolManager
from poolui.core.model import Claim
from poolui.core.store import namespace_of
from poolui.errors import PoolError
from poolui.pool_file import load_config
from poolui.tui.app import PoolApp
from poolui.tui.launch import launch
from poolui.tui.screens.claim import ClaimScreen
from poolui.tui.screens.quit import QuitScreen

SIZE = (130, 40)
POOLUI = [sys.executable, "-c", "import sys; from poolui.cli import main; sys.exit(main(sys.argv[1:]))"]


async def next_start(path: Path, timeout: float = 30.0) -> dict[str, tuple[str, str | None]]:
    """Start the pools of `path` again, as the next `poolui` would: what it adopted (id: state, claim key).
    Then stop, terminating everything, so nothing is left behind."""
    deadline = time.monotonic() + timeout
    while True:
        mgr = PoolManager(load_config(path))
        try:
            await mgr.start()
            break
        except PoolError:  # the console's process still holds the state directory: it is quitting
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)  # between tries of the lock, bounded by the deadline
    try:
        return {m.id: (m.state.value, m.claim_key) for p in mgr.pools.values() for m in p.members.values()
                if m.adopted}
    finally:
        await mgr.stop()


@pytest.fixture
async def pool_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Path]:
    """A pool file of local sandboxes and no server; afterwards nothing of it may be left running."""
    for var in ("POOLUI_SERVER", "POOLUI_TOKEN", "POOLUI_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no keymap of the developer's
    path = local_pool_file(tmp_path)
    marker = namespace_of(PoolManager(load_config(path)).state_dir)
    try:
        yield path
    finally:
        if wait_gone(marker, 0.5):
            await next_start(path)  # what a failed test kept, so the next test starts clean
            pytest.fail("sandboxes were left running")


def args_for(path: Path) -> argparse.Namespace:
    return argparse.Namespace(config=str(path), server=None, read_only=False, token_file=None, state_dir=None)


class Recorded(PoolApp):
    """The console, saying when it exits (an event to wait on, not a sleep)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exited = asyncio.Event()

    def exit(self, *args: Any, **kwargs: Any) -> None:
        super().exit(*args, **kwargs)
        self.exited.set()


async def claim_then_quit(app: PoolApp, pilot: Any, quit_keys: tuple[str, ...], seen: dict[str, Any]) -> None:
    """Wait for two ready, claim one (`c`, `esc`), then quit with `quit_keys`: the question must come."""
    await until(pilot, lambda: app.state.current is not None and len(app.state.groups["ready"]) >= 2, 20,
                "two ready rows")
    await pilot.press("c")
    await until(pilot, lambda: isinstance(app.screen, ClaimScreen), 10, "the claim dialog")
    assert isinstance(app.screen, ClaimScreen)
    seen["claim"] = app.screen.claim
    await pilot.press("escape")
    await until(pilot, lambda: not isinstance(app.screen, ClaimScreen), 5, "the claim dialog to close")
    await until(pilot, lambda: len(app.state.groups["ready"]) >= 2, 20, "the pool to refill")
    seen["ready_urls"] = [m.url for m in app.state.groups["ready"]]
    await pilot.press(*quit_keys)
    await until(pilot, lambda: isinstance(app.screen, QuitScreen), 10, "the quit question")
    seen["question"] = screen_text(app)


def runner(quit_keys: tuple[str, ...], answer: tuple[str, ...], seen: dict[str, Any],
           then: Callable[[PoolApp, Any], Any] | None = None) -> Callable[[PoolApp], Any]:
    async def run(app: PoolApp) -> int:
        assert isinstance(app, Recorded)
        async with app.run_test(size=SIZE) as pilot:
            await claim_then_quit(app, pilot, quit_keys, seen)
            await pilot.press(*answer)
            if then is not None:
                await then(app, pilot)
            await asyncio.wait_for(app.exited.wait(), 10)
        return int(app.return_value or 0)

    return run


async def test_keep_leaves_the_claimed_sandbox_for_the_next_start(
        pool_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seen: dict[str, Any] = {}
    code = await asyncio.wait_for(launch(args_for(pool_file), Recorded, run=runner(("q",), ("k",), seen)), 90)
    assert code == 0
    claim: Claim = seen["claim"]
    question = seen["question"]
    assert "1 sandbox is claimed" in question and claim.id in question and "Keep claimed (k)" in question
    assert "Terminate all (t)" in question and "Stay (esc)" in question
    err = capsys.readouterr().err
    assert "left 1 claimed sandbox running for the next start" in err, err
    assert re.search(r"terminating \d+ sandboxes? not claimed", err), err
    # The claimed one still serves; the ready ones are gone.
    assert await asyncio.to_thread(listening, claim.url)
    assert not any([await asyncio.to_thread(listening, u) for u in seen["ready_urls"]])
    # The next start on the same state directory adopts it, still claimed, under the same claim key.
    assert await next_start(pool_file) == {claim.id: ("claimed", claim.claim_key)}
    assert not wait_gone(namespace_of(PoolManager(load_config(pool_file)).state_dir))


async def test_terminate_all_leaves_nothing_running(pool_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seen: dict[str, Any] = {}
    code = await asyncio.wait_for(
        launch(args_for(pool_file), Recorded, run=runner(("ctrl+c",), ("t",), seen)), 90)
    assert code == 0
    claim: Claim = seen["claim"]
    err = capsys.readouterr().err
    assert re.search(r"terminating \d+ sandboxes", err) and "left" not in err, err
    assert not await asyncio.to_thread(listening, claim.url)
    marker = namespace_of(PoolManager(load_config(pool_file)).state_dir)
    assert not wait_gone(marker)
    assert await next_start(pool_file) == {}  # nothing for the next start to adopt either


async def test_stay_and_enter_keep_the_console_and_the_claim(pool_file: Path) -> None:
    """Stay is where the question starts: `enter` out of habit stays; so does `esc`. The palette's Quit asks too."""
    seen: dict[str, Any] = {}

    async def stayed(app: PoolApp, pilot: Any) -> None:
        await until(pilot, lambda: not isinstance(app.screen, QuitScreen), 5, "the question to close")
        assert isinstance(app, Recorded) and not app.exited.is_set() and app.is_running
        claim: Claim = seen["claim"]
        snap = await app.control.snapshot("web")
        assert [m.id for m in snap.members if m.state == "claimed"] == [claim.id]
        assert await asyncio.to_thread(listening, claim.url)
        # The palette's Quit asks the same question; esc stays again.
        await pilot.press("ctrl+p", *"quit", "enter")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), 10, "the question from the palette")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, QuitScreen), 5, "the question to close again")
        assert not app.exited.is_set()
        await pilot.press("q", "t")  # now quit for real: nothing may be left behind

    code = await asyncio.wait_for(launch(args_for(pool_file), Recorded, run=runner(("q",), ("enter",), seen, stayed)),
                                  90)
    assert code == 0
    assert not wait_gone(namespace_of(PoolManager(load_config(pool_file)).state_dir))


# ---------------------------------------------------------------------------- in a real terminal (tmux)


class Tmux:
    """A private tmux server (its own socket) running one command in a 120x40 window."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        conf = tmp_path / "tmux.conf"
        conf.write_text("set -g remain-on-exit on\nset -g history-limit 200\n")  # the last words stay readable
        self.base = ["tmux", "-S", str(tmp_path / "tmux.sock"), "-f", str(conf)]  # its socket goes with tmp_path
        self.env = env

    def tmux(self, *args: str, timeout: float = 10.0) -> str:
        return subprocess.run([*self.base, *args], env=self.env, capture_output=True, text=True, check=True,
                              timeout=timeout).stdout

    def start(self, command: str) -> None:
        self.tmux("new-session", "-d", "-s", "t", "-x", "120", "-y", "40", command)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", "t", "-S", "-100")

    def wait_for(self, text: str, timeout: float = 30.0, *, gone: bool = False) -> str:
        """The terminal once `text` is on it (or, with gone, no longer on it)."""
        deadline = time.monotonic() + timeout
        while (text in (shown := self.screen())) == gone:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} {'still' if gone else 'not'} on the terminal after {timeout}s:\n"
                                     f"{shown}")
            time.sleep(0.05)  # between reads of the terminal, bounded by the deadline
        return shown

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], env=self.env, capture_output=True, timeout=10)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POOLUI_", "TMUX"))}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    t = Tmux(tmp_path, env)
    try:
        yield t
    finally:
        t.close()


def console_in(tmux: Tmux, path: Path) -> tuple[str, str]:
    """`poolui --config FILE` in the tmux window, warm, with one sandbox claimed (`c`, `esc`): (claimed id,
    the name `tmux wait-for` is signalled on once the console has exited)."""
    console = shlex.join([*POOLUI, "--config", str(path)])
    done = "poolui-exited"
    tmux.start(f"{console}; echo \"poolui exited $?\"; {shlex.join([*tmux.base, 'wait-for', '-S', done])}")
    tmux.wait_for("ready 2/2")
    tmux.keys("c")
    tmux.wait_for("The sandbox stays claimed")
    shown = tmux.wait_for(" from pool web")  # both lines drawn, whichever comes last
    claimed = re.search(r"(\S+) from pool web", shown)
    assert claimed, shown
    tmux.keys("Escape")
    # The dialog gone, not only the header's count: an `Escape q` typed together reads as alt+q.
    tmux.wait_for("The sandbox stays claimed", gone=True)
    tmux.wait_for("in use 1")
    return claimed.group(1), done


def test_quitting_in_a_terminal_asks_and_keeps_the_claimed_sandbox(tmux: Tmux, tmp_path: Path) -> None:
    """`poolui --config FILE` in tmux: `c`, `esc`, `q` asks; `k` quits, leaving the claimed one for the next start."""
    path = local_pool_file(tmp_path)
    try:
        claimed, done = console_in(tmux, path)
        tmux.keys("q")
        tmux.wait_for("Keep claimed (k)")
        question = tmux.wait_for("Stay (esc)")  # the dialog's last line: a capture can catch it half drawn
        assert "1 sandbox is claimed" in question and f"in pool web: {claimed}." in question
        assert "Keep claimed (k)" in question
        tmux.keys("k")
        tmux.tmux("wait-for", done, timeout=60)
        shown = tmux.screen()
        assert "poolui exited 0" in shown, shown
        assert "left 1 claimed sandbox running for the next start" in shown, shown
        tmux.close()
        assert asyncio.run(next_start(path)) == {claimed: ("claimed", None)}
    finally:
        tmux.close()
        if wait_gone(namespace_of(PoolManager(load_config(path)).state_dir), 0.5):
            asyncio.run(next_start(path))  # the console (if still there) ends on the hangup; nothing may stay
            pytest.fail("sandboxes were left running")


def test_a_closed_terminal_keeps_the_claimed_sandbox(tmux: Tmux, tmp_path: Path) -> None:
    """The terminal goes away (SIGHUP) with a sandbox claimed: nobody can be asked, so the claimed one is kept
    for the next start (the answer that can be undone) and the ready ones are terminated."""
    path = local_pool_file(tmp_path)
    try:
        claimed, _ = console_in(tmux, path)
        tmux.close()  # the tmux server goes, and with it the console's terminal
        assert asyncio.run(next_start(path)) == {claimed: ("claimed", None)}
    finally:
        tmux.close()
        if wait_gone(namespace_of(PoolManager(load_config(path)).state_dir), 0.5):
            asyncio.run(next_start(path))
            pytest.fail("sandboxes were left running")
