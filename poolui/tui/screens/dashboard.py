"""The dashboard: header, pool switcher, tabs of live tables, trends, events, filter, footer.

It holds the keys (so that they are inactive under a modal) but no state: every action is the App's
(`app.` prefix), and so is `check_action`, which dims what read-only mode or a lost connection disables.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from .. import view
from ..widgets.charts import Charts
from ..widgets.event_log import EventLog
from ..widgets.header import PoolHeader
from ..widgets.member_table import MemberTable
from ..widgets.pool_list import PoolList

# Keys that change a pool: disabled (shown dimmed) in read-only mode and while disconnected.
MUTATING = frozenset({"claim", "terminate", "resize", "maintain", "drain", "pause", "resume"})

BINDINGS: list[BindingType] = [
    Binding("c", "app.claim", "Claim", id="claim",
            tooltip="Claim a ready sandbox: shows its URL and copies it (when the terminal allows)"),
    Binding("t", "app.terminate", "Terminate", id="terminate",
            tooltip="Terminate the marked sandboxes, or the one under the cursor, after a confirmation naming them"),
    Binding("space", "app.mark", "Mark", id="mark",
            tooltip="Mark or unmark the sandbox under the cursor (for terminate); esc clears marks"),
    Binding("r", "app.resize", "Resize", id="resize",
            tooltip="Change target / min / max ready, optionally saving them to the pool file"),
    Binding("m", "app.maintain", "Maintain", id="maintain",
            tooltip="Run maintenance now: probe ready sandboxes, retire unhealthy/expiring/stale ones, refill"),
    Binding("d", "app.drain", "Drain", id="drain",
            tooltip="Drain the pool (asks first): no new claims, ready ones retired, claimed ones left to finish"),
    Binding("p", "app.pause", "Pause", id="pause", tooltip="Pause refill: claims are still served"),
    Binding("p", "app.resume", "Resume", id="resume", tooltip="Resume refill (also ends a drain)"),
    Binding("slash", "app.filter", "Filter", id="filter",
            tooltip="Filter the tables by id, state, URL, health, claim key or reason"),
    Binding("s", "app.sort", "Sort", id="sort", tooltip="Sort by the next column: age, TTL, id, state, health"),
    Binding("S", "app.reverse_sort", "Reverse", id="reverse", show=False, tooltip="Reverse the sort order"),
    Binding("plus,equals_sign", "app.faster", "Rate", id="faster", key_display="+/-",
            tooltip="Refresh more often (+) or less often (-)"),
    Binding("minus", "app.slower", "Slower", id="slower", key_display="-", show=False,
            tooltip="Refresh less often"),
    Binding("question_mark", "app.help", "Help", id="help", key_display="?", tooltip="This list of keys"),
    Binding("q", "app.quit", "Quit", id="quit",
            tooltip="Quit (an embedded console terminates the sandboxes it started)"),
    Binding("escape", "app.clear", "Clear", id="clear", show=False, tooltip="Close the filter, then clear marks"),
    Binding("ctrl+r", "app.refresh_now", "Refresh now", id="refresh_now", show=False,
            tooltip="Fetch a snapshot now"),
    Binding("left_square_bracket", "app.cycle_pool(-1)", "Previous pool", id="prev_pool", show=False,
            key_display="[", tooltip="Switch to the previous pool of the file"),
    Binding("right_square_bracket", "app.cycle_pool(1)", "Next pool", id="next_pool", show=False,
            key_display="]", tooltip="Switch to the next pool of the file"),
    *(Binding(str(i), f"app.show_tab('{tab}')", label, id=f"tab_{tab}", show=False,
              tooltip=f"Show the {label.lower()} tab")
      for i, (tab, (label, _)) in enumerate(view.TABS.items(), start=1)),
]


class DashboardScreen(Screen[None]):
    BINDINGS = BINDINGS

    def __init__(self, pools: list[str], now_fn: Callable[[], float]) -> None:
        super().__init__(id="dashboard")
        self.pools = pools
        self.now_fn = now_fn

    def compose(self) -> ComposeResult:
        now = self.now_fn
        yield PoolHeader(id="header")
        with Horizontal(id="body"):
            pool_list = PoolList(self.pools, id="pools")
            pool_list.display = len(self.pools) > 1
            yield pool_list
            with Vertical(id="main"):
                yield Static("", id="status")
                with TabbedContent(id="tabs"):
                    for tab, (label, _) in view.TABS.items():
                        with TabPane(label, id=f"tab-{tab}"):
                            yield MemberTable(tab, now, id=f"table-{tab}")
                with Horizontal(id="lower"):
                    yield Charts(id="charts")
                    yield EventLog(id="events")
        yield Input(placeholder="filter: id, state, URL, health, claim key… (enter keeps, esc clears)",
                    id="filter")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        start = getattr(self.app, "start", None)
        if callable(start):
            start()
