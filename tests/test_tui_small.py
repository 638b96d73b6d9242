"""The console at 80x24 and at 200x50, driven with Pilot and read off the screen: rows, ports, columns,
header, footer; the tab counts under a filter, the sort order in words, and the badge of stale or lost data.

The pool is scripted (tests/test_tui_snapshots.py's ScriptedControl) with twenty sandboxes and a frozen
clock, so what the screen says is exact."""

from __future__ import annotations

import re
from typing import Any

from test_tui_snapshots import T0, ScriptedControl, member, open_app, snapshot
from tui_support import screen_text, until

from poolui.clock import FrozenClock
from poolui.core.model import MemberView, PoolSnapshot
from poolui.tui.app import PoolApp
from poolui.tui.widgets.header import PoolHeader

SMALL = (80, 24)
LARGE = (200, 50)
ALL_TITLES = ("ID", "STATE", "URL", "AGE", "TTL", "HEALTH", "PROBED", "CLAIM KEY", "FOR")


def many() -> list[MemberView]:
    """Sixteen ready sandboxes (one failing), three claimed (one with a long key) and a starting one."""
    out = [member(i, "ready", age=600 - i * 30, ttl=300 + i, health="failing" if i == 5 else "ok")
           for i in range(1, 17)]
    out += [member(i, "claimed", age=900 - i, ttl=200, claimed_for=75, key=f"ci-job-{i}-with-a-long-name")
            for i in range(17, 20)]
    out.append(member(20, "starting", age=1, ttl=299))
    return out


class BusyControl(ScriptedControl):
    """One pool, twenty sandboxes."""

    def __init__(self, clock: FrozenClock) -> None:
        super().__init__(clock)
        self.pools = ["web"]

    def _snap(self, pool: str) -> PoolSnapshot:
        super()._snap(pool)  # raises while `down`
        return snapshot("web", self.clock, many(), target=16)


async def started() -> tuple[PoolApp, BusyControl, FrozenClock]:
    clock = FrozenClock(wall=T0)
    control = BusyControl(clock)
    app = await open_app(control, clock)
    return app, control, clock


async def settled(app: PoolApp, pilot: Any) -> None:
    await until(pilot, lambda: app.state.current is not None and len(app.table().rows) == 16, 10, "16 ready rows")
    # the footer shows its keys once it has been laid out, which a loaded machine may leave to a later frame
    await until(pilot, lambda: "? Help" in footer(app), 10, "the footer's keys")
    await pilot.pause()


def lines(app: PoolApp) -> list[str]:
    return screen_text(app).splitlines()


def table_lines(app: PoolApp) -> list[str]:
    """The screen's lines that are rows of the member table."""
    return [line for line in lines(app) if re.match(r"^ *●? *pu-[0-9a-f]{4}c0ffee ", line)]


def footer(app: PoolApp) -> str:
    return lines(app)[-1]


async def test_80x24_shows_twelve_rows_every_port_one_header_line_and_a_footer_with_help_and_quit() -> None:
    app, _, _ = await started()
    async with app.run_test(size=SMALL) as pilot:
        await settled(app, pilot)
        assert app.dashboard.query_one("#header", PoolHeader).size.height == 1
        rows = table_lines(app)
        assert len(rows) >= 12, screen_text(app)
        for row in rows:  # every row's port, and no cut URL
            port = 41000 + int(re.search(r"pu-([0-9a-f]{4})", row).group(1), 16)  # type: ignore[union-attr]
            assert f":{port}" in row and "…" not in row.split()[2], row
        head = lines(app)[0]
        assert "web" in head and "HEALTHY" in head and "ready 16/16" in head
        foot = footer(app)
        assert "? Help" in foot and "q Quit" in foot and "c Claim" in foot, foot
        assert foot.rstrip().endswith("^p palette"), foot  # no key cut in half under the palette key


async def test_80x24_reaches_every_column_of_the_all_tab() -> None:
    app, _, _ = await started()
    async with app.run_test(size=SMALL) as pilot:
        await settled(app, pilot)
        await pilot.press("4")
        await until(pilot, lambda: len(app.table().rows) == 20, 5, "the all tab")
        await pilot.pause()
        seen: set[str] = set()
        for _ in range(len(ALL_TITLES)):
            title_line = next(line for line in lines(app) if line.lstrip().startswith("ID "))
            seen |= {t for t in ALL_TITLES if re.search(rf"(^|\s|‹){t}( [▲▼])?(\s|›|$)", title_line)}
            if not title_line.rstrip().endswith("›"):
                break
            await pilot.press("right")
            await pilot.pause()
        assert seen == set(ALL_TITLES), seen
        assert "ci-job-17-" in screen_text(app) and "1m15s" in screen_text(app)  # CLAIM KEY and FOR cells
        assert "pu-0011c0ffee" in screen_text(app)  # the ID column stays while the others scroll
        await pilot.press("left", "left", "left", "left")
        await pilot.pause()
        assert "‹" not in screen_text(app) and "URL" in screen_text(app)


async def test_200x50_shows_every_column_full_urls_and_every_footer_key() -> None:
    app, _, _ = await started()
    async with app.run_test(size=LARGE) as pilot:
        await settled(app, pilot)
        assert app.dashboard.query_one("#header", PoolHeader).size.height == 1
        head = lines(app)[0]
        assert "p99 183ms" in head and "hit 95%" in head and "local · bubblewrap" in head
        text = screen_text(app)
        assert all(f"http://127.0.0.1:{41000 + i}" in text for i in range(1, 17))
        await pilot.press("4")
        await until(pilot, lambda: len(app.table().rows) == 20, 5, "the all tab")
        await pilot.pause()
        title_line = next(line for line in lines(app) if line.lstrip().startswith("ID "))
        assert all(t in title_line for t in ALL_TITLES) and "›" not in title_line
        foot = footer(app)
        for key in ("c Claim", "t Terminate", "space Mark", "r Resize", "m Maintain", "d Drain", "p Pause",
                    "/ Filter", "s Sort", "+/- Rate", "? Help", "q Quit"):
            assert key in foot, foot


async def test_tab_counts_follow_the_filter() -> None:
    app, _, _ = await started()
    async with app.run_test(size=SMALL) as pilot:
        await settled(app, pilot)
        assert "Ready 16  Creating 1  In use 3  All 20" in screen_text(app)
        await pilot.press("slash", *"failing")
        await until(pilot, lambda: "Ready 1  Creating 0  In use 0  All 1" in screen_text(app), 5,
                    "the counts of what the filter shows")
        await pilot.press("escape")
        await until(pilot, lambda: "Ready 16  Creating 1  In use 3  All 20" in screen_text(app), 5,
                    "the counts back without the filter")


async def test_age_up_lists_the_oldest_first_and_the_status_line_says_so() -> None:
    app, _, _ = await started()
    async with app.run_test(size=SMALL) as pilot:
        await settled(app, pilot)
        text = screen_text(app)
        assert "AGE ▲" in text and "sort: AGE ▲ oldest first" in text
        ids = [row.split()[0] for row in table_lines(app)]
        assert ids[:3] == ["pu-0001c0ffee", "pu-0002c0ffee", "pu-0003c0ffee"]  # 9m30s, 9m00s, 8m30s old
        await pilot.press("S")
        await until(pilot, lambda: "sort: AGE ▼ newest first" in screen_text(app), 5, "the reversed order")
        # The cursor stays on its sandbox (now the last row), so the table's order is read, not the screen's top.
        assert [m.id for m in app.table().rows][:2] == ["pu-0010c0ffee", "pu-000fc0ffee"]
        assert "pu-0001c0ffee" in table_lines(app)[-1]


async def test_80x24_badge_turns_stale_then_disconnected_with_the_data_age_and_the_retry_key() -> None:
    app, control, clock = await started()
    async with app.run_test(size=SMALL) as pilot:
        await settled(app, pilot)
        assert "HEALTHY" in lines(app)[0] and "STALE" not in screen_text(app)
        clock.advance(10)  # no snapshot for 10 s at a 1 h refresh: not stale yet (3 periods)
        app.tick_second()
        await pilot.pause()
        assert "HEALTHY" in lines(app)[0]
        app.refresh_interval = 1.0  # at 1 s, 10 s without a snapshot is stale
        app.tick_second()
        await until(pilot, lambda: "STALE" in lines(app)[0], 5, "the stale badge")
        assert "data 10s old" in lines(app)[0] and "HEALTHY" not in lines(app)[0]

        control.down = True
        clock.advance(32)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: "DISCONNECTED" in lines(app)[0], 5, "the disconnected badge")
        head = lines(app)[0]
        assert "data 42s old" in head and "ctrl+r retry now" in head and "STALE" not in head, head
        assert "connection refused" in lines(app)[1]  # the alert line says why
        assert len(table_lines(app)) >= 12  # the last data stays, as many rows as before

        control.down = False
        await pilot.press("ctrl+r")
        await until(pilot, lambda: "HEALTHY" in lines(app)[0], 5, "the pool's own badge again")
        assert "DISCONNECTED" not in screen_text(app)
        assert app.dashboard.query_one("#header", PoolHeader).size.height == 1


async def test_80x24_with_two_pools_gives_the_pool_switchers_width_to_the_table() -> None:
    """Under 100 columns the pool switcher steps aside (`[`, `]` and the overview still switch pools): the
    ready tab's every column is in view, its count in the tab's label; at 120 it is back."""
    clock = FrozenClock(wall=T0)
    app = await open_app(ScriptedControl(clock), clock)  # web and gpu, web shown
    async with app.run_test(size=SMALL) as pilot:
        await until(pilot, lambda: app.state.current is not None and len(app.table().rows) == 4
                    and len(app.state.pool_names) == 2, 10, "web's four ready rows")
        await pilot.pause()
        assert not app.dashboard.query_one("#pools").display and "pools" not in lines(app)[1]
        title_line = next(line for line in lines(app) if line.lstrip().startswith("ID "))
        assert all(t in title_line for t in ("STATE", "URL", "AGE", "TTL", "HEALTH", "PROBED")), title_line
        assert "Ready 4  Creating 1  In use 2  All 7" in screen_text(app)
        assert "o Pools" in footer(app) and footer(app).rstrip().endswith("? Help q Quit ▏^p palette")
        await pilot.resize_terminal(120, 30)
        await until(pilot, lambda: "● gpu 0/2 degraded" in screen_text(app), 5, "the pool switcher")
