"""The feed: snapshots fetched on a schedule, the event stream followed, and both brought back after an outage.

Polls never overlap: the next one is scheduled when the last one has finished, and a lost server is retried
with exponential backoff (poolui/backoff.py), capped at a second for a server on this machine, while the last
data stays on screen. Times go by the console's clock, so a test can age the data without waiting. Workers
only post messages (poolui/tui/messages.py); the handlers here change the state and repaint.

A console that found its server through the pool file asks whoever answers after an outage (a failed fetch,
a lost event stream) whether it still runs that file's pools (`server_check`, poolui.connect.check_server)
before it fetches or follows anything: a server of another file on the same address is never shown or
steered; the console stays DISCONNECTED saying which server answered, what it runs and what to do, and
keeps checking. A refused token is said the same way, in words of files and flags.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from textual import events, work
from textual.css.query import NoMatches
from textual.timer import Timer

from ..backoff import Backoff
from ..core.model import Event, PoolSnapshot
from ..errors import ServerMismatch, Unauthorized
from .base import ConsoleBase, describe
from .connection import BACKOFF_FIRST
from .messages import EventsArrived, EventsLost, FetchFailed, SnapshotFetched
from .state import EVENTS_KEPT
from .widgets.event_log import EventLog
from .widgets.pool_list import PoolList

POOL_LIST_WIDTH = 100  # columns: narrower, the pool switcher is hidden (80x24 keeps every column in view)
LOG_FLUSH = 0.25  # seconds: events are written to the pane in batches, so a burst costs one repaint


class Feed(ConsoleBase):
    """Fetching snapshots and following events, with reconnects."""

    def __init__(self, *args: Any, server_check: Callable[[], Awaitable[None]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_check = server_check  # None: embedded, or a server named explicitly (never second-guessed)
        self._check_due = False  # the link broke since the last check: ask the server before trusting it
        self._events_down = False  # the event stream ended while checks are due: the next good fetch restarts it
        self._fetch_timer: Timer | None = None
        self._events_timer: Timer | None = None
        self._events_backoff = Backoff(first=BACKOFF_FIRST, cap=self.conn.backoff_cap)
        self._pending_log: list[Event] = []

    def start_feed(self) -> None:
        """First fetch, the event stream, and the log pane's batching."""
        self.fetch()
        self.follow_events()
        self.set_interval(LOG_FLUSH, self.flush_log)

    def schedule_fetch(self, delay: float) -> None:
        """The next fetch in `delay` seconds, replacing one already scheduled."""
        if self._fetch_timer is not None:
            self._fetch_timer.stop()
        self._fetch_timer = self.set_timer(delay, self.fetch)

    @work(exclusive=True, group="fetch", exit_on_error=False, description="fetch a snapshot")
    async def fetch(self) -> None:
        """Fetch the current pool's snapshot (and every pool's summary when there are several)."""
        pool = self.state.pool
        try:
            if self._check_due and self.server_check is not None:
                await self.server_check()  # ServerMismatch: another file's server answers there now
                self._check_due = False
            pools = None
            if pool is None or len(self.state.pool_names) > 1:
                pools = await self.control.list_pools(members=False)
                if pool is None:
                    if not pools:
                        raise RuntimeError("the server has no pools")
                    pool = pools[0].name
            snap = await self.control.snapshot(pool, members=True)
            if self.state.config_path is None:
                self.state.config_path = await self.control.config_path()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.post_message(FetchFailed(pool, e))
            return
        self.post_message(SnapshotFetched(pool, snap, pools))

    def on_snapshot_fetched(self, msg: SnapshotFetched) -> None:
        """A snapshot came: take it, repaint, and schedule the next fetch."""
        if self.conn.succeeded():
            self.notify(f"reconnected to {self.conn.source}", title="connection")
            self._events_down = True
        if self._events_down:
            self._events_down = False
            self.follow_events()
        s = self.state
        if msg.pools is not None:
            s.take_summaries(msg.pools)
            self.show_pool_list()
        if s.pool is None:
            s.pool = msg.pool
        s.summaries[msg.pool] = msg.snapshot
        try:
            if msg.pool == s.pool:
                self.apply(msg.snapshot)
            if len(s.pool_names) > 1 and s.pool is not None:
                self.dashboard.query_one("#pools", PoolList).show(list(s.summaries.values()), s.pool)
        except NoMatches:  # not composed yet, or the console is closing: the next snapshot paints
            pass
        self.schedule_fetch(self.refresh_interval)

    def show_pool_list(self, width: int | None = None) -> None:
        """The pool switcher beside the tables: with more than one pool, on a terminal wide enough for it
        and the columns (under 100, the table keeps the room; `[`, `]` and the overview switch pools)."""
        for pool_list in self.dashboard.query("#pools").results(PoolList):  # none before the dashboard's compose
            wide = (width or self.size.width) >= POOL_LIST_WIDTH
            pool_list.display = len(self.state.pool_names) > 1 and wide

    def on_resize(self, event: events.Resize) -> None:
        """Another width may leave room for the pool switcher, or take it."""
        self.show_pool_list(event.size.width)

    def on_fetch_failed(self, msg: FetchFailed) -> None:
        """A fetch failed: show the outage and retry after the backoff (checking the server first: whoever
        answers next may be another one). A server that refused the console is said in full by the header."""
        self._check_due = self.server_check is not None
        refused = isinstance(msg.error, ServerMismatch | Unauthorized)
        text = str(msg.error) if refused else describe(msg.error)
        if isinstance(msg.error, Unauthorized):
            text += ". The console read its token as it started: quit and start it again to send another"
        if refused and text != self.conn.error and self.screen is not self.dashboard:
            # The pool view's header says it all; other screens (the overview's one-line title) get it aloud.
            self.notify(text, title="not connected", severity="error", timeout=15)
        delay = self.conn.failed(text, self.clock.monotonic(), refused=refused)
        self.update_header()
        self.refresh_bindings()
        self.schedule_fetch(delay)

    def apply(self, snap: PoolSnapshot) -> None:
        """Take a new snapshot of the current pool: O(members) dictionary work, then repaint what is seen."""
        skew = 0.0 if self.conn.embedded else snap.taken_at - self.clock.time()
        self.show_snapshot(self.state.take(snap, skew, self.clock.monotonic()))

    @work(exclusive=True, group="events", exit_on_error=False, description="follow pool events")
    async def follow_events(self) -> None:
        """The backlog, then every event as it happens, until the stream ends or fails."""
        try:
            backlog = await self.control.recent_events(None, limit=EVENTS_KEPT)
            if backlog:
                self.post_message(EventsArrived(backlog, replace=True))
            last = backlog[-1].seq if backlog else 0
            first = True
            async for event in self.control.events(None):
                if first and event.seq > last + 1:
                    # Events between the backlog and the subscription: fetch them once, or they are lost.
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
        """Keep the events; the current pool's go to the log pane at the next flush."""
        self._events_backoff.reset()
        self._pending_log.extend(self.state.add_events(msg.events, msg.replace))

    def on_events_lost(self, msg: EventsLost) -> None:
        """The stream ended: follow it again after a backoff, unless the whole link is down."""
        # While disconnected the stream comes back with the connection (on_snapshot_fetched).
        if self.server_check is not None:
            # Whoever answers now may be another server: the next fetch checks it first, then restarts this.
            self._check_due = self._events_down = True
            if self.conn.ok():
                self.schedule_fetch(self._events_backoff.failed())
            return
        if self.conn.ok():
            if self._events_timer is not None:
                self._events_timer.stop()
            self._events_timer = self.set_timer(self._events_backoff.failed(), self.follow_events)

    def flush_log(self) -> None:
        """Write the events gathered since the last flush to the log pane in one go."""
        if not self._pending_log or not self.dashboard.children:
            return
        pending, self._pending_log = self._pending_log[-EVENTS_KEPT:], []
        try:
            log = self.dashboard.query_one("#events", EventLog)
        except NoMatches:  # the console is closing and its widgets are going
            return
        log.add(pending)

    def switch_pool(self, name: str) -> None:
        """Show another pool: its cached snapshot at once if there is one, then a fresh fetch."""
        if name == self.state.pool:
            return
        cached = self.state.switch(name)
        if cached is not None:
            self.apply(cached)
        else:
            self.show_table()
            self.update_header()
        self.dashboard.query_one("#events", EventLog).replace(self.state.events_by_pool.get(name, ()))
        self._pending_log.clear()
        self.refresh_bindings()
        self.update_status()
        self.fetch()
