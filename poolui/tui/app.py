"""The operations console: a live dashboard of one pool at a time, driven from the keyboard.

Ownership: the App owns all state (snapshots, connection, marks, filter, sort). Backend calls run in workers
that only post messages (poolui/tui/messages.py); handlers here change state and widgets. Polls never
overlap: the next one is scheduled when the last one has finished (dolphie's pattern), and a lost server is
retried with exponential backoff while the last data stays on screen.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, OptionList, Static, TabbedContent

from ..clock import Clock
from ..control import Control
from ..core.model import Event, MemberView, PoolSnapshot
from . import view
from .commands import PoolCommands
from .connection import Connection, faster, interval_text, slower
from .messages import ActionFinished, EventsArrived, EventsLost, FetchFailed, SnapshotFetched
from .screens.claim import ClaimScreen
from .screens.confirm import ConfirmScreen, NoticeScreen
from .screens.dashboard import MUTATING, DashboardScreen
from .screens.detail import DetailScreen
from .screens.help import HelpScreen, KeyHelp
from .screens.resize import ResizeScreen
from .widgets.charts import Charts, History
from .widgets.event_log import EventLog, action_line
from .widgets.header import PoolHeader
from .widgets.member_table import MemberTable
from .widgets.pool_list import PoolList

EVENTS_KEPT = 1000  # per pool: the detail view's history and the log pane's backlog
LOG_FLUSH = 0.25  # seconds: events are written to the pane in batches, so a burst costs one repaint


class PoolApp(App[int]):
    TITLE = "poolui"
    CSS_PATH = Path(__file__).parent / "poolui.tcss"  # absolute: subclasses live in other modules
    COMMANDS: ClassVar = App.COMMANDS | {PoolCommands}
    BINDINGS: ClassVar = [Binding("ctrl+c", "quit", "Quit", show=False, id="ctrl_quit")]
    ENABLE_COMMAND_PALETTE = True

    def __init__(self, control: Control, *, pools: list[str] | None = None, source: str = "",
                 read_only: bool = False, clock: Clock | None = None, refresh: float = 1.0,
                 pool: str | None = None) -> None:
        super().__init__()
        self.control = control
        self.clock = clock or Clock()
        self.pool_names: list[str] = list(pools or [])
        self.pool: str | None = pool or (self.pool_names[0] if self.pool_names else None)
        self.conn = Connection(embedded=control.embedded, source=source)
        self.read_only_flag = read_only
        self.refresh_interval = refresh
        self.config_path: str | None = None  # the pool file resizes are saved into; asked at the first fetch
        self.snapshots: dict[str, PoolSnapshot] = {}
        self.summaries: dict[str, PoolSnapshot] = {}
        self.histories: dict[str, History] = {}
        self.events_by_pool: dict[str, deque[Event]] = {}
        self.by_id: dict[str, MemberView] = {}
        self.groups: dict[str, list[MemberView]] = {tab: [] for tab in view.TABS}
        self.marks: set[str] = set()
        self.filter_text = ""
        self.sort_key = "age"
        self.reverse = False
        self.active_tab = "ready"
        self.skew = 0.0  # server wall clock minus ours, so TTLs count down right against a remote clock
        self.received_at: float | None = None  # monotonic, of the last snapshot
        self.last_tick: dict[str, float] = {}  # fetch / apply seconds of the last refresh (the benchmark reads it)
        self._fetch_timer: Timer | None = None
        self._pending_log: list[Event] = []
        self._events_failures = 0
        self._events_timer: Timer | None = None
        self.dashboard = DashboardScreen(self.pool_names or ([self.pool] if self.pool else []), self.now)

    # ------------------------------------------------------------------ derived state

    def now(self) -> float:
        """Wall time as the pool sees it: ours, corrected by the skew seen in the last snapshot."""
        return self.clock.time() + self.skew

    @property
    def current(self) -> PoolSnapshot | None:
        return self.snapshots.get(self.pool) if self.pool else None

    @property
    def read_only(self) -> bool:
        snap = self.current
        return self.read_only_flag or bool(snap and snap.read_only)

    def _paused_or_draining(self) -> bool:
        snap = self.current
        return snap is not None and snap.state in ("paused", "draining", "drained")

    def get_default_screen(self) -> Screen[Any]:
        return self.dashboard

    def table(self, tab: str | None = None) -> MemberTable:
        return self.dashboard.query_one(f"#table-{tab or self.active_tab}", MemberTable)

    def member(self, member_id: str) -> MemberView | None:
        return self.by_id.get(member_id)

    def member_events(self, member_id: str) -> list[Event]:
        return [e for e in self.events_by_pool.get(self.pool or "", ()) if e.member_id == member_id]

    def why_disabled(self, action: str) -> str:
        if action not in MUTATING:
            return ""
        if self.read_only:
            return "read-only"
        if not self.conn.ok():
            return "disconnected"
        if self.current is None:
            return "no snapshot yet"
        return ""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pause" and self._paused_or_draining():
            return False  # hidden: `p` is resume now
        if action == "resume" and not self._paused_or_draining():
            return False
        if self.why_disabled(action):
            return None  # shown, dimmed
        snap = self.current
        if action == "drain" and snap is not None and snap.state in ("draining", "drained"):
            return None
        if action == "cycle_pool" and len(self.pool_names) < 2:
            return None
        return True

    # ------------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        self.theme = "textual-dark"

    def start(self) -> None:
        """Called by the dashboard once its widgets exist: first fetch, event stream, tickers."""
        self.fetch()
        self.follow_events()
        self.set_interval(1.0, self.tick_second)
        self.set_interval(LOG_FLUSH, self.flush_log)
        self.update_status()
        self.update_header()
        self.table().focus()

    def tick_second(self) -> None:
        """TTL countdowns and the retry countdown move every second, between refreshes, without a fetch."""
        if not self.dashboard.is_attached or not self.dashboard.children:
            return  # shutting down: the widgets are already gone
        self.table().refresh()
        self.update_header()

    # ------------------------------------------------------------------ fetching

    def schedule_fetch(self, delay: float) -> None:
        if self._fetch_timer is not None:
            self._fetch_timer.stop()
        self._fetch_timer = self.set_timer(delay, self.fetch)

    @work(exclusive=True, group="fetch", exit_on_error=False, description="fetch a snapshot")
    async def fetch(self) -> None:
        started = time.perf_counter()
        pool = self.pool
        try:
            pools = None
            if pool is None or len(self.pool_names) > 1:
                pools = await self.control.list_pools(members=False)
                if pool is None:
                    if not pools:
                        raise RuntimeError("the server has no pools")
                    pool = pools[0].name
            snap = await self.control.snapshot(pool, members=True)
            if self.config_path is None:
                self.config_path = await self.control.config_path()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.post_message(FetchFailed(pool, e))
            return
        self.post_message(SnapshotFetched(pool, snap, pools, time.perf_counter() - started))

    def on_snapshot_fetched(self, msg: SnapshotFetched) -> None:
        recovered = self.conn.succeeded()
        if recovered:
            self.notify(f"reconnected to {self.conn.source}", title="connection")
            self.follow_events()
        if msg.pools is not None:
            self.summaries = {p.name: p for p in msg.pools}
            names = [p.name for p in msg.pools]
            if names != self.pool_names:
                self.pool_names = names
            pool_list = self.dashboard.query_one("#pools", PoolList)
            pool_list.display = len(self.pool_names) > 1
        if self.pool is None:
            self.pool = msg.pool
        self.summaries[msg.pool] = msg.snapshot
        if msg.pool == self.pool:
            started = time.perf_counter()
            self.apply(msg.snapshot)
            self.last_tick = {"fetch": msg.fetch_seconds, "apply": time.perf_counter() - started,
                              "members": float(len(msg.snapshot.members))}
        if len(self.pool_names) > 1 and self.pool is not None:
            self.dashboard.query_one("#pools", PoolList).show(list(self.summaries.values()), self.pool)
        self.schedule_fetch(self.refresh_interval)

    def on_fetch_failed(self, msg: FetchFailed) -> None:
        delay = self.conn.failed(describe(msg.error), time.monotonic())
        self.update_header()
        self.refresh_bindings()
        self.schedule_fetch(delay)

    def apply(self, snap: PoolSnapshot) -> None:
        """Take a new snapshot of the current pool: O(members) dictionary work, then repaint what is seen."""
        was = self.current
        self.snapshots[snap.name] = snap
        self.received_at = time.monotonic()
        self.skew = 0.0 if self.conn.embedded else snap.taken_at - self.clock.time()
        self.by_id = {m.id: m for m in snap.members}
        self.groups = view.group(snap.members)
        if self.marks:
            self.marks &= self.by_id.keys()
        self.histories.setdefault(snap.name, History()).add(snap)
        self.show_table()
        self.update_tab_labels()
        self.update_header()
        self.dashboard.query_one("#charts", Charts).show(self.histories[snap.name])
        if was is None or (was.state, was.read_only) != (snap.state, snap.read_only):
            self.refresh_bindings()

    def show_table(self, tab: str | None = None) -> None:
        tab = tab or self.active_tab
        snap = self.current
        rows = view.arrange(self.groups.get(tab, []), self.filter_text, self.sort_key, self.reverse)
        if snap is None:
            empty = "waiting for the first snapshot…"
        elif self.filter_text and self.groups.get(tab):
            empty = f"nothing matches '{self.filter_text}'"
        else:
            empty = f"no {view.TABS[tab][0].lower()} sandboxes"
        self.table(tab).show(
            rows, marks=frozenset(self.marks),
            min_remaining_ttl=float(snap.config.get("min_remaining_ttl") or 0.0) if snap else 0.0,
            sort=self.sort_key, reverse=self.reverse, empty_text=empty,
        )

    def update_tab_labels(self) -> None:
        tabs = self.dashboard.query_one("#tabs", TabbedContent)
        for tab, (label, _) in view.TABS.items():
            text = f"{label} {len(self.groups.get(tab, []))}"
            tab_widget = tabs.get_tab(f"tab-{tab}")
            if str(tab_widget.label) != text:
                tab_widget.label = text

    def update_header(self) -> None:
        stale = None if self.received_at is None else time.monotonic() - self.received_at
        self.dashboard.query_one("#header", PoolHeader).show(
            self.current, self.conn, self.refresh_interval, self.read_only, time.monotonic(), stale)

    def update_status(self) -> None:
        sort = view.SORT_BY_KEY[self.sort_key].title + (" (reversed)" if self.reverse else "")
        parts = [f"sort: [b]{sort}[/]"]
        if self.filter_text:
            parts.append(f"filter: [b]{self.filter_text}[/]")
        if self.marks:
            parts.append(f"marked: [b]{len(self.marks)}[/] (t terminates them, esc clears)")
        self.dashboard.query_one("#status", Static).update("  ".join(parts))

    # ------------------------------------------------------------------ events

    @work(exclusive=True, group="events", exit_on_error=False, description="follow pool events")
    async def follow_events(self) -> None:
        try:
            backlog = await self.control.recent_events(None, limit=EVENTS_KEPT)
            if backlog:
                self.post_message(EventsArrived(backlog, replace=True))
            last = backlog[-1].seq if backlog else 0
            first = True
            async for event in self.control.events(None):
                if first and event.seq > last + 1:
                    # Events between the backlog and the subscription: fetch them once, or they are lost.
                    first = False
                    gap = [e for e in await self.control.recent_events(None, limit=EVENTS_KEPT)
                           if last < e.seq < event.seq]
                    if gap:
                        self.post_message(EventsArrived(gap, replace=True))
                first = False
                self.post_message(EventsArrived([event]))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.post_message(EventsLost(e))
            return
        self.post_message(EventsLost(None))

    def on_events_arrived(self, msg: EventsArrived) -> None:
        self._events_failures = 0
        known: dict[str, set[tuple[int, float]]] = {}
        for e in msg.events:
            buf = self.events_by_pool.setdefault(e.pool, deque(maxlen=EVENTS_KEPT))
            if msg.replace:
                # A backlog may repeat what the stream brought; a restarted server numbers from 1 again,
                # so an event is known by its number and its time together.
                seen = known.setdefault(e.pool, {(x.seq, x.ts) for x in buf})
                if (e.seq, e.ts) in seen:
                    continue
                seen.add((e.seq, e.ts))
            buf.append(e)
            if e.pool == self.pool:
                self._pending_log.append(e)

    def on_events_lost(self, msg: EventsLost) -> None:
        # While disconnected the stream comes back with the connection (on_snapshot_fetched).
        if self.conn.ok():
            self._events_failures += 1
            delay = min(15.0, 0.5 * 2 ** (self._events_failures - 1))
            if self._events_timer is not None:
                self._events_timer.stop()
            self._events_timer = self.set_timer(delay, self.follow_events)

    def flush_log(self) -> None:
        if not self._pending_log or not self.dashboard.children:
            return
        pending, self._pending_log = self._pending_log[-EVENTS_KEPT:], []
        self.dashboard.query_one("#events", EventLog).add(pending)

    def log_action(self, text: str, error: bool = False) -> None:
        """Operator actions go into the event pane too, so what was done sits next to what followed."""
        self.dashboard.query_one("#events", EventLog).add([action_line(self.now(), text, error)])

    # ------------------------------------------------------------------ view actions

    def action_mark(self) -> None:
        table = self.table()
        key = table.cursor_key
        if key is None:
            return
        self.marks.symmetric_difference_update({key})
        table.marks = frozenset(self.marks)
        table.action_cursor_down()
        table.refresh()
        self.update_status()

    def action_clear(self) -> None:
        filter_input = self.dashboard.query_one("#filter", Input)
        if filter_input.display:
            filter_input.value = ""
            filter_input.display = False
            self.table().focus()
        elif self.marks:
            self.marks.clear()
            self.show_table()
        self.update_status()

    def action_filter(self) -> None:
        filter_input = self.dashboard.query_one("#filter", Input)
        filter_input.display = True
        filter_input.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.filter_text = event.value.strip()
            self.show_table()
            self.update_status()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value.strip():
                event.input.display = False
            self.table().focus()

    def action_sort(self) -> None:
        keys = [s.key for s in view.SORTS]
        self.sort_by(keys[(keys.index(self.sort_key) + 1) % len(keys)])

    def sort_by(self, key: str) -> None:
        self.sort_key = key
        self.show_table()
        self.update_status()

    def clear_all(self) -> None:
        filter_input = self.dashboard.query_one("#filter", Input)
        filter_input.value = ""
        filter_input.display = False
        self.marks.clear()
        self.show_table()
        self.update_status()

    def action_reverse_sort(self) -> None:
        self.reverse = not self.reverse
        self.show_table()
        self.update_status()

    def action_faster(self) -> None:
        self.set_refresh(faster(self.refresh_interval))

    def action_slower(self) -> None:
        self.set_refresh(slower(self.refresh_interval))

    def set_refresh(self, interval: float) -> None:
        self.refresh_interval = interval
        self.update_header()
        self.notify(f"refreshing every {interval_text(interval)}", timeout=2)
        if self.conn.ok():
            self.schedule_fetch(interval)

    def action_refresh_now(self) -> None:
        self.fetch()

    def action_show_tab(self, tab: str) -> None:
        self.dashboard.query_one("#tabs", TabbedContent).active = f"tab-{tab}"

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane_id = event.pane.id or ""
        self.active_tab = pane_id.removeprefix("tab-")
        self.show_table()
        self.table().focus()

    def action_cycle_pool(self, step: int) -> None:
        if len(self.pool_names) < 2 or self.pool is None:
            return
        i = self.pool_names.index(self.pool) if self.pool in self.pool_names else 0
        self.switch_pool(self.pool_names[(i + step) % len(self.pool_names)])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "pools" and event.option.id:
            self.switch_pool(event.option.id)

    def switch_pool(self, name: str) -> None:
        if name == self.pool:
            return
        self.pool = name
        self.marks.clear()
        self.by_id, self.groups = {}, {tab: [] for tab in view.TABS}
        cached = self.snapshots.get(name)
        if cached is not None:
            self.apply(cached)
        else:
            self.show_table()
            self.update_header()
        self.dashboard.query_one("#events", EventLog).replace(self.events_by_pool.get(name, ()))
        self._pending_log.clear()
        self.refresh_bindings()
        self.update_status()
        self.fetch()

    def on_member_table_selected(self, event: MemberTable.Selected) -> None:
        m = self.member(event.key)
        if m is None:
            return
        snap = self.current
        min_ttl = float(snap.config.get("min_remaining_ttl") or 0.0) if snap else 0.0
        self.push_screen(DetailScreen(m, self.member, self.member_events, self.now, min_ttl))

    def action_help(self) -> None:
        keys = []
        seen: set[str] = set()
        for active in self.dashboard.active_bindings.values():
            b = active.binding
            # Ours all have ids; the rest are Textual's scrolling and focus keys, summed up in the intro.
            if b.id in (None, "slower") or b.action in seen:  # "-" is listed with "+"
                continue
            seen.add(b.action)
            action = b.action.removeprefix("app.").split("(")[0]
            keys.append(KeyHelp(self.get_key_display(b), b.description, b.tooltip or "", active.enabled,
                                self.why_disabled(action)))
        keys.append(KeyHelp("ctrl+p", "Commands", "The command palette: every action, pool switching, sorting",
                            True))
        intro = ("[b]poolui[/]: pools of warm sandboxes. Tabs show ready, creating and in-use sandboxes; "
                 "[b]enter[/] opens one, [b]↑↓ pgup pgdn home end[/] move, [b]1-4[/] switch tabs, "
                 "[b][ ][/] switch pools.")
        self.push_screen(HelpScreen(keys, intro))

    def action_quit(self) -> None:  # type: ignore[override]
        self.exit(0)

    # ------------------------------------------------------------------ mutating actions (workers)

    def on_action_finished(self, msg: ActionFinished) -> None:
        self.log_action(msg.text, error=msg.error is not None)
        self.notify(msg.text, severity=msg.severity,  # type: ignore[arg-type]
                    timeout=8 if msg.error is not None else 4)
        self.fetch()

    def _fail(self, what: str, error: BaseException) -> None:
        self.post_message(ActionFinished(f"{what} failed: {describe(error)}", severity="error", error=error))

    def targets(self) -> list[str]:
        """What `t` acts on, captured at the key press: the marked sandboxes, else the one under the cursor."""
        if self.marks:
            return sorted(self.marks & self.by_id.keys())
        key = self.table().cursor_key
        return [key] if key is not None else []

    @work(group="action", exit_on_error=False, description="claim")
    async def action_claim(self) -> None:
        pool = self.pool
        if pool is None:
            return
        try:
            claim = await self.control.claim(pool)
        except Exception as e:
            self._fail("claim", e)
            return
        self.copy_to_clipboard(claim.url)
        self.post_message(ActionFinished(f"claimed {claim.id}: {claim.url}"))
        choice = await self.push_screen_wait(ClaimScreen(claim, claim.expires_at - self.now(), copied=True))
        if choice == "release":
            try:
                await self.control.release(pool, claim.id)
            except Exception as e:
                self._fail(f"release of {claim.id}", e)
                return
            self.post_message(ActionFinished(f"released {claim.id}"))

    def action_terminate(self) -> None:
        ids = self.targets()
        if not ids or self.pool is None:
            self.notify("nothing to terminate: move the cursor to a sandbox or mark some with space",
                        severity="warning")
            return
        self._terminate(self.pool, ids)

    @work(group="action", exit_on_error=False, description="terminate")
    async def _terminate(self, pool: str, ids: list[str]) -> None:
        states = {i: self.by_id[i].state for i in ids if i in self.by_id}
        claimed = [i for i in ids if states.get(i) == "claimed"]
        body = f"Terminate {len(ids)} sandbox{'es' if len(ids) != 1 else ''} of pool '{pool}'?\n\n{view.names(ids)}"
        if claimed:
            body += f"\n\n{len(claimed)} of them claimed (in use): {view.names(claimed)}"
        body += "\n\nThe pool refills to its target."
        if not await self.push_screen_wait(ConfirmScreen("terminate", body, "Terminate")):
            return
        try:
            done = await self.control.terminate(pool, ids)
        except Exception as e:
            self._fail("terminate", e)
            return
        self.post_message(ActionFinished(f"terminating {view.names(done) if done else 'nothing (already going)'}"))
        self.call_later(self._unmark, ids)

    def _unmark(self, ids: list[str]) -> None:
        self.marks.difference_update(ids)
        self.show_table()
        self.update_status()

    @work(group="action", exit_on_error=False, description="resize")
    async def action_resize(self) -> None:
        snap = self.current
        if snap is None or self.pool is None:
            return
        req = await self.push_screen_wait(ResizeScreen(snap, self.config_path))
        if req is None:
            return
        try:
            await self.control.resize(self.pool, target=req.target, min_ready=req.min_ready,
                                      max_ready=req.max_ready, persist=req.persist)
        except Exception as e:
            self._fail("resize", e)
            return
        saved = f"; saved to {self.config_path or 'the pool file'}" if req.persist else ""
        self.post_message(ActionFinished(
            f"resized {self.pool}: target {req.target}, min {req.min_ready}, max {req.max_ready}{saved}"))

    @work(group="action", exit_on_error=False, description="maintain")
    async def action_maintain(self) -> None:
        pool = self.pool
        if pool is None:
            return
        try:
            report = await self.control.maintain(pool)
        except Exception as e:
            self._fail("maintenance", e)
            return
        removed = (len(report.removed_unhealthy) + len(report.removed_expiring) + len(report.removed_stale)
                   + len(report.removed_strays))
        self.post_message(ActionFinished(f"maintenance of {pool}: probed {report.probed}, removed {removed}, "
                                         f"created {report.created}"))
        lines = [f"probed {report.probed} ready sandbox{'es' if report.probed != 1 else ''}",
                 f"removed unhealthy: {view.names(report.removed_unhealthy) or 'none'}",
                 f"removed expiring (under min_remaining_ttl): {view.names(report.removed_expiring) or 'none'}",
                 f"removed stale (old config revision): {view.names(report.removed_stale) or 'none'}",
                 *([f"removed strays (running, unknown to the pool): {view.names(report.removed_strays)}"]
                   if report.removed_strays else []),
                 f"created {report.created} to refill"]
        await self.push_screen_wait(NoticeScreen(f"maintenance of {pool}", "\n".join(lines)))

    @work(group="action", exit_on_error=False, description="drain")
    async def action_drain(self) -> None:
        snap = self.current
        pool = self.pool
        if snap is None or pool is None:
            return
        claimed = snap.counts.get("claimed", 0)
        body = (f"Drain pool '{pool}'?\n\nIt takes no new claims, retires its {snap.ready} ready and "
                f"{snap.counts.get('creating', 0) + snap.counts.get('starting', 0)} creating sandboxes and stops "
                f"refilling. {claimed} claimed sandbox{'es are' if claimed != 1 else ' is'} left to finish.\n\n"
                "p resumes the pool afterwards.")
        if not await self.push_screen_wait(ConfirmScreen("drain", body, "Drain")):
            return
        try:
            await self.control.drain(pool)
        except Exception as e:
            self._fail("drain", e)
            return
        self.post_message(ActionFinished(f"draining {pool}"))

    @work(group="action", exit_on_error=False, description="pause")
    async def action_pause(self) -> None:
        pool = self.pool
        if pool is None:
            return
        try:
            await self.control.pause(pool)
        except Exception as e:
            self._fail("pause", e)
            return
        self.post_message(ActionFinished(f"paused {pool}: claims served, no refill"))

    @work(group="action", exit_on_error=False, description="resume")
    async def action_resume(self) -> None:
        pool = self.pool
        if pool is None:
            return
        try:
            await self.control.resume(pool)
        except Exception as e:
            self._fail("resume", e)
            return
        self.post_message(ActionFinished(f"resumed {pool}: refilling"))


def describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) < 160 else text[:157] + "…"


# ---------------------------------------------------------------------- entry point


def run(args: argparse.Namespace) -> int:
    """`poolui` with no verb: the console. Returns the process exit code."""
    from .launch import launch

    return asyncio.run(launch(args, PoolApp))

