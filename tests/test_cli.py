"""Argument dispatch (console, serve, --headless) and where the server and token are found."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from poolui import cli
from poolui.connect import find_endpoint, url_from_listen
from poolui.errors import ConfigError

PYTHON = sys.executable


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith("POOLUI_"):
            monkeypatch.delenv(k)


def pool_file(tmp_path: Path, server: str = "") -> Path:
    p = tmp_path / "pools.toml"
    p.write_text("[pools.a]\nprovider = 'instant'\n" + (f"[server]\n{server}\n" if server else ""))
    return p


def test_help_texts() -> None:
    r = subprocess.run([PYTHON, "-m", "poolui.cli", "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "--headless" in r.stdout and "--read-only" in r.stdout
    assert "-V, --version" in r.stdout and "$XDG_CONFIG_HOME/poolui/local.toml" in r.stdout
    for argv in (["--version"], ["--config", "nowhere.toml", "-V"]):
        r = subprocess.run([PYTHON, "-m", "poolui.cli", *argv], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout == f"poolui {cli.version()}\n", argv
    r = subprocess.run([PYTHON, "-m", "poolui.cli", "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "--listen" in r.stdout and "--on-shutdown" in r.stdout
    r = subprocess.run([PYTHON, "-m", "poolui.cli", "--headless", "--help"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 and "no TUI at all" in r.stdout and "3 UNKNOWN" in r.stdout


def test_headless_flag_anywhere_and_options_before_or_after_the_verb(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def fake_run(args: Any) -> int:
        seen.update(vars(args))
        return 0

    def fake_check(args: Any) -> int:
        seen.update(vars(args))
        return 0

    monkeypatch.setattr("poolui.headless.run_async", fake_run)
    monkeypatch.setattr("poolui.headless.cmd_check", fake_check)
    assert cli.main(["--json", "--headless", "--pool", "a", "resize", "3", "--persist"]) == 0
    assert seen["verb"] == "resize" and seen["json"] is True and seen["pool"] == "a" and seen["target"] == 3
    assert cli.main(["--headless", "check", "--server", "http://x:1", "--json"]) == 0
    assert seen["server"] == "http://x:1" and seen["json"] is True


def test_console_gets_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    got: dict[str, Any] = {}

    def run(args: Any) -> int:
        got.update(vars(args))
        return 0

    monkeypatch.setattr("poolui.tui.app.run", run)
    assert cli.main(["--config", "f.toml", "--server", "http://h:1", "--read-only"]) == 0
    assert got["config"] == "f.toml" and got["server"] == "http://h:1" and got["read_only"] is True


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"poolui {version('poolui')}\n"


@pytest.mark.parametrize(("argv", "says"), [
    (["--headless", "claim", "--wait", "inf"], "argument --wait: 'inf' is not allowed: expected seconds from 0 to"),
    (["--headless", "claim", "--lease", "0"], "argument --lease: '0' is not allowed: expected seconds from 0.1 to"),
    (["--headless", "--timeout", "nan", "list"], "argument --timeout: 'nan' is not allowed"),
    (["--headless", "resize", "100000000000000000"], "expected a whole number from 0 to 100000"),
    (["--headless", "resize", "--min", "-1"], "argument --min: '-1' is not allowed"),
    (["--headless", "drain", "--wait", "--drain-timeout", "-5"], "argument --drain-timeout: '-5' is not allowed"),
    (["serve", "--grace", "inf"], "argument --grace: 'inf' is not allowed: expected seconds from 0 to 3600"),
    (["serve", "--events-queue", "0"], "argument --events-queue: '0' is not allowed: expected a whole number from 1"),
])
def test_out_of_range_numbers_on_the_command_line_are_usage_errors(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """inf, nan, negative and huge numbers stop at the argument parser (exit 2) before anything runs."""
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2 and says in capsys.readouterr().err


def test_serve_with_a_bad_pool_file_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[pools.a]\nprovider = 'nowhere'\n")
    r = subprocess.run([PYTHON, "-m", "poolui.cli", "serve", "--config", str(bad)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and str(bad) in r.stderr and "provider" in r.stderr


def test_server_url_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    monkeypatch.setenv("POOLUI_TOKEN", "t")
    listen = pool_file(tmp_path, "listen = '0.0.0.0:9000'")
    assert find_endpoint(config=listen).url == "http://127.0.0.1:9000"
    with_url = pool_file(tmp_path, "listen = '0.0.0.0:9000'\nurl = 'https://pools.example/'")
    assert find_endpoint(config=with_url).url == "https://pools.example"
    monkeypatch.setenv("POOLUI_SERVER", "http://env:1")
    e = find_endpoint(config=with_url)
    assert (e.url, e.url_source) == ("http://env:1", "$POOLUI_SERVER")
    assert find_endpoint(server="http://flag:2", config=with_url).url == "http://flag:2"
    with pytest.raises(ConfigError, match="expected an http:// URL"):
        find_endpoint(server="ftp://x")
    assert url_from_listen("[::]:8765") == "http://[::1]:8765"
    assert url_from_listen("10.0.0.5:80") == "http://10.0.0.5:80"


def test_token_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    state = tmp_path / "state"
    state.mkdir()
    (state / "token").write_text("from-state\n")
    named = tmp_path / "named-token"
    named.write_text("from-pool-file")
    flag = tmp_path / "flag-token"
    flag.write_text("from-flag")
    cfg = pool_file(tmp_path, f"state_dir = '{state}'")
    assert find_endpoint(config=cfg).token == "from-state"
    cfg2 = pool_file(tmp_path, f"state_dir = '{state}'\ntoken_file = '{named}'")
    assert find_endpoint(config=cfg2).token == "from-pool-file"
    assert find_endpoint(config=cfg2, token_file=flag).token == "from-flag"
    assert find_endpoint(server="http://x:1", state_dir=state).token == "from-state"
    monkeypatch.setenv("POOLUI_TOKEN", "from-env")
    e = find_endpoint(config=cfg2, token_file=flag)
    assert (e.token, e.token_source) == ("from-env", "$POOLUI_TOKEN")
    monkeypatch.delenv("POOLUI_TOKEN")
    e = find_endpoint(server="http://x:1", state_dir=tmp_path / "empty")
    assert e.token is None and e.token_path == (tmp_path / "empty" / "token").resolve()
    assert e.token_source == f"{e.token_path} (in --state-dir)"


async def test_open_control_falls_back_to_embedded_only_when_no_server_was_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from poolui.connect import open_control
    from poolui.core.manager import PoolManager
    from poolui.errors import ServerUnreachable

    clean_env(monkeypatch)
    cfg = pool_file(tmp_path, f"listen = '127.0.0.1:9'\nstate_dir = '{tmp_path / 'state'}'")
    async with open_control(config=cfg) as opened:  # nothing listens on :9, nothing named: embedded
        assert isinstance(opened.control, PoolManager) and opened.control.embedded
        assert await opened.control.names() == ["a"]
    # A server named explicitly (or remote asked for) is never replaced by embedded pools, even while it
    # is down: the console shows it disconnected and retries.
    for kwargs in ({"server": "http://127.0.0.1:9"}, {"embedded": False}):
        async with open_control(config=cfg, **kwargs) as opened:
            assert not opened.control.embedded
            with pytest.raises(ServerUnreachable):
                await opened.control.names()
