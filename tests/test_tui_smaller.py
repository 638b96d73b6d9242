"""Issue 26's smaller console items, pressed as a person would against a real embedded pool of local
sandboxes: keys that do nothing say why, the claim dialog says "copied" only when it was, a palette an
operator can read, the detail view's own keys and its command line, and the events' level."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import test_tui
from textual.command import CommandList, CommandPalette
from tui_support import screen_text, until

from poolui.core.manager import PoolManager
from poolui.tui.app import PoolApp
from poolui.tui.screens.claim import ClaimScreen
from poolui.tui.screens.confirm import ConfirmScreen
from poolui.tui.screens.detail import DetailScreen
from poolui.tui.widgets.event_log import EventLog

SIZES = [(80, 24), (160, 50)]
NotesKept = test_tui.NotesKept
pool = test_tui.pool  # the fixture: a real embedded pool of two local sandboxes, checked for leftovers


Pool = tuple[PoolManager, Path]


async def warm(app: PoolApp, pilot: Any) -> None:
    await until(pilot, lambda: app.state.current is not None and len(app.state.groups["ready"]) >= 2, 20,
                "two ready rows")


@pytest.mark.parametrize("size", SIZES)
async def test_keys_that_do_nothing_say_why(pool: Pool, size: tuple[int, int]) -> None:
    mgr, _ = pool
    app = NotesKept(mgr, source="pools.toml")
    async with app.run_test(size=size) as pilot:
        await warm(app, pilot)
        await pilot.press("2")  # Creating: empty once warm
        await until(pilot, lambda: app.state.active_tab == "creating", 5, "the creating tab")
        await pilot.press("enter", "space")
        assert app.screen is app.dashboard and not app.state.marks
        assert "nothing to open: no creating sandboxes" in app.said
        assert "nothing to mark: no creating sandboxes" in app.said
        # In the detail view, the dashboard's keys do nothing, and say so; its own are in its footer.
        await pilot.press("1", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), 15, "the detail view")
        await pilot.press("c")
        assert any(m.startswith("c (Claim)") and "esc closes this view" in m for m in app.said), app.said
        assert isinstance(app.screen, DetailScreen) and mgr.pools["web"].snapshot(False).counts["claimed"] == 0
        text = screen_text(app)
        footer = text.splitlines()[-1]
        assert "esc Close" in footer and "x Run a command" in footer and "Terminate" not in footer, footer
        assert "x: run a command · esc: close" in text  # the close hint on the view itself


async def test_the_claim_dialog_says_copied_only_when_it_was(pool: Pool, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    mgr, _ = pool
    for var in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    app = PoolApp(mgr, source="pools.toml")
    async with app.run_test(size=(100, 30)) as pilot:
        await warm(app, pilot)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ClaimScreen), 10, "the claim dialog")
        dialog = app.screen
        assert isinstance(dialog, ClaimScreen)
        await until(pilot, lambda: dialog.copied is not None, 10, "the copy's outcome")
        text = screen_text(app)
        assert dialog.claim.url in text and "could not copy" in text and "copied to the clipboard" not in text
        # With a clipboard tool on a display (a stand-in for wl-copy that keeps what it is given), it is.
        bin_dir, kept = tmp_path / "bin", tmp_path / "clipboard"
        bin_dir.mkdir()
        (bin_dir / "wl-copy").write_text(f"#!/bin/sh\n/bin/cat > {kept}\n")
        (bin_dir / "wl-copy").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-test")
        await pilot.press("y")
        await until(pilot, lambda: "copied to the clipboard (wl-copy)" in screen_text(app), 10, "the copy")
        assert kept.read_text() == dialog.claim.url
        assert "could not copy" not in screen_text(app)


def palette_entries(app: PoolApp) -> list[str]:
    options = app.screen.query_one(CommandList).options
    return [str(o.prompt).splitlines()[0] for o in options]


async def test_the_palette_holds_what_an_operator_needs(pool: Pool) -> None:
    mgr, _ = pool
    app = PoolApp(mgr, source="pools.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await warm(app, pilot)
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette)
                    and any(e.startswith("Claim") for e in palette_entries(app)), 5, "the palette")
        entries = palette_entries(app)
        for clutter in ("Maximize", "Screenshot", "Theme", "Keys", "Copy selected text", "Up", "Down",
                        "Scroll Left", "Focus Next", "Page Left"):
            assert not any(e.split(" (")[0] == clutter for e in entries), (clutter, entries)
        assert [e for e in entries if e.startswith("Quit")] == ["Quit (q)"], entries
        for wanted in ("Claim (c)", "Terminate (t)", "Resize (r)", "Drain (d)", "Filter (/)", "Help (?)",
                       "Details (⏎)", "Event level (e)", "Tab In use (3)", "Clear marks and filter"):
            assert wanted in entries, (wanted, entries)
        assert len(entries) <= 35, entries


@pytest.mark.parametrize("size", SIZES)
async def test_the_detail_views_command_line(pool: Pool, size: tuple[int, int]) -> None:
    """Echo and output on lines of their own, stderr apart from stdout, Esc leaves the command line before
    it closes the view, and the command line, its history and output are there when the view opens again."""
    mgr, _ = pool
    claim = await mgr.claim("web")
    app = PoolApp(mgr, source="pools.toml")
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: [m.id for m in app.state.groups["in-use"]] == [claim.id], 10, "the claim")
        await pilot.press("3", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), 15, "the detail view")
        view = app.screen
        assert isinstance(view, DetailScreen)
        command = "sh -c 'printf out1; echo err1 >&2; echo; echo out2'"
        await pilot.press("x", *command, "enter")
        await until(pilot, lambda: any("exit code 0" in t.plain for t in view.output_lines()), 15, "the end")
        lines = [(t.plain, str(t.style)) for t in view.output_lines()]
        assert lines[0] == (f"$ {command}", "bold cyan")
        assert ("out1", "") in lines and ("out2", "") in lines and ("err1", "red") in lines, lines
        screen = screen_text(app).splitlines()
        assert any(line.strip(" │").startswith("$ sh -c") and line.rstrip(" │").endswith("out2'")
                   for line in screen), "\n".join(screen)  # the echo is a line of its own on screen
        assert any(line.strip(" │") == "err1" for line in screen) and "exit code 0" in "\n".join(screen)
        # A draft, then Esc: out of the command line, the view stays; Esc again closes it.
        await pilot.press(*"echo draft", "escape")
        assert isinstance(app.screen, DetailScreen) and app.screen.focused is None
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.dashboard, 5, "the view to close")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), 5, "the detail view again")
        again = app.screen
        line = again.query_one("#exec-input")
        assert line.display and line.value == "echo draft"  # type: ignore[attr-defined]
        assert "out2" in screen_text(app)
        await pilot.press("x", "up")
        assert line.value == command  # type: ignore[attr-defined]
        await pilot.press("down")
        assert line.value == "echo draft"  # type: ignore[attr-defined]


def kinds(lines: list[str]) -> set[str]:
    """The kinds of event lines ("HH:MM:SS kind ..."; an action line's is "»")."""
    return {line.split()[1] for line in lines}


async def test_events_filtered_by_level(pool: Pool) -> None:
    mgr, _ = pool
    app = PoolApp(mgr, source="pools.toml")
    async with app.run_test(size=(160, 50)) as pilot:
        await warm(app, pilot)
        log = app.dashboard.query_one("#events", EventLog)
        await pilot.press("p")
        await until(pilot, lambda: any(" paused " in t for t in log.texts()), 10, "paused")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the drain question")
        await pilot.press("y")
        await until(pilot, lambda: any("draining" in t for t in log.texts()), 10, "draining")
        await pilot.press("c")  # refused while draining: an error line
        await until(pilot, lambda: any("claim failed" in t for t in log.texts()), 10, "the refusal")
        everything = log.shown_texts()
        assert "ready" in kinds(everything)
        await pilot.press("e")
        warnings = log.shown_texts()
        assert warnings and not {"ready", "created", "claimed"} & kinds(warnings), warnings
        assert "paused" in kinds(warnings) and any("claim failed" in t for t in warnings)
        assert "events: warnings and errors" in screen_text(app)
        await pilot.press("e")
        errors = log.shown_texts()
        assert errors and all("failed" in t for t in errors), errors
        assert "events: errors only" in screen_text(app)
        await pilot.press("e")
        assert log.shown_texts()[:len(everything)] == everything
