"""The header's hit rate and claim latency are over the window the overview and the trends show (1m, or 5m
after `w`), not since the server's start: claims roll out of it as the engine's clock moves, and with no claim
in the window the header says "—". A real pool (instant sandboxes) on a clock the test moves."""

from __future__ import annotations

from pathlib import Path

from test_engine import config
from tui_support import screen_text, until

from poolui.clock import FrozenClock
from poolui.core.manager import PoolManager
from poolui.tui.app import PoolApp


def header(app: PoolApp) -> str:
    return screen_text(app).splitlines()[0]


async def test_the_headers_claims_roll_out_of_the_window(tmp_path: Path) -> None:
    clock = FrozenClock()  # the engine's and the console's: claims leave the window when the test says
    async with PoolManager(config(target_ready=2), state_dir=tmp_path, clock=clock) as mgr:
        await mgr.warm_up(10)
        app = PoolApp(mgr, pools=["p"], source="pools.toml", refresh=0.25, clock=clock)
        async with app.run_test(size=(160, 40)) as pilot:
            await until(pilot, lambda: "1m hit —  p50 —  p99 —" in header(app), 10, "no claim yet: dashes")
            for _ in range(3):
                await mgr.warm_up(10)  # every claim warm: the hit rate is exact
                claim = await mgr.claim("p")
                await mgr.release("p", claim.id)
            await until(pilot, lambda: "1m hit 100%" in header(app), 10, "the window's three warm claims")
            assert "p50 0.0ms  p99 0.0ms" in header(app)  # measured (on a clock that stood still), not "—"

            clock.advance(61)  # past the minute: the claims count only in the five minutes now
            await until(pilot, lambda: "1m hit —  p50 —  p99 —" in header(app), 10, "the claims out of 1m")
            assert (await mgr.snapshot("p")).metrics["hit_rate"] == 1.0  # since the start: still all warm

            await pilot.press("w")  # the overview's and the trends' window key: the header follows
            await until(pilot, lambda: "5m hit 100%" in header(app), 5, "the five-minute window")
            assert "p99 0.0ms" in header(app)
            clock.advance(240)
            await until(pilot, lambda: "5m hit —  p50 —  p99 —" in header(app), 10, "the claims out of 5m")
            await pilot.press("w")
            await until(pilot, lambda: "1m hit —" in header(app), 5, "back to the minute")
