"""The overview's cost (issue 27): the IDLE/H and WASTE columns and the cost line under the table, driven by
Pilot against two real embedded pools of the instant provider, one with a price per sandbox-hour and one
without. The engine's clock is moved on by an hour, so the pools have an hour's sandbox-hours to show without
a wait."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from test_tui_overview import LARGE, SMALL, line_of, rows
from test_tui_remote import SteppedClock
from test_tui_snapshots import snapshot
from tui_support import screen_text, until

from poolui.clock import FrozenClock
from poolui.core.manager import PoolManager
from poolui.pool_file import parse_config
from poolui.tui.app import PoolApp
from poolui.tui.screens.overview import OverviewScreen, cost_text, wrap
from poolui.tui.widgets.pool_table import COLUMNS, money


def body(**over: Any) -> dict[str, Any]:
    table: dict[str, Any] = {"provider": "instant", "target_ready": 1, "min_ready": 1, "max_ready": 4,
                             "max_total": 8, "ttl": "24h", "min_remaining_ttl": "1m", "health": {"enabled": False}}
    return {**table, **over}


@pytest.fixture
async def hour() -> AsyncIterator[PoolManager]:
    """'free' (no price) and 'web' (0.50 a sandbox-hour), each claimed from once and refilled, then an hour
    on the engine's clock: web 2 idle and 1 claimed sandbox-hours, free 1 and 1."""
    cfg = parse_config({"pools": {"free": body(), "web": body(target_ready=2, price_per_hour=0.5)}}, "pools.toml")
    clock = SteppedClock()  # the engine's: the tally counts the hour the test adds
    async with PoolManager(cfg, clock=clock, store="memory") as mgr:
        for name, ready in (("free", 1), ("web", 2)):
            await mgr.claim(name)
            deadline = time.monotonic() + 10
            while mgr.pools[name].snapshot(False).ready < ready:  # refilled (instant: at once, on the loop)
                assert time.monotonic() < deadline, f"{name} was not refilled"
                await clock.sleep(0.01)
        clock.advance(3600)
        yield mgr


WEB_HOURS = "sandbox-h warming 0.0 idle 2.0 claimed 1.0"
WEB_COST = re.compile(r"cost (\d+\.\d\d) since start · idle (\d+\.\d\d) \(67%\) · (\d+\.\d\d)/claim · "
                      r"idle now 1\.00/h")


def priced(line: str) -> None:
    """The priced pool's line: an hour of 3 sandboxes at 0.50 is 1.50, 1.00 of it idle, one claim."""
    m = WEB_COST.search(line)
    assert m, line
    spent, idle, per_claim = (float(x) for x in m.groups())
    assert spent == pytest.approx(1.5, abs=0.02) and idle == pytest.approx(1.0, abs=0.02) and per_claim == spent


def cell(header: str, row: str, title: str) -> str:
    """The word in `row` under the column `title` of `header`."""
    return row[header.index(title):].split()[0]


async def test_the_cost_column_and_line_on_a_wide_terminal(hour: PoolManager) -> None:
    app = PoolApp(hour, pools=list(hour.pools), source="pools.toml")
    async with app.run_test(size=LARGE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen)
                    and "idle 50% of 2.0 sandbox-h" in screen_text(app), 20, "free's line (the first row's)")
        text = screen_text(app)
        header = next(line for line in text.splitlines() if "POOL" in line)
        assert "IDLE/H" in header and "WASTE" in header and "ISOLATION" in header  # room for everything
        web, free = line_of(text, "web"), line_of(text, "free")
        assert (cell(header, web, "IDLE/H"), cell(header, web, "WASTE")) == ("1.00", "67%")
        assert (cell(header, free, "IDLE/H"), cell(header, free, "WASTE")) == ("—", "50%")
        assert "cost " not in text  # an unpriced pool has no sums
        # s until the idle cost per hour: the priced pool first, the unpriced last.
        for _ in range(12):
            if "idle cost per hour, most first" in screen_text(app):
                break
            await pilot.press("s")
            await pilot.pause()
        await until(pilot, lambda: rows(app) == ["web", "free"], 5, "web first")
        assert "sort idle cost per hour, most first" in screen_text(app)
        await pilot.press("home")
        await until(pilot, lambda: WEB_HOURS in screen_text(app), 5, "web's line")
        priced(next(line for line in screen_text(app).splitlines() if WEB_HOURS in line))


async def test_the_cost_line_wraps_whole_at_80x24(hour: PoolManager) -> None:
    app = PoolApp(hour, pools=list(hour.pools), source="pools.toml")
    async with app.run_test(size=SMALL) as pilot:
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen)
                    and "idle 50% of 2.0 sandbox-h" in screen_text(app), 20, "free's line")
        await pilot.press("down")
        await until(pilot, lambda: WEB_HOURS in screen_text(app), 5, "web's line")
        lines = screen_text(app).splitlines()
        assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
        header = next(line for line in lines if "POOL" in line)
        assert "IDLE/H" not in header and "WASTE" not in header  # they gave way...
        for title in ("STATE", "READY", "USED", "WAIT", "HIT 1m", "P99"):  # ...before what on-call reads first
            assert title in header, title
        # The sums on one line, the sandbox-hours whole on the next: no part is cut in two.
        at = next(i for i, line in enumerate(lines) if WEB_COST.search(line))
        priced(lines[at])
        assert lines[at + 1].strip() == WEB_HOURS


def test_a_server_too_old_to_count_the_cost() -> None:
    """No 'cost' in the snapshot: nothing made up, in the columns or under the table."""
    old = snapshot("old", FrozenClock(), [])
    assert [c.cell(old, "1m").plain for c in COLUMNS if c.key in ("idle_cost", "waste")] == ["—", "—"]
    assert cost_text(old, 80) == ""


def test_money_keeps_two_significant_digits_and_wrap_keeps_parts_whole() -> None:
    assert [money(v) for v in (4.214, 0.5, 0.0234, 0.00234, 0.0)] == ["4.21", "0.50", "0.023", "0.0023", "0.00"]
    assert wrap(["[b]aaaa[/]", "bbbb", "cc"], 11) == "[b]aaaa[/] · bbbb\ncc"  # markup takes no room
