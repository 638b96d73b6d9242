"""The pools overview (issue 26, defect 5), driven by Pilot against three real embedded pools of local
sandboxes: one healthy and claimed from, one small, one whose sandboxes never start (degraded, with a
claimer waiting on it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from test_tui import NotesKept
from test_tui_snapshots import T0, ScriptedControl, compare, member, open_app, snapshot
from textual.coordinate import Coordinate
from tui_support import SERVER_CMD, free_port, local_pool_file, screen_text, until, wait_gone

from poolui.clock import FrozenClock
from poolui.core.manager import PoolManager
from poolui.core.model import PoolSnapshot
from poolui.core.store import namespace_of
from poolui.pool_file import load_config
from poolui.tui.app import PoolApp
from poolui.tui.screens.help import HelpScreen
from poolui.tui.screens.overview import OverviewScreen, why_text
from poolui.tui.widgets.pool_table import PoolTable

LARGE = (200, 50)
SMALL = (80, 24)


def pool_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "provider": "local", "command": SERVER_CMD, "target_ready": 1, "min_ready": 1, "max_ready": 4,
        "max_total": 6, "ttl": "5m", "min_remaining_ttl": "30s", "ttl_jitter": 0.0, "max_concurrent_creates": 2,
        "readiness": {"http": "/", "timeout": "10s", "interval": "10ms"},
        "health": {"http": "/", "interval": "1h", "timeout": "2s"}, "maintenance_interval": "1h",
    }
    body.update(over)
    return body


def three_pools(tmp_path: Path) -> Path:
    data = {
        "pools": {
            "web": pool_body(target_ready=2),
            "api": pool_body(),
            # Exits at once: every create fails, the pool degrades with the reason.
            "gpu": pool_body(command=["sh", "-c", "exit 3"], create_retries=2, claim_timeout="60s"),
        },
        "server": {"listen": f"127.0.0.1:{free_port()}", "state_dir": str(tmp_path / "state"),
                   "on_shutdown": "terminate"},
    }
    path = tmp_path / "pools.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


@pytest.fixture
async def three(tmp_path: Path) -> AsyncIterator[PoolManager]:
    """Three running embedded pools; afterwards no sandbox process may be left."""
    cfg = load_config(three_pools(tmp_path))
    mgr = PoolManager(cfg, state_dir=cfg.state_dir)
    await mgr.start()
    marker = namespace_of(mgr.state_dir)
    try:
        yield mgr
    finally:
        await mgr.stop()
        assert not wait_gone(marker), "sandbox processes left behind"


def rows(app: PoolApp) -> list[str]:
    table = app.screen.query_one(PoolTable)
    return [str(table.coordinate_to_cell_key(Coordinate(i, 0)).row_key.value) for i in range(table.row_count)]


def line_of(text: str, pool: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(pool + " "))


async def settled(app: PoolApp, pilot: Any, mgr: PoolManager) -> None:
    """Web warm and claimed from once, gpu degraded with a claimer waiting on it."""
    await until(pilot, lambda: isinstance(app.screen, OverviewScreen), 10, "the overview as the start screen")
    await until(pilot, lambda: mgr.pools["web"].snapshot(False).ready >= 2, 20, "web warm")
    await mgr.claim("web")
    await until(pilot, lambda: "degraded" in screen_text(app) and "1 " in line_of(screen_text(app), "gpu")
                and "100%" in line_of(screen_text(app), "web") and "healthy" in line_of(screen_text(app), "web"),
                20, "gpu degraded with a waiter, web's hit, web refilled")


async def test_overview_is_the_start_screen_and_opens_a_pool(three: PoolManager) -> None:
    mgr = three
    waiter = asyncio.ensure_future(mgr.claim("gpu", timeout=60))
    app = PoolApp(mgr, pools=list(mgr.pools), source="pools.toml")
    try:
        async with app.run_test(size=LARGE) as pilot:
            await settled(app, pilot, mgr)
            text = screen_text(app)
            for title in ("POOL", "STATE", "READY", "MIN/MAX", "NEW", "USED", "WAIT", "HIT 1m", "COLD", "REFUSED",
                          "TIMEOUT", "P50", "P99", "FAILS", "TTL<MIN", "IDLE/H", "WASTE", "ISOLATION", "WHY"):
                assert title in text, title
            assert rows(app) == ["web", "api", "gpu"]  # the file's order
            web, gpu = line_of(text, "web"), line_of(text, "gpu")
            assert "healthy" in web and "100%" in web and "ms" in web and "1/4" in web
            assert "degraded!" in gpu and "creates failed in a row" in gpu and "1 " in gpu.split("degraded")[1]
            assert "—" in line_of(text, "api")  # no claims: no made-up hit rate or latency
            # Sorted by state, worst first: the degraded pool leads.
            await pilot.press("s")
            await until(pilot, lambda: rows(app)[0] == "gpu", 5, "state order")
            assert "sort state, worst first" in screen_text(app)
            # The window: 5 minutes.
            await pilot.press("w")
            await until(pilot, lambda: "HIT 5m" in screen_text(app), 5, "the 5m window")
            # The cursor stayed on its pool through the sort; Enter opens the highlighted one.
            assert app.screen.query_one(PoolTable).cursor_pool == "web"
            await pilot.press("home", "enter")
            await until(pilot, lambda: app.screen is app.dashboard and app.state.pool == "gpu"
                        and app.state.current is not None and app.state.current.name == "gpu", 10, "gpu's view")
            await pilot.press("o")
            await until(pilot, lambda: isinstance(app.screen, OverviewScreen), 5, "the overview again")
            second = rows(app)[1]
            await pilot.press("down", "enter")
            await until(pilot, lambda: app.screen is app.dashboard and app.state.pool == second, 10, "its view")
    finally:
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)


async def test_overview_fits_80x24(three: PoolManager) -> None:
    mgr = three
    app = PoolApp(mgr, pools=list(mgr.pools), source="pools.toml")
    async with app.run_test(size=SMALL) as pilot:
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen) and len(rows(app)) == 3
                    and "degraded" in screen_text(app), 20, "three rows")
        await until(pilot, lambda: "q Quit" in screen_text(app).splitlines()[-1], 5, "the footer")
        text = screen_text(app)
        lines = text.splitlines()
        assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
        header = next(line for line in lines if "POOL" in line)
        for title in ("STATE", "READY", "USED", "WAIT", "HIT 1m", "P99"):  # what on-call reads first stays
            assert title in header, title
        assert "ISOLATION" not in header  # the least needed gave way
        assert all(any(line.strip().startswith(p + " ") for line in lines) for p in ("web", "api", "gpu"))
        footer = lines[-1]
        assert "? Help" in footer and "q Quit" in footer and "o Pool view" in footer
        # The line under the table says everything about the highlighted pool, even what the columns lost.
        await pilot.press("down", "down")
        await until(pilot, lambda: "creates failed in a row" in screen_text(app), 5, "gpu's why")


async def test_one_pool_starts_on_its_view_and_o_opens_the_overview(tmp_path: Path) -> None:
    path = local_pool_file(tmp_path)
    cfg = load_config(path)
    async with PoolManager(cfg, state_dir=cfg.state_dir) as mgr:
        app = NotesKept(mgr, pools=["web"], source=str(path))
        async with app.run_test(size=SMALL) as pilot:
            await until(pilot, lambda: app.state.current is not None, 20, "the first snapshot")
            assert app.screen is app.dashboard
            await pilot.press("question_mark")  # the help names the key
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), 5, "help")
            assert isinstance(app.screen, HelpScreen)
            assert any((k.key, k.description) == ("o", "Pools") and k.enabled for k in app.screen.keys)
            await pilot.press("escape")
            # ] with one pool says why it does nothing.
            await pilot.press("right_square_bracket")
            assert any("one pool" in said for said in app.said), app.said
            await pilot.press("o")
            await until(pilot, lambda: isinstance(app.screen, OverviewScreen) and rows(app) == ["web"], 5, "overview")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is app.dashboard, 5, "back")


async def test_a_pool_asked_for_opens_on_its_view(three: PoolManager) -> None:
    app = PoolApp(three, pools=list(three.pools), pool="api", source="pools.toml")
    async with app.run_test(size=SMALL) as pilot:
        await until(pilot, lambda: app.state.current is not None and app.state.current.name == "api", 20, "api")
        await pilot.pause()
        assert app.screen is app.dashboard


def windows(claims: int, hits: int, cold: int, refused: int, timeouts: int, p50: float | None,
            p99: float | None) -> dict[str, Any]:
    w = {"claims": claims, "hits": hits, "cold": cold, "refusals": refused, "timeouts": timeouts,
         "hit_rate": hits / claims if claims else None, "p50": p50, "p99": p99, "per_minute": float(claims),
         "series": [0] * 60}
    return {"1m": dict(w, window=60), "5m": dict(w, window=300, claims=claims * 4, hits=hits * 4)}


def costs(price: float | None, warming: float, idle: float, claimed: float, ready: int,
          claims: int) -> dict[str, Any]:
    """A cost report (core/cost.py) from sandbox-hours by part."""
    seconds = {"warming": warming * 3600, "idle": idle * 3600, "claimed": claimed * 3600, "ending": 0.0}
    total = warming + idle + claimed
    spent = None if price is None else total * price
    return {"sandbox_seconds": seconds, "price_per_hour": price, "cost": spent,
            "idle_cost": None if price is None else idle * price,
            "idle_cost_per_hour": None if price is None else ready * price, "claims": claims,
            "cost_per_claim": spent / claims if spent is not None and claims else None,
            "waste_ratio": idle / total if total else None}


class ThreePools(ScriptedControl):
    """The snapshot tests' two pools and a third, with windows, a waiting claimer, a create error and costs
    (web and gpu priced, batch not)."""

    def __init__(self, clock: FrozenClock) -> None:
        super().__init__(clock)
        self.pools = ["web", "gpu", "batch"]

    def _snap(self, pool: str) -> PoolSnapshot:
        if pool == "batch":
            snap = snapshot("batch", self.clock, [member(20, "ready", age=30, ttl=40)], target=1)
            snap.metrics.update(windows=windows(0, 0, 0, 0, 0, None, None))
            snap.near_ttl = 1
            snap.setpoint, snap.sizing = 3, "autoscale"  # READY reads 1/3~, the why line says who set it
            snap.metrics.update(cost=costs(None, 0.2, 8.6, 2.9, 1, 12))
            return snap
        snap = super()._snap(pool)
        if pool == "gpu":
            snap.waiting, snap.longest_wait = 2, 47.0
            snap.metrics.update(windows=windows(5, 0, 1, 1, 3, 9.5, 9.5), create_failures=3,
                                last_create_error="readiness timeout after 10s",
                                cost=costs(2.5, 1.5, 0.0, 0.1, 0, 5))
        else:
            snap.metrics.update(windows=windows(43, 41, 2, 0, 0, 0.0012, 0.183),
                                cost=costs(0.36, 0.2, 8.6, 2.9, 4, 500))
        return snap


@pytest.mark.parametrize("size", [(120, 34), SMALL])
async def test_overview_snapshot(size: tuple[int, int]) -> None:
    clock = FrozenClock(wall=T0)
    control = ThreePools(clock)
    app = await open_app(control, clock, pool=None)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen) and len(app.state.summaries) == 3
                    and "q Quit" in screen_text(app).splitlines()[-1], 10, "the overview")
        await pilot.press("s")  # worst first
        await until(pilot, lambda: rows(app)[0] == "gpu", 5, "sorted")
        await pilot.press("home")
        await pilot.pause()
        compare(f"overview_{size[0]}x{size[1]}", screen_text(app))
        await pilot.press("end")
        await until(pilot, lambda: "target 3 set by autoscale (file: 1)" in screen_text(app), 5, "batch's why")
        assert "1/3~" in line_of(screen_text(app), "batch")


def test_the_line_under_the_table_counts_one_claim_as_one() -> None:
    snap = snapshot("web", FrozenClock(T0), [member(20, "ready", age=30, ttl=40)], target=1)
    snap.metrics.update(windows=windows(1, 1, 0, 0, 0, 0.001, 0.001))
    assert "[b]1[/] claim, 1 warm" in why_text(snap, "1m")
    snap.metrics.update(windows=windows(2, 2, 0, 0, 0, 0.001, 0.001))
    assert "[b]2[/] claims, 2 warm" in why_text(snap, "1m")
