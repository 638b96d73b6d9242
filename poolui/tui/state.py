"""What the console knows, apart from its widgets: snapshots, events, the current pool, marks, filter, sort.

Plain data and the transitions that change it, testable without Textual. The App applies a transition, then
repaints what it touched (poolui/tui/base.py); workers never change this, they post messages.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..core.model import Event, MemberView, PoolSnapshot
from ..core.window import WINDOWS
from . import view
from .widgets.charts import History
from .widgets.columns import sort_words
from .widgets.pool_table import SORTS as POOL_SORTS

EVENTS_KEPT = 1000  # per pool: the detail view's history and the log pane's backlog


def _empty_groups() -> dict[str, list[MemberView]]:
    return {tab: [] for tab in view.TABS}


@dataclass
class ConsoleState:
    """Everything the console shows, keyed by pool; `pool` is the one on screen."""

    pool_names: list[str] = field(default_factory=list)
    pool: str | None = None
    config_path: str | None = None  # the pool file resizes are saved into; asked at the first fetch
    snapshots: dict[str, PoolSnapshot] = field(default_factory=dict)
    summaries: dict[str, PoolSnapshot] = field(default_factory=dict)  # every pool's, for the switcher
    histories: dict[str, History] = field(default_factory=dict)
    events_by_pool: dict[str, deque[Event]] = field(default_factory=dict)
    by_id: dict[str, MemberView] = field(default_factory=dict)
    groups: dict[str, list[MemberView]] = field(default_factory=_empty_groups)
    marks: set[str] = field(default_factory=set)
    filter_text: str = ""
    sort_key: str = "age"
    reverse: bool = False
    active_tab: str = "ready"
    skew: float = 0.0  # server wall clock minus ours, so TTLs count down right against a remote clock
    received_at: float | None = None  # monotonic, of the last snapshot of the current pool
    window: str = "1m"  # the overview's and the trends' window (core/window.py WINDOWS)
    pool_sort: str = "file"  # the overview's order (widgets/pool_table.py SORTS)
    pool_reverse: bool = False

    @property
    def current(self) -> PoolSnapshot | None:
        """The last snapshot of the pool on screen, if one has come."""
        return self.snapshots.get(self.pool) if self.pool else None

    @property
    def min_remaining_ttl(self) -> float:
        """The current pool's threshold under which a TTL is shown as low."""
        snap = self.current
        return float(snap.config.get("min_remaining_ttl") or 0.0) if snap else 0.0

    def busy(self) -> bool:
        """True while the pool is paused, draining or drained (so `p` means resume)."""
        snap = self.current
        return snap is not None and snap.state in ("paused", "draining", "drained")

    def member(self, member_id: str) -> MemberView | None:
        """The current pool's member with this id, as of the last snapshot."""
        return self.by_id.get(member_id)

    def member_events(self, member_id: str) -> list[Event]:
        """The events kept for one member of the current pool, oldest first."""
        return [e for e in self.events_by_pool.get(self.pool or "", ()) if e.member_id == member_id]

    def take(self, snap: PoolSnapshot, skew: float, at: float) -> bool:
        """Store a snapshot of the current pool: O(members) work. True when its state or read-only flag
        changed, which changes which keys are enabled."""
        was = self.current
        self.snapshots[snap.name] = snap
        self.received_at = at
        self.skew = skew
        self.by_id = {m.id: m for m in snap.members}
        self.groups = view.group(snap.members)
        self.marks &= self.by_id.keys()  # a sandbox that is gone cannot stay marked
        self.histories.setdefault(snap.name, History()).add(snap)
        return was is None or (was.state, was.read_only) != (snap.state, snap.read_only)

    def take_summaries(self, pools: Iterable[PoolSnapshot]) -> None:
        """Store every pool's summary; the file's pool order follows the server's."""
        self.summaries = {p.name: p for p in pools}
        self.pool_names = list(self.summaries)

    def switch(self, name: str) -> PoolSnapshot | None:
        """Show another pool: marks and rows go; returns its cached snapshot, if any, to show at once."""
        self.pool = name
        self.marks.clear()
        self.by_id, self.groups = {}, _empty_groups()
        return self.snapshots.get(name)

    def step_pool(self, step: int) -> str | None:
        """The pool `step` places along the file's order from the current one (wrapping)."""
        if len(self.pool_names) < 2 or self.pool is None:
            return None
        i = self.pool_names.index(self.pool) if self.pool in self.pool_names else 0
        return self.pool_names[(i + step) % len(self.pool_names)]

    def add_events(self, events: Iterable[Event], replace: bool) -> list[Event]:
        """Keep events per pool; returns those of the current pool that are new, for the log pane.

        A backlog (`replace`) may repeat what the stream brought, and a restarted server numbers from 1
        again, so an event is known by its number and its time together."""
        known: dict[str, set[tuple[int, float]]] = {}
        fresh: list[Event] = []
        for e in events:
            buf = self.events_by_pool.setdefault(e.pool, deque(maxlen=EVENTS_KEPT))
            if replace:
                seen = known.setdefault(e.pool, {(x.seq, x.ts) for x in buf})
                if (e.seq, e.ts) in seen:
                    continue
                seen.add((e.seq, e.ts))
            buf.append(e)
            if e.pool == self.pool:
                fresh.append(e)
        return fresh

    def toggle_mark(self, member_id: str) -> None:
        """Mark a sandbox for terminate, or unmark it."""
        self.marks.symmetric_difference_update({member_id})

    def targets(self, cursor_key: str | None) -> list[str]:
        """What terminate acts on: the marked sandboxes that still exist, else the one under the cursor."""
        if self.marks:
            return sorted(self.marks & self.by_id.keys())
        return [cursor_key] if cursor_key is not None else []

    def next_window(self) -> str:
        """Show the next window (1m, 5m, wrapping)."""
        labels = list(WINDOWS)
        self.window = labels[(labels.index(self.window) + 1) % len(labels)] if self.window in labels else labels[0]
        return self.window

    def next_pool_sort(self) -> str:
        """Order the overview by its next column (wrapping)."""
        keys = list(POOL_SORTS)
        self.pool_sort = keys[(keys.index(self.pool_sort) + 1) % len(keys)]
        return self.pool_sort

    def next_sort(self) -> str:
        """The sort column after the current one (wrapping)."""
        keys = [s.key for s in view.SORTS]
        return keys[(keys.index(self.sort_key) + 1) % len(keys)]

    def rows(self, tab: str) -> list[MemberView]:
        """One tab's members, filtered and sorted as the console is set."""
        return view.arrange(self.groups.get(tab, []), self.filter_text, self.sort_key, self.reverse)

    def empty_text(self, tab: str) -> str:
        """What an empty table says: still waiting, filtered out, or really empty."""
        if self.current is None:
            return "waiting for the first snapshot…"
        if self.filter_text and self.groups.get(tab):
            return f"nothing matches '{self.filter_text}'"
        return f"no {view.TABS[tab][0].lower()} sandboxes"

    def status_line(self) -> str:
        """The line above the tables: sort order, filter, marks."""
        parts = [f"sort: [b]{sort_words(self.sort_key, self.reverse)}[/]"]
        if self.filter_text:
            parts.append(f"filter: [b]{self.filter_text}[/]")
        if self.marks:
            parts.append(f"marked: [b]{len(self.marks)}[/] (t terminates them, esc clears)")
        return "  ".join(parts)
