"""The operations console: a live dashboard of one pool at a time, driven from the keyboard.

Put together from its parts: the state (poolui/tui/state.py) and its painting (base.py), the feed of
snapshots and events (feed.py), the keys that only change the view (navigation.py) and those that change a
pool (operations.py). Each binding is declared on its action; the user's keymap (keymap.py) rebinds them
by id.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, ClassVar

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches

from . import navigation, operations
from .commands import PoolCommands
from .messages import FetchFailed, SnapshotFetched
from .navigation import Navigation
from .operations import Operations
from .screens.dashboard import DashboardScreen
from .screens.overview import OverviewScreen


class Dashboard(DashboardScreen):
    """The dashboard with every console key (operations first: they lead the footer)."""

    BINDINGS: ClassVar = [*operations.KEYS.bindings, *navigation.KEYS.bindings]


class Overview(OverviewScreen):
    """The pools overview with its keys, and the console's own that make sense there."""

    BINDINGS: ClassVar = [
        *navigation.OVERVIEW_KEYS.bindings,
        *(b for b in navigation.KEYS.bindings if b.id in ("help", "quit", "refresh_now", "faster", "slower")),
    ]


class PoolApp(Operations, Navigation):
    """The console on one control object (embedded manager or remote client)."""

    TITLE = "poolui"
    COMMANDS: ClassVar = App.COMMANDS | {PoolCommands}
    BINDINGS: ClassVar = [Binding("ctrl+c", "quit", "Quit", show=False, id="ctrl_quit")]
    ENABLE_COMMAND_PALETTE = True

    def __init__(self, *args: Any, keymap: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user_keymap = dict(keymap or {})

    @classmethod
    def binding_ids(cls) -> frozenset[str]:
        """Every id a user keymap may rebind."""
        return frozenset(str(b.id) for b in (*Dashboard.BINDINGS, *Overview.BINDINGS)
                         if isinstance(b, Binding) and b.id)

    def make_dashboard(self, pools: list[str]) -> DashboardScreen:
        return Dashboard(pools, self.now)

    def make_overview(self) -> OverviewScreen:
        return Overview()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide `p`'s other meaning, dim what cannot be done now (the help says why)."""
        if action == "pause" and self.state.busy():
            return False  # hidden: `p` is resume now
        if action == "resume" and not self.state.busy():
            return False
        if self.why_disabled(action):
            return None  # shown, dimmed
        snap = self.state.current
        if action == "drain" and snap is not None and snap.state in ("draining", "drained"):
            return None
        return True

    def on_key(self, event: events.Key) -> None:
        """A key whose action cannot be done now says why, instead of doing nothing without a word."""
        active = self.screen.active_bindings.get(event.key)
        if active is None or active.enabled:
            return
        action = active.binding.action.removeprefix("app.")
        why = self.why_disabled(action)
        if why:
            name = active.binding.description or action
            self.notify(f"{event.key} ({name}) is not available: {why}", severity="warning", timeout=3)

    def on_mount(self) -> None:
        self.theme = "textual-dark"
        if self.user_keymap:
            self.set_keymap(self.user_keymap)

    def start(self) -> None:
        """Called by the dashboard once its widgets exist: the feed, the countdowns, the first paint."""
        self.start_feed()
        self.set_interval(1.0, self.tick_second)
        self.update_status()
        self.update_header()
        self.table().focus()
        self.maybe_start_on_overview()

    def on_snapshot_fetched(self, msg: SnapshotFetched) -> None:
        """After the feed took a fetch (its handler runs next): the overview follows, and a file whose pools
        were not known at launch opens on it once they are."""
        self.call_later(self.after_fetch)

    def on_fetch_failed(self, msg: FetchFailed) -> None:
        """The overview says the data is old, as the pool view's header does."""
        self.call_later(self.paint_overview)

    def after_fetch(self) -> None:
        """Repaint what a fetch changed beyond the pool on screen."""
        self.maybe_start_on_overview()
        self.paint_overview()

    def tick_second(self) -> None:
        """TTL countdowns and the retry countdown move every second, between refreshes, without a fetch."""
        if not self.dashboard.is_attached or not self.dashboard.children:
            return  # shutting down: the widgets are already gone
        try:
            self.table().refresh()
            self.update_header()
        except NoMatches:
            return  # shutting down: the widgets are being removed one by one


def run(args: argparse.Namespace) -> int:
    """`poolui` with no verb: the console. Returns the process exit code."""
    from .launch import launch

    return asyncio.run(launch(args, PoolApp))
