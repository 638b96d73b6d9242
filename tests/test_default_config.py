"""The default pool file: the command line runs an editable copy in $XDG_CONFIG_HOME/poolui, made on first use
from the packaged one, never the packaged file itself (a saved resize would write into the package)."""

from __future__ import annotations

import argparse
import asyncio
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from test_tui import NotesKept
from textual.widgets import Checkbox
from tui_support import local_pool_file, screen_text, until, wait_gone

from poolui import connect, paths
from poolui.core.store import namespace_of
from poolui.errors import ConfigError
from poolui.pool_file import DEFAULT_CONFIG, config_path, load_config
from poolui.tui.app import PoolApp
from poolui.tui.launch import launch
from poolui.tui.screens.resize import ResizeScreen


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """XDG_CONFIG_HOME and XDG_STATE_HOME in a temporary directory, no POOLUI_ variable set."""
    for k in list(os.environ):
        if k.startswith("POOLUI_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))
    yield tmp_path


def test_the_copy_is_made_once_from_the_packaged_file(xdg: Path) -> None:
    shipped = DEFAULT_CONFIG.read_bytes()
    copy = config_path(None)
    assert copy == xdg / "config-home" / "poolui" / "local.toml"
    assert copy.read_text().startswith("# Your copy of poolui's default pool file (made from ")
    assert copy.read_text().endswith(DEFAULT_CONFIG.read_text())
    assert load_config(copy).pools == load_config(DEFAULT_CONFIG).pools
    assert connect.load(None).path == copy.resolve()
    copy.write_text(copy.read_text().replace("target_ready = 3", "target_ready = 2"))
    assert config_path(None) == copy and "target_ready = 2" in copy.read_text()  # the user's edit stays
    assert DEFAULT_CONFIG.read_bytes() == shipped
    assert sorted(p.name for p in copy.parent.iterdir()) == ["local.toml"]  # no temporary file left


def test_no_copy_can_be_made_says_where_and_what_to_do(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = xdg / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocked))
    with pytest.raises(ConfigError, match="cannot make the editable copy of the default pool file there") as e:
        connect.load(None)
    assert str(blocked / "poolui" / "local.toml") in str(e.value) and "--config FILE" in str(e.value)


def test_xdg_directories_and_the_default_token_file(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert paths.config_dir() == xdg / "config-home" / "poolui"
    assert paths.default_state_dir() == xdg / "state-home" / "poolui"
    e = connect.find_endpoint(server="http://127.0.0.1:9")
    assert e.token_path == (xdg / "state-home" / "poolui" / "token").resolve()
    assert e.token_source == f"{e.token_path} (the default token file)"
    # The XDG spec: a relative path there is invalid and ignored (it would depend on the directory a
    # command happens to start in).
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")
    monkeypatch.setenv("XDG_CONFIG_HOME", "")
    home = Path(os.path.expanduser("~"))
    assert paths.default_state_dir() == home / ".local" / "state" / "poolui"
    assert paths.config_dir() == home / ".config" / "poolui"


async def resize_and_save(app: NotesKept, pilot: Any, target: str) -> ResizeScreen:
    """r, a new target typed over the old one, the "save" box ticked with space; the dialog stays open."""
    await pilot.press("r")
    await until(pilot, lambda: isinstance(app.screen, ResizeScreen), 5, "the resize dialog")
    dialog = app.screen
    assert isinstance(dialog, ResizeScreen)
    await pilot.press(*target, "tab", "tab", "tab")
    assert app.focused is dialog.query_one("#persist", Checkbox)
    await pilot.press("space")
    return dialog


async def test_the_default_console_saves_a_resize_in_the_users_copy(
        xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in for the packaged pool file (local sandboxes, a listen address nothing uses, no state_dir,
    # so the state goes to $XDG_STATE_HOME), so the test never meets a server on the default port.
    data = tomllib.loads(local_pool_file(xdg).read_text())
    del data["server"]["state_dir"]
    shipped = xdg / "site-packages" / "poolui" / "config" / "local.toml"
    shipped.parent.mkdir(parents=True)
    shipped.write_text(tomli_w.dumps(data))
    shipped_text = shipped.read_text()
    monkeypatch.setattr("poolui.pool_file.DEFAULT_CONFIG", shipped)
    copy = xdg / "config-home" / "poolui" / "local.toml"
    seen: dict[str, Any] = {}

    async def run(app: PoolApp) -> int:
        assert isinstance(app, NotesKept)
        async with app.run_test(size=(160, 40)) as pilot:
            await until(pilot, lambda: app.state.current is not None and app.state.current.ready == 2, 30,
                        "two ready")
            seen["embedded"], seen["state_dir"] = app.control.embedded, getattr(app.control, "state_dir", None)
            dialog = await resize_and_save(app, pilot, "3")
            seen["label"] = str(dialog.query_one("#persist", Checkbox).label)
            await until(pilot, lambda: "+target_ready = 3" in screen_text(app), 5, "the preview")
            await pilot.press("enter")
            await until(pilot, lambda: any(m.startswith("resized web: target 3") for m in app.said), 10, "resized")
            seen["first"] = [m for m in app.said if m.startswith("resized web")]
            saved = copy.read_bytes()
            # The same sizes again with "save" ticked: the file already says so; nothing written or said.
            await resize_and_save(app, pilot, "3")
            await until(pilot, lambda: "the file already says so" in screen_text(app), 5, "the preview")
            await pilot.press("enter")
            await until(pilot, lambda: len([m for m in app.said if m.startswith("resized web")]) == 2, 10, "again")
            seen["second"] = [m for m in app.said if m.startswith("resized web")][1]
            seen["unchanged"] = copy.read_bytes() == saved
            await pilot.press("q")
            await until(pilot, lambda: app.return_code is not None, 30, "the console to quit")
        return int(app.return_value or 0)

    how = argparse.Namespace(config=None, server=None, read_only=False, token_file=None, state_dir=None)
    assert await asyncio.wait_for(launch(how, NotesKept, run=run), 90) == 0
    assert seen["embedded"] is True
    assert Path(seen["state_dir"]) == (xdg / "state-home" / "poolui").resolve()
    assert seen["label"] == f"save to {copy.resolve()} (space)"
    assert seen["first"] == [f"resized web: target 3, min 1, max 6; saved to {copy.resolve()}"]
    assert seen["second"] == "resized web: target 3, min 1, max 6" and seen["unchanged"]
    assert tomllib.loads(copy.read_text())["pools"]["web"]["target_ready"] == 3
    assert shipped.read_text() == shipped_text  # the package's file is never written
    assert not wait_gone(namespace_of(Path(seen["state_dir"])))
