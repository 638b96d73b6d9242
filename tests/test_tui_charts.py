"""The trends (issue 26, defect 7): charts with a labelled scale from zero, ready against target, claims per
minute from the engine's window, over the window `w` picks, and "—" where there is nothing to measure."""

from __future__ import annotations

import re
from pathlib import Path

from test_tui import pool as pool  # noqa: F401  (the fixture: a real embedded pool of local sandboxes)
from test_tui_overview import windows
from test_tui_snapshots import T0, ScriptedControl, compare, open_app, settled, snapshot
from tui_support import screen_text, until

from poolui.clock import FrozenClock
from poolui.core.manager import PoolManager
from poolui.core.model import PoolSnapshot
from poolui.tui.app import PoolApp
from poolui.tui.widgets.charts import History, bars, claims_text, outcomes_text, per_minute

SIZE = (160, 40)


def test_scale_starts_at_zero_and_a_dip_is_a_dip() -> None:
    top, bottom = bars([3, 3, 2, None, 0], top=3)
    assert top.plain == "██▃  " and bottom.plain == "███  "  # 2 of 3 is a third lower; None and 0 draw nothing
    assert bars([0.01], top=100)[1].plain == "▁"  # a claim in five minutes is not rounded away


def test_claims_per_minute_from_the_engines_steps() -> None:
    series = [0] * 59 + [3]  # 3 claims in the last 5 s step of the 5 m window
    assert per_minute(series, 300, 60)[-1] == 36.0 and per_minute(series, 300, 60)[0] == 0.0
    assert per_minute(series, 300, 30)[-1] == 18.0  # two steps to a column: the same claims over 10 s
    assert per_minute(series, 300, 1) == [0.6]


def test_no_claims_reads_a_dash_never_zero_milliseconds() -> None:
    text = claims_text(windows(0, 0, 0, 0, 0, None, None)["1m"])
    assert "p50 [b]—[/] p99 [b]—[/]" in text and "0.0ms" not in text
    w = windows(4, 3, 1, 0, 0, 0.0012, 0.2)["1m"]
    assert "p99 [b]200ms[/]" in claims_text(w) and outcomes_text(w) == "3 warm 1 cold 0 refused 0 timed out"


def panel(app: PoolApp) -> str:
    """The trends panel alone, as it is on screen."""
    r = app.dashboard.query_one("#charts").region
    lines = screen_text(app).splitlines()[r.y:r.y + r.height]
    return "\n".join(line[r.x:r.x + r.width].rstrip() for line in lines)


class Trending(ScriptedControl):
    """The web pool dips below its target and back, with claims coming faster in the last half minute."""

    def __init__(self, clock: FrozenClock) -> None:
        super().__init__(clock)
        self.ready = 4

    def _snap(self, pool: str) -> PoolSnapshot:
        snap = super()._snap(pool)
        if pool == "web":
            snap.counts["ready"] = self.ready
            snap.metrics.update(windows=windows(12, 11, 1, 0, 0, 0.0012, 0.183))
            for w in snap.metrics["windows"].values():
                w["series"] = [0] * 40 + [1] * 10 + [3] * 10
        return snap


async def test_trends_snapshot_over_a_minute_of_samples() -> None:
    clock = FrozenClock(wall=T0)
    control = Trending(clock)
    app = await open_app(control, clock)
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot)
        for ready in [4, 4, 3, 2, 2, 3, 4, 4, 4, 4, 4, 4]:  # one sample every 5 s
            clock.advance(5)
            control.ready = ready
            app.fetch()
            await until(pilot, lambda: app.state.current is not None
                        and app.state.current.taken_at == clock.time(), 5, "the sample")
        await pilot.pause()
        compare("trends", panel(app))
        assert "trends, last 1m (w)" in panel(app) and "-1m" in panel(app)
        await pilot.press("w")
        await until(pilot, lambda: "trends, last 5m (w)" in screen_text(app) and "-5m" in screen_text(app), 5,
                    "the 5m window")


async def test_a_real_pools_claims_show_in_the_chart(pool: tuple[PoolManager, Path]) -> None:
    mgr, _ = pool
    app = PoolApp(mgr, source="pools.toml", refresh=0.25)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.current is not None and app.state.current.ready >= 2, 20, "warm")
        await until(pilot, lambda: "claims/min 0  p50 — p99 —" in screen_text(app), 5, "no claims yet")
        for _ in range(2):
            claim = await mgr.claim("web")
            await mgr.release("web", claim.id)

        def chart() -> list[str]:
            return [line for line in screen_text(app).splitlines() if "┤" in line]

        await until(pilot, lambda: re.search(r"claims/min [1-9]", screen_text(app))
                    and "p99 —" not in screen_text(app), 10, "the claims in the label")
        history: History = app.state.histories["web"]
        assert history.windows["1m"]["claims"] == 2 and "2 warm 0 cold 0 refused 0 timed out" in panel(app)
        scale = [re.search(r"(\S+)┤(.*)", line) for line in chart()]  # ready's two rows, then the claims'
        top, bottom = scale[2], scale[3]
        assert top and bottom and float(top[1]) >= 60  # two claims within a second or two: 60 a minute or more
        assert bottom[1] == "0" and bottom[2].strip()  # bars from zero


def test_ready_is_drawn_against_what_refill_aims_at() -> None:
    clock = FrozenClock(wall=T0)
    history = History()
    snap = snapshot("web", clock, [], target=4)
    history.add(snap)
    assert (history.target, history.sizing) == (4, "static")
    snap.setpoint, snap.sizing = 6, "autoscale"  # an autoscaled pool aims past its target_ready
    history.add(snap)
    assert (history.target, history.sizing) == (6, "autoscale")
