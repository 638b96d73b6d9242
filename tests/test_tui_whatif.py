"""The console's what-if (`f`, issue 27): a pool's own claims replayed at another target or with autoscaling,
pressed as a person would against real embedded pools of the instant provider that have served claims, and
once against a real `poolui serve`. Also the claims' record itself (ClaimsSeen), fed as the console feeds it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from rich.text import Text
from test_tui import NotesKept
from test_tui_remote import start_server
from textual.command import CommandPalette
from textual.widgets import Input
from tui_support import free_port, screen_text, until

from poolui import connect
from poolui.config import PoolConfig
from poolui.config.autoscale import AutoscaleConfig
from poolui.core.manager import PoolManager
from poolui.core.model import Event
from poolui.pool_file import load_config, parse_config
from poolui.sim import whatif
from poolui.sim.createtime import CreateTime
from poolui.sim.sweep import Plan
from poolui.sim.whatif import AUTOSCALE, MIN_CLAIMS, ClaimsSeen
from poolui.tui.app import PoolApp
from poolui.tui.screens.overview import OverviewScreen
from poolui.tui.screens.resize import ResizeScreen
from poolui.tui.screens.whatif import WhatIfScreen, source_text
from poolui.tui.widgets.pool_table import PoolTable

SERVED = 30  # claims each pool has served before the console opens: enough to predict from


def pool_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"provider": "instant", "target_ready": 2, "min_ready": 0, "max_ready": 40,
                            "max_total": 60, "ttl": "1h", "claim_timeout": "2s", "health": {"enabled": False},
                            "price_per_hour": 0.5}
    return {**body, **over}


def pool_file(tmp_path: Path, pools: dict[str, dict[str, Any]], port: int | None = None) -> Path:
    data: dict[str, Any] = {"pools": pools, "server": {"listen": f"127.0.0.1:{port or free_port()}",
                                                       "state_dir": str(tmp_path / "state"),
                                                       "on_shutdown": "terminate"}}
    path = tmp_path / "pools.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


async def serve_claims(control: Any, pool: str, n: int) -> None:
    for _ in range(n):
        claim = await control.claim(pool)
        await control.release(pool, claim.id)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[PoolManager]:
    """'web' (autoscale table in its file) has served SERVED claims, 'quiet' only 3."""
    path = pool_file(tmp_path, {"web": pool_body(autoscale={"min": 1, "max": 20, "hit_rate": 0.95}),
                                "quiet": pool_body()})
    async with PoolManager(load_config(path), store="memory") as mgr:
        await serve_claims(mgr, "web", SERVED)
        await serve_claims(mgr, "quiet", 3)
        yield mgr


def words(text: str) -> str:
    """The screen's words in order, borders left out: a sentence the box wraps reads whole."""
    return " ".join(text.replace("│", " ").split())


def dialog(app: PoolApp) -> WhatIfScreen:
    assert isinstance(app.screen, WhatIfScreen), type(app.screen)
    return app.screen


async def opened(app: PoolApp, pilot: Any) -> WhatIfScreen:
    await pilot.press("f")
    await until(pilot, lambda: isinstance(app.screen, WhatIfScreen) and app.screen.inputs is not None, 15,
                "the what-if with its inputs")
    return dialog(app)


async def test_the_key_predicts_each_target_and_the_autoscaler(served: PoolManager) -> None:
    app = NotesKept(served, source="pools.toml", pool="web")
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.state.current is not None, 10, "the first snapshot")
        screen = await opened(app, pilot)
        # The pool autoscales: its own setting is the autoscaler of its file, replayed first.
        await until(pilot, lambda: AUTOSCALE in screen.results and "meets the goal, 95% warm" in screen_text(app),
                    15, "the pool's own setting, against its goal")
        text = screen_text(app)
        assert f"{SERVED} claims over" in text and "now: autoscale" in text, text
        assert "autoscale: the pool file" in text, text
        # Type a target: a large one (more ready sandboxes than the claims) is all warm ...
        await pilot.press(*"40")
        await until(pilot, lambda: 40 in screen.results, 15, "target 40")
        assert screen.results[40].hit_rate == 1.0 and "what-if: target 40" in screen_text(app)
        # ... then step down to 0 with -: nothing ready, no claim warm, each waits its claim_timeout.
        await pilot.press("ctrl+u", "1", "minus")
        await until(pilot, lambda: screen.choice == 0 and 0 in screen.results, 15, "target 0")
        zero = screen.results[0]
        assert zero.hit_rate == 0.0 < screen.results[40].hit_rate and zero.wait(50) == pytest.approx(2.0)
        await until(pilot, lambda: "what-if: target 0" in screen_text(app), 5, "target 0 shown")
        line = next(x for x in screen_text(app).splitlines() if "warm-hit rate" in x)
        assert line.split("│")[1].split()[-1] == "0.0%", line  # the what-if's column, inside the box
        # + steps up again; a goes back to the autoscaler, which r cannot apply (the pool file sets it).
        await pilot.press("plus")
        await until(pilot, lambda: 1 in screen.results and "what-if: target 1" in screen_text(app), 15, "1")
        await pilot.press("a")
        await until(pilot, lambda: "what-if: autoscale" in screen_text(app), 5, "the autoscaler picked")
        await pilot.press("r")
        assert app.screen is screen and "autoscaling is set in the pool file: [pools.web.autoscale]" in app.said
        # r on a target: the resize dialog with it, applied only from there.
        await pilot.press("5")
        await until(pilot, lambda: 5 in screen.results, 15, "target 5")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ResizeScreen), 5, "the resize dialog")
        assert app.screen.query_one("#target", Input).value == "5"
        assert served.pools["web"].snapshot(False).target_ready != 5
        await pilot.press("enter")
        await until(pilot, lambda: served.pools["web"].snapshot(False).target_ready == 5, 10, "the resize")
        assert app.screen is app.dashboard


async def test_too_few_claims_says_so_and_replays_nothing(served: PoolManager) -> None:
    app = PoolApp(served, source="pools.toml", pool="quiet")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.state.current is not None, 10, "the first snapshot")
        # From the command palette this time: its entry names the key.
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), 5, "the palette")
        await pilot.press(*"what-if")
        await until(pilot, lambda: "What-if (f)" in screen_text(app), 5, "the palette's entry")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, WhatIfScreen) and app.screen.inputs is not None, 15,
                    "the what-if with its inputs")
        screen = dialog(app)
        await until(pilot, lambda: "too few claims" in screen_text(app), 5, "the warning")
        text = screen_text(app)
        assert f"3 recorded for pool 'quiet', at least {MIN_CLAIMS} needed" in words(text), text
        await pilot.press("plus", "a")
        assert not screen.results and screen.choice is None
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.dashboard, 5, "the what-if to close")


async def test_on_the_overview_at_80x24_it_is_the_highlighted_pool_and_fits(served: PoolManager) -> None:
    app = PoolApp(served, pools=list(served.pools), source="pools.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen)
                    and app.screen.query_one(PoolTable).cursor_pool == "web", 10, "the overview on web")
        screen = await opened(app, pilot)
        assert screen.pool == "web"
        await until(pilot, lambda: "replaying" not in screen_text(app) and len(screen.results) >= 3, 30,
                    "the sweep")
        lines = screen_text(app).splitlines()
        assert len(lines) <= 24 and all(len(x) <= 80 for x in lines)
        text = "\n".join(lines)
        for seen in ("what-if: pool web", "claims over", "try target", "warm-hit rate", "claim wait p50 / p99",
                     "idle sandbox-h", "idle cost", "esc closes"):
            assert seen in text, (seen, text)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen), 5, "back on the overview")


async def test_against_a_server(tmp_path: Path) -> None:
    """The same over HTTP: the inputs come from a `poolui serve` over the control contract."""
    port = free_port()
    path = pool_file(tmp_path, {"web": pool_body(target_ready=3)}, port)
    proc = await start_server(path, port)
    client = connect.connect(server=f"http://127.0.0.1:{port}", config=str(path))
    try:
        await serve_claims(client, "web", SERVED)
        app = PoolApp(client, source="server")
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.state.current is not None, 15, "the first snapshot")
            screen = await opened(app, pilot)
            await until(pilot, lambda: 3 in screen.results, 15, "the pool's own target replayed")
            text = screen_text(app)
            assert f"{SERVED} claims over" in text and "now: target 3" in text and "0.50/sandbox-h" in text
    finally:
        await client.aclose()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


def load_config_text(body: dict[str, Any]) -> PoolConfig:
    return parse_config({"pools": {"web": body}}, "pools.toml").pools["web"]


def ev(seq: int, ts: float, kind: str, member: str, pool: str = "web") -> Event:
    return Event(seq, ts, pool, kind, member, "claimed" if kind == "claimed" else "gone")


def test_claims_seen_skips_repeats_and_follows_a_restarted_server() -> None:
    seen = ClaimsSeen()
    first = [ev(1, 100.0, "claimed", "a"), ev(2, 105.0, "released", "a"), ev(3, 110.0, "claimed", "b")]
    seen.feed(first)
    seen.feed(first)  # a backlog after a reconnect repeats what the stream brought
    seen.feed([ev(4, 112.0, "released", "b")])
    seen.feed([ev(1, 200.0, "claimed", "c")])  # a restarted server numbers from 1 again, later
    trace, left_out = seen.trace("web", 210.0)
    assert trace.claims == [(0.0, 5.0), (10.0, 2.0), (100.0, 10.0)] and left_out == 0  # c held until now
    assert trace.start == 100.0 and trace.horizon == 110.0
    seen.add("web", first)  # the pool's own log, seen before: nothing counts twice
    assert seen.trace("web", 210.0)[0].claims == trace.claims


def test_claims_seen_keeps_the_last_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whatif, "MAX_CLAIMS", 5)
    seen = ClaimsSeen()
    for i in range(8):
        at = 1000.0 + 10 * i
        seen.feed([ev(2 * i + 1, at, "claimed", f"m{i}"), ev(2 * i + 2, at + 1, "released", f"m{i}")])
    trace, left_out = seen.trace("web", 1100.0)
    assert trace.claims == [(10.0 * i, 1.0) for i in range(5)] and left_out == 3 and trace.start == 1030.0
    # The screen says what the cap left out.
    cfg = load_config_text(pool_body())
    inputs = whatif.Inputs(Plan(cfg, trace, CreateTime("fixed", 2.0)), AutoscaleConfig(), "defaults", 2, "static",
                           left_out)
    said = Text.from_markup(source_text(inputs)).plain
    assert "5 claims over 1m10s" in said and "(the last 5 within 1d00h; 3 older left out)" in said, said
