"""The console driven by Pilot against a real embedded pool of local sandboxes (Python HTTP servers)."""

from __future__ import annotations

import argparse
import asyncio
import re
import tomllib
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.widgets import Checkbox, Input
from tui_support import listening, local_pool_file, screen_text, until, wait_gone

from poolui.core.manager import PoolManager
from poolui.core.store import namespace_of
from poolui.pool_file import load_config
from poolui.tui.app import PoolApp
from poolui.tui.launch import launch
from poolui.tui.messages import SnapshotFetched
from poolui.tui.screens.claim import ClaimScreen
from poolui.tui.screens.confirm import ConfirmScreen, NoticeScreen
from poolui.tui.screens.detail import DetailScreen
from poolui.tui.screens.help import HelpScreen
from poolui.tui.screens.resize import ResizeScreen
from poolui.tui.widgets.event_log import EventLog

SIZE = (130, 40)


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[tuple[PoolManager, Path]]:
    """A running embedded pool of two local sandboxes; afterwards, no sandbox process may be left."""
    path = local_pool_file(tmp_path)
    cfg = load_config(path)
    mgr = PoolManager(cfg, state_dir=cfg.state_dir)
    await mgr.start()
    marker = namespace_of(mgr.state_dir)
    try:
        yield mgr, path
    finally:
        await mgr.stop()
        assert not wait_gone(marker), "sandbox processes left behind"


async def warm(app: PoolApp, pilot: Any, ready: int = 2) -> None:
    await until(pilot, lambda: app.state.current is not None and app.state.current.ready >= ready
                and len(app.state.groups["ready"]) >= ready, 20, f"{ready} ready rows")


def fetch(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as r:
        return int(r.status)


def ttl_on_screen(app: PoolApp, member_id: str) -> int:
    line = next(line for line in screen_text(app).splitlines() if member_id in line)
    minutes, seconds = re.findall(r"\b(\d+):(\d\d)\b", line)[0]
    return int(minutes) * 60 + int(seconds)


async def test_tables_fill_and_ttl_counts_down_between_refreshes(pool: tuple[PoolManager, Path]) -> None:
    mgr, _ = pool
    await mgr.warm_up(20)
    # A 30 s refresh: whatever moves on screen in the next seconds moves without a fetch.
    app = PoolApp(mgr, source="pools.toml", refresh=30.0)
    async with app.run_test(size=SIZE) as pilot:
        await warm(app, pilot)
        text = screen_text(app)
        assert "EMBEDDED" in text and "HEALTHY" in text and "ready 2/2" in text
        rows = app.table("ready").rows
        for m in rows:
            assert m.id in text and m.state == "ready" and m.url.startswith("http://127.0.0.1:")
        first = rows[0].id
        before = ttl_on_screen(app, first)
        await until(pilot, lambda: ttl_on_screen(app, first) < before, 4, "the TTL to count down")
        # The creating tab is empty once warm; the all tab has both.
        await pilot.press("4")
        await until(pilot, lambda: len(app.table("all").rows) == 2, 5, "the all tab")
        # Enter opens the detail view of the sandbox under the cursor.
        await pilot.press("1", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), 5, "the detail view")
        detail = screen_text(app)
        assert (app.table("ready").cursor_key or "?") in detail and "created" in detail and "ready" in detail
        await pilot.press("escape")


async def test_claim_shows_a_reachable_url(pool: tuple[PoolManager, Path]) -> None:
    mgr, _ = pool
    app = PoolApp(mgr, source="pools.toml")
    async with app.run_test(size=SIZE) as pilot:
        await warm(app, pilot)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ClaimScreen), 10, "the claim dialog")
        assert isinstance(app.screen, ClaimScreen)
        claim = app.screen.claim
        assert claim.url in screen_text(app)
        assert await asyncio.to_thread(fetch, claim.url) == 200
        await pilot.press("escape")
        await pilot.press("3")
        await until(pilot, lambda: [m.id for m in app.table("in-use").rows] == [claim.id], 10, "the in-use row")
        # The pool refills behind the claim.
        await warm(app, pilot)
        # Claim again and release from the dialog: the sandbox goes away.
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ClaimScreen), 10, "the second claim dialog")
        assert isinstance(app.screen, ClaimScreen)
        second = app.screen.claim
        await pilot.press("r")
        await until(pilot, lambda: second.id not in mgr.pools["web"].members, 10, "the released sandbox to go")


async def test_terminate_with_confirmation_removes_and_refills(pool: tuple[PoolManager, Path]) -> None:
    mgr, _ = pool
    app = PoolApp(mgr, source="pools.toml")
    async with app.run_test(size=SIZE) as pilot:
        await warm(app, pilot)
        victim = app.table("ready").cursor_key
        assert victim is not None
        # Cancelled: nothing happens.
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the confirmation")
        assert victim in screen_text(app)
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), 5, "the dialog to close")
        assert victim in mgr.pools["web"].members
        # Enter out of habit: the safe answer has focus, so nothing happens either.
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the confirmation")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), 5, "the dialog to close")
        assert victim in mgr.pools["web"].members
        # Confirmed: it goes, and the pool makes a new one.
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: victim not in app.state.by_id, 10, "the row to go")
        await until(pilot, lambda: app.state.current is not None and app.state.current.ready == 2
                    and victim not in {m.id for m in app.table("ready").rows}, 20, "the pool to refill")


async def test_marked_sandboxes_are_named_and_terminated_together(pool: tuple[PoolManager, Path]) -> None:
    mgr, _ = pool
    app = PoolApp(mgr, source="pools.toml")
    async with app.run_test(size=SIZE) as pilot:
        await warm(app, pilot)
        ids = [m.id for m in app.table("ready").rows]
        await pilot.press("home", "space", "space")
        assert app.state.marks == set(ids)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the confirmation")
        question = screen_text(app)
        assert all(i in question for i in ids) and "Terminate 2 sandboxes" in question
        await pilot.press("y")
        await until(pilot, lambda: not (set(ids) & set(mgr.pools["web"].members)), 10, "both to go")
        await until(pilot, lambda: not app.state.marks and app.state.current is not None
                    and app.state.current.ready == 2, 20,
                    "marks cleared and the pool refilled")


async def test_resize_changes_the_target_and_saves_the_file(pool: tuple[PoolManager, Path]) -> None:
    mgr, path = pool
    app = PoolApp(mgr, source=str(path))
    async with app.run_test(size=SIZE) as pilot:
        await warm(app, pilot)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ResizeScreen), 5, "the resize dialog")
        dialog = app.screen
        # A bad value is refused in the dialog and changes nothing.
        dialog.query_one("#target", Input).value = "9"
        await pilot.press("enter")
        assert isinstance(app.screen, ResizeScreen) and "max 6" in screen_text(app)
        for bad in ("abc", "1e3", "-1", "+3"):  # refused with the reason, never quietly changed
            dialog.query_one("#target", Input).value = bad
            await pilot.press("enter")
            assert isinstance(app.screen, ResizeScreen) and "expected a whole number" in screen_text(app), bad
        text_before = path.read_text()
        dialog.query_one("#target", Input).value = "3"
        dialog.query_one("#persist", Checkbox).value = True
        await until(pilot, lambda: "+target_ready = 3" in screen_text(app), 5, "the preview of the change")
        assert path.read_text() == text_before  # only a preview so far
        dialog.query_one("#persist", Checkbox).focus()
        await pilot.press("enter")  # on the checkbox: applies, does not toggle
        await until(pilot, lambda: app.state.current is not None and app.state.current.target_ready == 3
                    and app.state.current.ready == 3, 20, "target 3 and three ready")
        assert "ready 3/3" in screen_text(app)
        assert tomllib.loads(path.read_text())["pools"]["web"]["target_ready"] == 3
        assert load_config(path).pools["web"].target_ready == 3


async def test_pause_resume_and_drain(pool: tuple[PoolManager, Path]) -> None:
    mgr, _ = pool
    app = PoolApp(mgr, source="pools.toml")
    async with app.run_test(size=SIZE) as pilot:
        await warm(app, pilot)
        await pilot.press("p")
        await until(pilot, lambda: app.state.current is not None and app.state.current.state == "paused", 10, "paused")
        assert "PAUSED" in screen_text(app)
        assert app.dashboard.active_bindings["p"].binding.action == "app.resume"
        # Paused: claims are served but nothing refills.
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ClaimScreen), 10, "the claim dialog")
        await pilot.press("escape")
        await until(pilot, lambda: app.state.current is not None and app.state.current.counts.get("claimed") == 1, 10,
                    "the claim to show")
        assert app.state.current is not None and app.state.current.ready == 1
        await pilot.press("p")
        await until(pilot, lambda: app.state.current is not None and app.state.current.state == "healthy"
                    and app.state.current.ready == 2, 20, "resumed and refilled")
        # Drain asks first; then no new claims, ready ones retired, the claimed one left alone.
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the drain confirmation")
        await pilot.press("y")
        await until(pilot, lambda: app.state.current is not None and app.state.current.state == "draining"
                    and app.state.current.ready == 0, 20, "draining with no ready sandbox")
        assert app.state.current is not None and app.state.current.counts.get("claimed") == 1
        assert "DRAINING" in screen_text(app)
        assert app.dashboard.active_bindings["d"].enabled is False
        await pilot.press("c")  # refused by the pool: an error, no dialog
        await until(pilot, lambda: any("draining" in line for line in event_lines(app)), 10, "the refusal")
        assert not isinstance(app.screen, ClaimScreen)
        await pilot.press("p")  # resume ends the drain
        await until(pilot, lambda: app.state.current is not None and app.state.current.ready == 2, 20, "refilled")


def event_lines(app: PoolApp) -> list[str]:
    from poolui.tui.widgets.event_log import EventLog

    log = app.dashboard.query_one("#events", EventLog)
    return log.texts()


async def test_maintenance_report(pool: tuple[PoolManager, Path]) -> None:
    mgr, _ = pool
    app = PoolApp(mgr, source="pools.toml")
    async with app.run_test(size=SIZE) as pilot:
        await warm(app, pilot)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, NoticeScreen), 10, "the maintenance report")
        assert "probed 2 ready sandboxes" in screen_text(app)
        await pilot.press("escape")


class NotesKept(PoolApp):
    """Keeps every notification's text: Textual drops one from `_notifications` once its few seconds are
    up, which on a loaded machine could come before the test read it (the read-only test was flaky)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.said: list[str] = []

    def notify(self, message: str, *args: Any, **kwargs: Any) -> None:
        self.said.append(message)
        super().notify(message, *args, **kwargs)


@pytest.mark.parametrize("how", ["flag", "pool file"])
async def test_read_only_blocks_every_mutating_action(tmp_path: Path, how: str) -> None:
    path = local_pool_file(tmp_path, read_only=(how == "pool file"))
    cfg = load_config(path)
    async with PoolManager(cfg, state_dir=cfg.state_dir) as mgr:
        app = NotesKept(mgr, source=str(path), read_only=(how == "flag"))
        async with app.run_test(size=SIZE) as pilot:
            await warm(app, pilot)
            assert "READ-ONLY" in screen_text(app)
            before = mgr.pools["web"].snapshot(False)
            for key in "ctrmdp":
                await pilot.press(key)  # returns once the key has been handled
                # An enabled key would have started its operation's worker by now; each of them ends by
                # leaving a dialog open, changing the pool or logging its failure, all checked below.
                assert [w.name for w in app.workers if w.group == "action"] == [], key
                assert app.screen is app.dashboard, f"{key} opened {app.screen}"
            log = app.dashboard.query_one("#events", EventLog)
            assert not [i for i in log.items if isinstance(i, Text)], "an operation logged an outcome"
            active = app.dashboard.active_bindings
            for key in "ctrmdp":
                assert active[key].enabled is False, key
            assert active["s"].enabled and active["slash"].enabled and active["q"].enabled
            after = mgr.pools["web"].snapshot(False)
            assert after.state == before.state == "healthy"
            assert after.target_ready == before.target_ready and after.metrics["claims"]["warm"] == 0
            said = app.said
            for key in "ctrmdp":  # each key said why it did nothing
                assert any(m.startswith(f"{key} (") and m.endswith("is not available: read-only") for m in said), key
            assert set(mgr.pools["web"].members) == {m.id for m in app.table("ready").rows}
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), 5, "help")
            assert "disabled: read-only" in screen_text(app)


async def test_filter_and_sort_keep_the_cursor_on_the_same_sandbox(pool: tuple[PoolManager, Path]) -> None:
    mgr, _ = pool
    app = PoolApp(mgr, source="pools.toml")
    async with app.run_test(size=SIZE) as pilot:
        await warm(app, pilot)
        table = app.table("ready")
        await pilot.press("end")
        key = table.cursor_key
        assert key is not None
        await pilot.press("s")  # TTL order
        await pilot.press("S")  # reversed
        assert table.cursor_key == key
        await pilot.press("slash")
        for ch in key[-6:]:
            await pilot.press(ch)
        await until(pilot, lambda: [m.id for m in table.rows] == [key], 5, "the filter to leave one row")
        await pilot.press("enter", "escape")
        await until(pilot, lambda: len(table.rows) == 2, 5, "the filter to clear")
        assert table.cursor_key == key


async def test_console_runs_a_local_pool_embedded_and_quits_clean(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`poolui --config FILE` with no server up: EMBEDDED, and quitting leaves no sandbox behind."""
    for var in ("POOLUI_SERVER", "POOLUI_TOKEN", "POOLUI_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    path = local_pool_file(tmp_path)
    seen: dict[str, Any] = {}

    class QuitWhenWarm(PoolApp):
        def on_snapshot_fetched(self, msg: SnapshotFetched) -> None:
            super().on_snapshot_fetched(msg)
            if msg.snapshot.ready >= 2 and not seen:
                seen["urls"] = [m.url for m in msg.snapshot.members if m.url]
                # read once every handler of this message has run (the feed's takes the connection's
                # state from it): the first snapshot can already have both ready
                self.call_later(self.look_and_quit)

        def look_and_quit(self) -> None:
            seen["state"] = self.conn.state
            seen["header"] = screen_text(self)
            seen["marker"] = namespace_of(Path(self.control.state_dir))  # type: ignore[attr-defined]
            self.exit(0)

    args = argparse.Namespace(config=str(path), server=None, read_only=False, token_file=None, state_dir=None)
    code = await asyncio.wait_for(launch(args, QuitWhenWarm, headless=True), 60)
    assert code == 0 and seen["state"] == "embedded" and "EMBEDDED" in seen["header"]
    assert seen["urls"] and not any(listening(u) for u in seen["urls"])
    assert not wait_gone(seen["marker"])
