"""The keys that change a pool: claim, terminate (and marking what it acts on), resize, maintain, drain, pause,
resume. Each binding sits on its action; every call goes through `_op`, which reports success or failure
in a notification and the event pane and refreshes at once. Also what the outcomes are read in: the event
pane's level (`e`), and the command palette's contents (Textual's own entries left out).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar, TypeVar

from textual import events, on, work
from textual.app import SystemCommand
from textual.screen import Screen

from ..core.model import MaintenanceReport
from . import view
from .base import describe
from .feed import Feed
from .keys import Keys
from .messages import ActionFinished
from .screens.claim import ClaimScreen
from .screens.confirm import ConfirmScreen, NoticeScreen
from .screens.resize import ResizeScreen
from .widgets.event_log import LEVEL_TITLES, EventLog
from .widgets.member_table import MemberTable

T = TypeVar("T")
KEYS = Keys()


class Failed:
    """What `_op` returns when the call raised (already reported)."""


class Operations(Feed):
    """Actions that call the control contract; disabled (dimmed) while read-only or disconnected."""

    MUTATING: ClassVar[frozenset[str]] = frozenset()  # filled in below, once every key is declared

    async def _op(self, what: str, call: Callable[[], Awaitable[T]], done: Callable[[T], str]) -> T | Failed:
        """Run one call of the contract; say what it did (`done`) or why it failed, then refresh."""
        try:
            result = await call()
        except Exception as e:
            self.post_message(ActionFinished(f"{what} failed: {describe(e)}", severity="error", error=e))
            return Failed()
        self.post_message(ActionFinished(done(result)))
        return result

    def on_action_finished(self, msg: ActionFinished) -> None:
        """Log and notify the outcome of a call, then fetch what it changed."""
        self.log_action(msg.text, error=msg.error is not None)
        self.notify(msg.text, severity=msg.severity,  # type: ignore[arg-type]
                    timeout=8 if msg.error is not None else 4)
        self.fetch()

    @work(group="action", exit_on_error=False, description="claim")
    @KEYS.bind("c", "Claim", id="claim", mutating=True,
               tooltip="Claim a ready sandbox: shows its URL and copies it (saying whether it could)")
    async def action_claim(self) -> None:
        """Claim a sandbox, show it, and release it if the operator says so."""
        pool = self.state.pool
        if pool is None:
            return
        claim = await self._op("claim", lambda: self.control.claim(pool), lambda c: f"claimed {c.id}: {c.url}")
        if isinstance(claim, Failed):
            return
        choice = await self.push_screen_wait(ClaimScreen(claim, claim.expires_at - self.now()))
        if choice == "release":
            await self._op(f"release of {claim.id}", lambda: self.control.release(pool, claim.id),
                           lambda _: f"released {claim.id}")

    @KEYS.bind("t", "Terminate", id="terminate", mutating=True,
               tooltip="Terminate the marked sandboxes, or the one under the cursor, after a confirmation naming them")
    def action_terminate(self) -> None:
        """Terminate what is marked, or the sandbox under the cursor, after a confirmation."""
        ids = self.state.targets(self.table().cursor_key)
        if not ids or self.state.pool is None:
            self.notify("nothing to terminate: move the cursor to a sandbox or mark some with space",
                        severity="warning")
            return
        self._terminate(self.state.pool, ids)  # the targets are the ones seen at the key press

    @work(group="action", exit_on_error=False, description="terminate")
    async def _terminate(self, pool: str, ids: list[str]) -> None:
        claimed = [i for i in ids if (m := self.state.member(i)) is not None and m.state == "claimed"]
        body = f"Terminate {len(ids)} sandbox{'es' if len(ids) != 1 else ''} of pool '{pool}'?\n\n{view.names(ids)}"
        if claimed:
            body += f"\n\n{len(claimed)} of them claimed (in use): {view.names(claimed)}"
        body += "\n\nThe pool refills to its target."
        if not await self.push_screen_wait(ConfirmScreen("terminate", body, "Terminate")):
            return
        done = await self._op("terminate", lambda: self.control.terminate(pool, ids),
                              lambda d: f"terminating {view.names(d) if d else 'nothing (already going)'}")
        if not isinstance(done, Failed):
            self.call_later(self._unmark, ids)

    def _unmark(self, ids: list[str]) -> None:
        self.state.marks.difference_update(ids)
        self.show_table()
        self.update_status()

    @KEYS.bind("space", "Mark", id="mark",
               tooltip="Mark or unmark the sandbox under the cursor (for terminate); esc clears marks")
    def action_mark(self) -> None:
        """Mark or unmark the sandbox under the cursor, and move down."""
        table = self.table()
        key = table.cursor_key
        if key is None:
            self.notify(f"nothing to mark: {table.empty_text}", severity="warning", timeout=3)
            return
        self.state.toggle_mark(key)
        table.marks = frozenset(self.state.marks)
        table.action_cursor_down()
        table.refresh()
        self.update_status()

    @work(group="action", exit_on_error=False, description="resize")
    @KEYS.bind("r", "Resize", id="resize", mutating=True,
               tooltip="Change target / min / max ready, optionally saving them to the pool file")
    async def action_resize(self, target: int | None = None) -> None:
        """Ask for new sizes (the target proposed, from the what-if), then resize (and save if asked)."""
        snap, pool, path = self.state.current, self.state.pool, self.state.config_path
        if snap is None or pool is None:
            return
        req = await self.push_screen_wait(ResizeScreen(snap, path, target))
        if req is None:
            return
        saved = f"; saved to {path or 'the pool file'}" if req.persist else ""
        await self._op("resize", lambda: self.control.resize(pool, target=req.target, min_ready=req.min_ready,
                                                             max_ready=req.max_ready, persist=req.persist),
                       lambda _: f"resized {pool}: target {req.target}, min {req.min_ready}, "
                                 f"max {req.max_ready}{saved}")

    @work(group="action", exit_on_error=False, description="maintain")
    @KEYS.bind("m", "Maintain", id="maintain", mutating=True,
               tooltip="Run maintenance now: probe ready sandboxes, retire unhealthy/expiring/stale ones, refill")
    async def action_maintain(self) -> None:
        """Run a maintenance pass now and show what it did."""
        pool = self.state.pool
        if pool is None:
            return
        report = await self._op("maintenance", lambda: self.control.maintain(pool),
                                lambda r: f"maintenance of {pool}: probed {r.probed}, removed {r.removed()}, "
                                          f"created {r.created}")
        if not isinstance(report, Failed):
            await self.push_screen_wait(NoticeScreen(f"maintenance of {pool}", maintenance_text(report)))

    @work(group="action", exit_on_error=False, description="drain")
    @KEYS.bind("d", "Drain", id="drain", mutating=True,
               tooltip="Drain the pool (asks first): no new claims, ready ones retired, claimed ones left to finish")
    async def action_drain(self) -> None:
        """Drain the pool after a confirmation that says what it will do."""
        snap, pool = self.state.current, self.state.pool
        if snap is None or pool is None:
            return
        claimed = snap.counts.get("claimed", 0)
        body = (f"Drain pool '{pool}'?\n\nIt takes no new claims, retires its {snap.ready} ready and "
                f"{snap.counts.get('creating', 0) + snap.counts.get('starting', 0)} creating sandboxes and stops "
                f"refilling. {claimed} claimed sandbox{'es are' if claimed != 1 else ' is'} left to finish.\n\n"
                "p resumes the pool afterwards.")
        if await self.push_screen_wait(ConfirmScreen("drain", body, "Drain")):
            await self._op("drain", lambda: self.control.drain(pool), lambda _: f"draining {pool}")

    @work(group="action", exit_on_error=False, description="pause")
    @KEYS.bind("p", "Pause", id="pause", mutating=True, tooltip="Pause refill: claims are still served")
    async def action_pause(self) -> None:
        """Stop refilling; claims are still served."""
        if (pool := self.state.pool) is not None:
            await self._op("pause", lambda: self.control.pause(pool),
                           lambda _: f"paused {pool}: claims served, no refill")

    @work(group="action", exit_on_error=False, description="resume")
    @KEYS.bind("p", "Resume", id="resume", mutating=True, tooltip="Resume refill (also ends a drain)")
    async def action_resume(self) -> None:
        """Refill again (also ends a drain)."""
        if (pool := self.state.pool) is not None:
            await self._op("resume", lambda: self.control.resume(pool), lambda _: f"resumed {pool}: refilling")

    @on(events.Key)
    def _say_why_enter_opens_nothing(self, event: events.Key) -> None:
        """Enter on an empty table: the table's own binding has no row to open, so say so here (the key
        reaches the App after the table, and the binding still runs: it does nothing)."""
        table = self.focused
        if event.key == "enter" and isinstance(table, MemberTable) and table.cursor_key is None:
            self.notify(f"nothing to open: {table.empty_text}", severity="warning", timeout=3)

    @KEYS.bind("e", "Event level", id="event_level", show=False,
               tooltip="Events shown: all, then warnings and errors, then errors only (e steps through)")
    def action_event_level(self) -> None:
        """Step the event pane's level: every event, warnings and errors, errors only."""
        level = self.dashboard.query_one("#events", EventLog).next_level()
        self.notify(f"showing {LEVEL_TITLES[level].replace('events: ', '') if level != 'info' else 'all events'}",
                    timeout=2)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """None of Textual's own palette entries: theme, screenshot, maximize and its key panel are not what an
        operator reaches for, and its Quit would be a second one. The palette holds PoolCommands alone."""
        return ()


Operations.MUTATING = frozenset(KEYS.mutating)


def maintenance_text(report: MaintenanceReport) -> str:
    """The maintenance dialog's lines: what was probed, removed (by reason) and created."""
    lines = [f"probed {report.probed} ready sandbox{'es' if report.probed != 1 else ''}",
             f"removed unhealthy: {view.names(report.removed_unhealthy) or 'none'}",
             f"removed expiring (under min_remaining_ttl): {view.names(report.removed_expiring) or 'none'}",
             f"removed stale (old config revision): {view.names(report.removed_stale) or 'none'}"]
    if report.removed_strays:
        lines.append(f"removed strays (running, unknown to the pool): {view.names(report.removed_strays)}")
    lines.append(f"created {report.created} to refill")
    return "\n".join(lines)
