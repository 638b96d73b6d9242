"""The console's common ground: its state, its link to the pools, and painting that state into the widgets.

The feed (poolui/tui/feed.py) builds on this, the navigation keys (navigation.py) and the operations
(operations.py) on the feed, and the App (app.py) puts them together. Handlers change `self.state`, then call the paint
methods here for what they touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual.app import App
from textual.screen import Screen
from textual.widgets import Static, TabbedContent

from ..clock import Clock
from ..control import Control
from . import view
from .connection import Connection
from .screens.dashboard import DashboardScreen
from .state import ConsoleState
from .widgets.charts import Charts
from .widgets.event_log import EventLog, action_line
from .widgets.header import PoolHeader
from .widgets.member_table import MemberTable


class ConsoleBase(App[int]):
    """State, connection and painting shared by every part of the console."""

    CSS_PATH = Path(__file__).parent / "poolui.tcss"  # absolute: subclasses live in other modules
    MUTATING: ClassVar[frozenset[str]] = frozenset()  # actions that change a pool (poolui/tui/operations.py)
    # Classes every screen gets by its size, for poolui.tcss: at 80x24 the table keeps the room.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]

    def __init__(self, control: Control, *, pools: list[str] | None = None, source: str = "",
                 read_only: bool = False, clock: Clock | None = None, refresh: float = 1.0,
                 pool: str | None = None) -> None:
        super().__init__()
        self.control = control
        self.clock = clock or Clock()
        names = list(pools or [])
        self.state = ConsoleState(pool_names=names, pool=pool or (names[0] if names else None))
        self.pool_asked = pool is not None  # then the console opens on that pool, not on the overview
        self.overview_decided = False
        self.conn = Connection(embedded=control.embedded, source=source)
        self.read_only_flag = read_only
        self.refresh_interval = refresh
        self.dashboard = self.make_dashboard(names or ([self.state.pool] if self.state.pool else []))

    def make_dashboard(self, pools: list[str]) -> DashboardScreen:
        """The main screen; the App gives it the keys of every part."""
        return DashboardScreen(pools, self.now)

    def get_default_screen(self) -> Screen[Any]:
        return self.dashboard

    def now(self) -> float:
        """Wall time as the pool sees it: ours, corrected by the skew seen in the last snapshot."""
        return self.clock.time() + self.state.skew

    @property
    def read_only(self) -> bool:
        """True when nothing may be changed: asked for at launch, or the server says so."""
        snap = self.state.current
        return self.read_only_flag or bool(snap and snap.read_only)

    def why_disabled(self, action: str) -> str:
        """Why a key that changes a pool, or moves between pools, cannot be used now ("" when it can)."""
        if action.split("(")[0] == "cycle_pool" and len(self.state.pool_names) < 2:
            return "this file has one pool ([ and ] move between the pools of a file)"
        if action not in self.MUTATING:
            return ""
        if self.read_only:
            return "read-only"
        if not self.conn.ok():
            return "disconnected"
        if self.state.current is None:
            return "no snapshot yet"
        return ""

    def table(self, tab: str | None = None) -> MemberTable:
        """The table of one tab (the shown one by default)."""
        return self.dashboard.query_one(f"#table-{tab or self.state.active_tab}", MemberTable)

    def show_table(self, tab: str | None = None) -> None:
        """Repaint one tab's table from the state."""
        tab = tab or self.state.active_tab
        s = self.state
        self.table(tab).show(s.rows(tab), marks=frozenset(s.marks), min_remaining_ttl=s.min_remaining_ttl,
                             sort=s.sort_key, reverse=s.reverse, empty_text=s.empty_text(tab))
        self.update_tab_labels()  # a filter changes what each tab holds

    def show_snapshot(self, changed_keys: bool) -> None:
        """Repaint everything a new snapshot of the current pool touches."""
        self.show_table()
        self.update_tab_labels()
        self.update_header()
        self.paint_charts()
        if changed_keys:
            self.refresh_bindings()

    def paint_charts(self) -> None:
        """Repaint the trends of the current pool over the chosen window."""
        pool = self.state.pool
        if pool in self.state.histories:
            self.dashboard.query_one("#charts", Charts).show(self.state.histories[pool], self.state.window)

    def update_tab_labels(self) -> None:
        """Each tab says how many sandboxes it shows: with a filter, how many match it."""
        tabs = self.dashboard.query_one("#tabs", TabbedContent)
        s = self.state
        for tab, (label, _) in view.TABS.items():
            text = f"{label} {len(s.rows(tab)) if s.filter_text else len(s.groups.get(tab, []))}"
            tab_widget = tabs.get_tab(f"tab-{tab}")
            if str(tab_widget.label) != text:
                tab_widget.label = text

    def update_header(self) -> None:
        """Repaint the header: pool state, connection, refresh rate, staleness."""
        now = self.clock.monotonic()  # the console's clock: a test ages the data without waiting
        at = self.state.received_at
        stale = None if at is None else now - at
        for header in self.dashboard.query("#header").results(PoolHeader):  # none while the console closes
            header.show(self.state.current, self.conn, self.refresh_interval, self.read_only, now, stale,
                        self.state.window)

    def update_status(self) -> None:
        """Repaint the status line (sort, filter, marks)."""
        self.dashboard.query_one("#status", Static).update(self.state.status_line())

    def log_action(self, text: str, error: bool = False) -> None:
        """Operator actions go into the event pane too, so what was done sits next to what followed."""
        self.dashboard.query_one("#events", EventLog).add([action_line(self.now(), text, error)])


def describe(error: BaseException) -> str:
    """An error as one short line for a notification or the event pane."""
    text = str(error) or type(error).__name__
    return text if len(text) < 160 else text[:157] + "…"
