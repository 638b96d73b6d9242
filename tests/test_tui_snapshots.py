"""Snapshots of the console's main screens with a frozen clock and a scripted backend.

Each snapshot is the screen as text (tests/snapshots/*.txt). To accept a change after looking at the diff:
POOLUI_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_tui_snapshots.py
"""

from __future__ import annotations

import asyncio
import difflib
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from tui_support import screen_text, until

from poolui.clock import FrozenClock
from poolui.control import Control
from poolui.core.holding import claimed
from poolui.core.model import Claim, Event, Lease, MaintenanceReport, MemberView, PoolSnapshot
from poolui.errors import ServerUnreachable
from poolui.sandbox_io import ExecChunk, ExecResult
from poolui.tui.app import PoolApp
from poolui.tui.screens.confirm import ConfirmScreen
from poolui.tui.screens.detail import DetailScreen
from poolui.tui.screens.help import HelpScreen
from poolui.tui.screens.quit import QuitScreen
from poolui.tui.screens.resize import ResizeScreen
from poolui.tui.widgets.member_table import cell

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = bool(os.environ.get("POOLUI_UPDATE_SNAPSHOTS"))
SIZE = (120, 34)
T0 = 1_800_000_000.0


def member(i: int, state: str, *, age: float, ttl: float, claimed_for: float | None = None,
           key: str | None = None, health: str = "ok", probe: float | None = 4.0) -> MemberView:
    now = T0
    return MemberView(
        id=f"pu-{i:04x}c0ffee", state=state, url=f"http://127.0.0.1:{41000 + i}" if state != "creating" else "",
        created_at=now - age, ready_at=None if state in ("creating", "starting") else now - age + 0.2,
        claimed_at=None if claimed_for is None else now - claimed_for, expires_at=now + ttl,
        ttl_left=ttl, health=health if state not in ("creating", "starting") else "unknown",
        health_detail="HTTP 200" if health == "ok" else "connection refused" if health == "failing" else "",
        last_probe_at=None if probe is None or state in ("creating", "starting") else now - probe,
        claim_key=key, reason="", adopted=False,
    )


def web_members() -> list[MemberView]:
    return [
        member(1, "ready", age=291, ttl=9),
        member(2, "ready", age=210, ttl=85),
        member(3, "ready", age=95, ttl=200),
        member(4, "ready", age=12, ttl=288, health="failing"),
        member(5, "starting", age=0.4, ttl=299.6),
        member(6, "claimed", age=180, ttl=120, claimed_for=61, key="ci-job-4411"),
        member(7, "claimed", age=150, ttl=150, claimed_for=3, key=None),
    ]


def snapshot(name: str, clock: FrozenClock, members: list[MemberView], *, state: str = "healthy",
             reason: str = "", read_only: bool = False, target: int = 4) -> PoolSnapshot:
    counts = {s: 0 for s in ("creating", "starting", "ready", "claimed", "failed", "terminating")}
    for m in members:
        counts[m.state] += 1
    return PoolSnapshot(
        name=name, provider="local", isolation="bubblewrap", state=state, reason=reason, target_ready=target,
        min_ready=1, max_ready=10, max_total=20, counts=counts, waiting=0, members=members,
        metrics={"claims": {"warm": 41, "cold": 2, "failed": 0, "timed_out": 0}, "hit_rate": 41 / 43,
                 "claim_latency": {"p50": 0.0012, "p95": 0.004, "p99": 0.183},
                 # The same claims in the last minute, as the engine's window says them (core/window.py):
                 # the header, the overview and the trends read these.
                 "windows": {label: {"window": seconds, "claims": 43, "hits": 41, "cold": 2, "refusals": 0,
                                     "timeouts": 0, "hit_rate": 41 / 43, "p50": 0.0012, "p99": 0.183,
                                     "per_minute": 43 * 60 / seconds, "series": [0] * 17 + [1] * 43}
                             for label, seconds in (("1m", 60), ("5m", 300))}},
        config={"ttl": 300.0, "min_remaining_ttl": 120.0}, taken_at=clock.time(), read_only=read_only,
    )


class QuietFeed:
    """An event feed of a quiet pool: nothing more happens."""

    dropped = 0

    def __aiter__(self) -> QuietFeed:
        return self

    async def __anext__(self) -> Event:
        await asyncio.Event().wait()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        return None


class ScriptedControl:
    """Two pools with fixed members; mutating calls are recorded, never applied. Checked by mypy against
    the control contract (see the assignment below the class), so it cannot drift from the real ones."""

    def __init__(self, clock: FrozenClock, read_only: bool = False) -> None:
        self.clock = clock
        self.read_only = read_only
        self.calls: list[tuple[Any, ...]] = []
        self.down = False
        self.pools = ["web", "gpu"]

    @property
    def embedded(self) -> bool:
        return True

    def _snap(self, pool: str) -> PoolSnapshot:
        if self.down:
            raise ServerUnreachable("no poolui server at http://127.0.0.1:8765: connection refused")
        if pool == "gpu":
            return snapshot("gpu", self.clock, [member(9, "creating", age=2, ttl=298)], state="degraded",
                            reason="3 creates failed in a row; last: readiness timeout after 10s", target=2)
        return snapshot("web", self.clock, web_members(), read_only=self.read_only)

    async def names(self) -> list[str]:
        return list(self.pools)

    async def snapshot(self, pool: str, members: bool = True) -> PoolSnapshot:
        return self._snap(pool)

    async def list_pools(self, members: bool = False) -> list[PoolSnapshot]:
        return [self._snap(n) for n in self.pools]

    async def recent_events(self, pool: str | None = None, limit: int = 200) -> list[Event]:
        kinds = [("created", 5, "creating", ""), ("starting", 5, "starting", "http://127.0.0.1:41005"),
                 ("claimed", 7, "claimed", ""), ("terminated", 8, "gone", "released"),
                 ("probe_failed", 4, "ready", "connection refused"), ("resized", None, None, "target 4, min 1, max 10")]
        return [Event(i + 1, T0 - 30 + i * 5, "web", kind, None if mid is None else f"pu-{mid:04x}c0ffee", st, d)
                for i, (kind, mid, st, d) in enumerate(kinds)]

    def events(self, pool: str | None = None, size: int = 1000) -> QuietFeed:
        return QuietFeed()

    async def config_path(self) -> str | None:
        return "config/local.toml"

    async def claim(self, pool: str, timeout: float | None = None, check_health: bool = False,
                    claim_key: str | None = None, lease: float | None = None, env: dict[str, str] | None = None,
                    files: dict[str, bytes | str] | None = None) -> Claim:
        self.calls.append(("claim", pool))
        return Claim("pu-0003c0ffee", pool, "http://127.0.0.1:41003", T0 + 200, True, 0.0011)

    async def exec(self, pool: str, sandbox_id: str, argv: list[str], env: dict[str, str] | None = None,
                   cwd: str = "", stdin: bytes | str = b"", timeout: float | None = None,
                   max_output: int | None = None) -> AsyncIterator[ExecChunk | ExecResult]:
        self.calls.append(("exec", pool, sandbox_id, argv))
        yield ExecChunk("stdout", b"hello from the sandbox\n")
        yield ExecResult(0, duration=0.004)

    async def put_file(self, pool: str, sandbox_id: str, path: str, data: bytes, mode: int = 0o644) -> int:
        self.calls.append(("put_file", pool, sandbox_id, path))
        return len(data)

    async def get_file(self, pool: str, sandbox_id: str, path: str) -> bytes:
        return b""

    async def put_tar(self, pool: str, sandbox_id: str, path: str, data: bytes) -> int:
        return 0

    async def get_tar(self, pool: str, sandbox_id: str, path: str) -> bytes:
        return b""

    async def run(self, pool: str, argv: list[str], env: dict[str, str] | None = None,
                  files: dict[str, bytes | str] | None = None, cwd: str = "", stdin: bytes | str = b"",
                  timeout: float | None = None, claim_timeout: float | None = None,
                  max_output: int | None = None) -> AsyncIterator[ExecChunk | ExecResult]:
        self.calls.append(("run", pool, argv))
        yield ExecResult(0)

    async def terminate(self, pool: str, ids: list[str]) -> list[str]:
        self.calls.append(("terminate", pool, ids))
        return ids

    async def resize(self, pool: str, target: int | None = None, min_ready: int | None = None,
                     max_ready: int | None = None, persist: bool = False) -> PoolSnapshot:
        self.calls.append(("resize", pool, {"target": target, "min_ready": min_ready, "max_ready": max_ready,
                                            "persist": persist}))
        return self._snap(pool)

    async def drain(self, pool: str, wait: bool = False, timeout: float | None = None) -> PoolSnapshot:
        self.calls.append(("drain", pool))
        return self._snap(pool)

    async def pause(self, pool: str) -> PoolSnapshot:
        self.calls.append(("pause", pool))
        return self._snap(pool)

    async def resume(self, pool: str) -> PoolSnapshot:
        self.calls.append(("resume", pool))
        return self._snap(pool)

    async def release(self, pool: str, sandbox_id: str) -> bool:
        self.calls.append(("release", pool, sandbox_id))
        return True

    async def renew(self, pool: str, sandbox_id: str, lease: float | None = None) -> Lease:
        self.calls.append(("renew", pool, sandbox_id))
        return Lease(sandbox_id, pool, T0 + (lease or 30), T0 + 200)

    async def release_claim(self, pool: str, claim_key: str) -> bool:
        self.calls.append(("release_claim", pool, claim_key))
        return False

    def claimed(self, pool: str, timeout: float | None = None, check_health: bool = False,
                claim_key: str | None = None, lease: float | None = None) -> AbstractAsyncContextManager[Claim]:
        return claimed(self, pool, timeout, check_health, claim_key, lease)

    async def maintain(self, pool: str) -> MaintenanceReport:
        self.calls.append(("maintain", pool))
        return MaintenanceReport(pool, probed=4)


def _meets_the_contract(c: ScriptedControl) -> Control:
    return c  # mypy fails here when the double's verbs differ from the contract's


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Event times are shown in local time; the snapshots are taken in UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def compare(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if UPDATE or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text + "\n")
        if not UPDATE:
            pytest.fail(f"{path} did not exist; written now: look at it, then commit it")
        return
    expected = path.read_text().rstrip("\n")
    if text != expected:
        diff = "\n".join(difflib.unified_diff(expected.splitlines(), text.splitlines(), "expected", "now",
                                              lineterm=""))
        pytest.fail(f"{name} differs from {path} (POOLUI_UPDATE_SNAPSHOTS=1 accepts it):\n{diff}")


async def open_app(control: ScriptedControl, clock: FrozenClock, **kw: Any) -> PoolApp:
    kw.setdefault("pool", "web")  # a pool asked for: its view, not the overview a file of two pools opens on
    app = PoolApp(control, pools=await control.names(), source="config/local.toml", clock=clock, refresh=3600.0,
                  **kw)
    app.animation_level = "none"  # the tab underline slides; a snapshot must not catch it halfway
    return app


async def settled(app: PoolApp, pilot: Any) -> None:
    await until(pilot, lambda: app.state.current is not None and len(app.table().rows) > 0
                and len(app.dashboard.query_one("#events").items) >= 6, 10, "the first snapshot")  # type: ignore
    await pilot.pause()


async def test_dashboard() -> None:
    clock = FrozenClock(wall=T0)
    app = await open_app(ScriptedControl(clock), clock)
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot)
        compare("dashboard", screen_text(app))
        await pilot.press("3")
        await until(pilot, lambda: app.state.active_tab == "in-use" and len(app.table().rows) == 2, 5, "in-use tab")
        compare("dashboard_in_use", screen_text(app))


async def test_ttl_moves_with_the_clock_alone() -> None:
    clock = FrozenClock(wall=T0)
    app = await open_app(ScriptedControl(clock), clock)
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot)
        before = screen_text(app)
        assert "0:09" in before and "1:25" in before
        clock.advance(5)
        app.tick_second()
        await pilot.pause()
        after = screen_text(app)
        assert "0:04" in after and "1:20" in after and "0:09" not in after


def test_ttl_colour_levels() -> None:
    levels = {m.id: cell("ttl", m, False, T0, 120.0)[1] for m in web_members()}
    assert levels["pu-0001c0ffee"] == "ttl-critical"  # 9 s left
    assert levels["pu-0002c0ffee"] == "ttl-low"  # 85 s < min_remaining_ttl 120 s
    assert levels["pu-0003c0ffee"] == ""


async def test_confirmation_names_the_sandboxes() -> None:
    clock = FrozenClock(wall=T0)
    control = ScriptedControl(clock)
    app = await open_app(control, clock)
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot)
        await pilot.press("space", "space", "t")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the confirmation")
        await pilot.pause()
        compare("confirm_terminate", screen_text(app))
        await pilot.press("y")
        await until(pilot, lambda: control.calls and control.calls[-1][0] == "terminate", 5, "the call")
        assert control.calls[-1] == ("terminate", "web", ["pu-0001c0ffee", "pu-0002c0ffee"])


async def test_quitting_asks_about_claimed_sandboxes() -> None:
    """Embedded with claimed sandboxes, `q` asks (keep them, terminate all, stay), starting on Stay."""
    clock = FrozenClock(wall=T0)
    app = await open_app(ScriptedControl(clock), clock)
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), 5, "the question")
        await pilot.pause()
        compare("quit_claimed", screen_text(app))
        await pilot.press("enter")  # out of habit: Stay is focused
        await until(pilot, lambda: not isinstance(app.screen, QuitScreen), 5, "the question to close")
        assert app.return_code is None


async def test_resize_dialog() -> None:
    clock = FrozenClock(wall=T0)
    control = ScriptedControl(clock)
    app = await open_app(control, clock)
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ResizeScreen), 5, "the dialog")
        await pilot.pause()
        compare("resize", screen_text(app))
        await pilot.press("backspace", "6", "tab", "tab", "tab", "space", "shift+tab", "enter")
        await until(pilot, lambda: control.calls and control.calls[-1][0] == "resize", 5, "the call")
        assert control.calls[-1] == ("resize", "web", {"target": 6, "min_ready": 1, "max_ready": 10,
                                                       "persist": True})


async def test_help_and_detail() -> None:
    clock = FrozenClock(wall=T0)
    app = await open_app(ScriptedControl(clock), clock)
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), 5, "help")
        await pilot.pause()
        compare("help", screen_text(app))
        await pilot.press("escape", "down", "down", "down", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), 5, "the detail view")
        await pilot.pause()
        compare("detail", screen_text(app))


async def test_read_only_and_disconnected() -> None:
    clock = FrozenClock(wall=T0)
    control = ScriptedControl(clock, read_only=True)
    app = await open_app(control, clock)
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot)
        compare("read_only", screen_text(app))
        control.down = True
        app.fetch()
        await until(pilot, lambda: app.conn.state == "disconnected", 5, "disconnected")
        await pilot.pause()
        header = "\n".join(screen_text(app).splitlines()[:3])  # the data's age is the frozen clock's: exact
        header = re.sub(r"retry \d+ in \d+s", "retry N in Ns", header)  # retries happen on real time
        compare("disconnected_header", header)


async def test_pool_switcher_shows_a_degraded_pool() -> None:
    clock = FrozenClock(wall=T0)
    app = await open_app(ScriptedControl(clock), clock)
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot)
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: app.state.pool == "gpu" and app.state.current is not None
                    and app.state.current.name == "gpu",
                    5, "the gpu pool")
        await pilot.pause()
        compare("degraded_pool", screen_text(app))


async def test_command_palette_runs_actions_and_leaves_out_disabled_ones() -> None:
    clock = FrozenClock(wall=T0)
    control = ScriptedControl(clock)
    app = await open_app(control, clock)
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot)
        await pilot.press("ctrl+p", *"pause")
        await until(pilot, lambda: "Pause (p)" in screen_text(app), 5, "the palette's hit")
        await pilot.press("enter")
        await until(pilot, lambda: ("pause", "web") in control.calls, 5, "the pause call")

    ro = ScriptedControl(clock, read_only=True)
    app = await open_app(ro, clock)
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot)
        await pilot.press("ctrl+p", *"cl")
        # "cl" matches both; once the enabled one is listed, the search is done and the other must be absent.
        await until(pilot, lambda: "Clear marks" in screen_text(app), 5, "the palette's enabled hit")
        assert "Claim (c)" not in screen_text(app)


async def claimed_detail(app: PoolApp, pilot: Any) -> Any:
    """The detail view of the first sandbox on the in-use tab."""
    await settled(app, pilot)
    await pilot.press("3", "enter")
    await until(pilot, lambda: isinstance(app.screen, DetailScreen), 5, "the detail view")
    return app.screen


async def test_the_detail_view_runs_a_command_in_a_claimed_sandbox() -> None:
    clock = FrozenClock(wall=T0)
    control = ScriptedControl(clock)
    app = await open_app(control, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await claimed_detail(app, pilot)
        assert isinstance(screen, DetailScreen) and screen.member.state == "claimed"
        await pilot.press("x", *"echo hi", "enter")
        await until(pilot, lambda: any(c[0] == "exec" for c in control.calls), 5, "the exec")
        def output() -> str:
            return "\n".join(line.plain for line in screen.output_lines())

        await until(pilot, lambda: "exit code 0" in output(), 5, "the output")
        assert "hello from the sandbox" in output()
        assert ("exec", "web", screen.member.id, ["echo", "hi"]) in control.calls


async def test_the_detail_view_runs_nothing_in_read_only_mode() -> None:
    clock = FrozenClock(wall=T0)
    control = ScriptedControl(clock, read_only=True)
    app = await open_app(control, clock)
    async with app.run_test(size=SIZE) as pilot:
        await claimed_detail(app, pilot)
        await pilot.press("x")
        await until(pilot, lambda: any("read-only" in str(n.message) for n in app._notifications), 5, "a notice")
        assert not any(c[0] == "exec" for c in control.calls)
        assert app.screen.query_one("#exec-input").has_class("hidden")
