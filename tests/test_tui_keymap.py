"""The console's user keymap: `[keymap]` in console.toml rebinds keys by binding id, refuses what is not
allowed, and the rebound key really runs the action (Pilot key presses)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_tui_snapshots import SIZE, T0, ScriptedControl, open_app, settled
from tui_support import until

from poolui.clock import FrozenClock
from poolui.errors import ConfigError
from poolui.tui.app import PoolApp
from poolui.tui.keymap import CONSOLE_CONFIG_ENV, console_config_path, load_keymap
from poolui.tui.screens.confirm import ConfirmScreen


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "console.toml"
    path.write_text(text)
    return path


def test_every_binding_has_an_id_a_keymap_can_name() -> None:
    ids = PoolApp.binding_ids()
    assert {"claim", "terminate", "resize", "maintain", "drain", "pause", "resume", "filter", "help"} <= ids


def test_keymap_is_read_by_id(tmp_path: Path) -> None:
    path = write(tmp_path, '# mine\n[keymap]\nterminate = "x"\nfaster = " plus , k "\n')
    assert load_keymap(path, PoolApp.binding_ids()) == {"terminate": "x", "faster": "plus,k"}


def test_no_file_is_no_keymap(tmp_path: Path) -> None:
    assert load_keymap(tmp_path / "absent.toml", PoolApp.binding_ids()) == {}


@pytest.mark.parametrize(("text", "says"), [
    ('[keymap]\nterminat = "x"\n', "'terminat' is not a console binding; allowed: "),
    ('[keymap]\nterminate = ""\n', "terminate = '' is not allowed"),
    ('[keymap]\nterminate = 3\n', "terminate = 3 is not allowed"),
    ('keymap = "x"\n', "[keymap] must be a table"),
    ('[keymap\n', "cannot read the console config"),
])
def test_bad_keymaps_are_refused_with_what_is_allowed(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_keymap(path, PoolApp.binding_ids())
    assert says in str(e.value) and str(path) in str(e.value)


def test_config_path_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONSOLE_CONFIG_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert console_config_path() == tmp_path / "xdg" / "poolui" / "console.toml"
    monkeypatch.setenv(CONSOLE_CONFIG_ENV, str(tmp_path / "named.toml"))
    assert console_config_path() == tmp_path / "named.toml"


async def test_a_rebound_key_runs_its_action_and_the_old_one_does_not() -> None:
    clock = FrozenClock(wall=T0)
    control = ScriptedControl(clock)
    app = await open_app(control, clock, keymap={"terminate": "x"})
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot)
        await pilot.press("t")  # returns once the key has been handled: t is no longer terminate
        assert [w.name for w in app.workers if w.group == "action"] == []
        assert app.screen is app.dashboard
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: any(c[0] == "terminate" for c in control.calls), 5, "the terminate call")
        assert control.calls[-1] == ("terminate", "web", ["pu-0001c0ffee"])


def test_a_bad_keymap_stops_the_console_with_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, '[keymap]\nnope = "x"\n')
    env = {CONSOLE_CONFIG_ENV: str(path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "poolui.cli", "--state-dir", str(tmp_path / "state")],
                       capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stderr
    assert "'nope' is not a console binding" in r.stderr
