"""The dashboard: header, pool switcher, tabs of live tables, trends, events, filter, footer.

It holds the keys (so that they are inactive under a modal) but no state: the App gives it the bindings
declared on its actions (poolui/tui/app.py `Dashboard`), and its `check_action` dims what read-only mode
or a lost connection disables.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Static, TabbedContent, TabPane

from .. import view
from ..widgets.charts import Charts
from ..widgets.event_log import EventLog
from ..widgets.footer import KeyFooter
from ..widgets.header import PoolHeader
from ..widgets.member_table import MemberTable
from ..widgets.pool_list import PoolList


class DashboardScreen(Screen[None]):
    """The main screen's layout."""

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
        yield KeyFooter()

    def on_mount(self) -> None:
        start = getattr(self.app, "start", None)
        if callable(start):
            start()
