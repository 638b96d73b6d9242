"""The pools overview: every pool of the file on one screen, the first thing on-call needs when a file has
more than one (the start screen then; `o` from a pool otherwise).

It holds no state: the App gives it its keys (poolui/tui/app.py `Overview`) and calls `show()` with the
console's state after each fetch; Enter on a row asks the App to open that pool.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.markup import escape
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from ...core.cost import PARTS
from ...core.model import PoolSnapshot
from .. import view
from ..state import ConsoleState
from ..widgets.footer import KeyFooter
from ..widgets.pool_table import SORTS, PoolTable, arrange, cost, money, window


class OverviewScreen(Screen[None]):
    """One row per pool; the line under the table says everything about the highlighted one."""

    DEFAULT_CSS = """
    OverviewScreen #overview-title { height: 1; padding: 0 1; background: $panel; }
    OverviewScreen #overview-why { height: auto; max-height: 6; padding: 0 1; background: $surface; }
    """

    class Open(Message):
        """Enter on a pool's row."""

        def __init__(self, pool: str) -> None:
            super().__init__()
            self.pool = pool

    def __init__(self) -> None:
        super().__init__(id="overview")
        self.state: ConsoleState | None = None
        self.source = ""
        self.link = ""  # what is wrong with the link to the pools ("" while the data is fresh)

    def compose(self) -> ComposeResult:
        yield Static("[b]pools[/]  [dim]waiting for the first snapshot…[/]", id="overview-title")
        yield PoolTable(id="pool-table")
        yield Static("", id="overview-why")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(PoolTable).focus()
        self.repaint()

    def on_resize(self) -> None:
        self.repaint()

    def show(self, state: ConsoleState, source: str, link: str = "") -> None:
        """Repaint from the console's state (after a fetch, a sort, a window change); `link` says what is
        wrong with the link to the pools, in console markup."""
        self.state, self.source, self.link = state, source, link
        self.repaint()

    def repaint(self) -> None:
        s = self.state
        if s is None or not self.is_mounted:
            return
        table = self.query_one(PoolTable)
        names = arrange(s.pool_names or list(s.summaries), s.summaries, s.pool_sort, s.pool_reverse, s.window)
        table.show(names, s.summaries, s.window, table.size.width or self.size.width)
        sort = SORTS[s.pool_sort][0] + (" (reversed)" if s.pool_reverse else "")
        self.query_one("#overview-title", Static).update(
            f"[b]{len(names)} pools[/] [dim]{escape(self.source)}[/]  window [b]{s.window}[/] [dim](w)[/]  "
            f"sort [b]{sort}[/] [dim](s)[/]" + (f"  {self.link}" if self.link else ""))
        self.show_why()

    def show_why(self) -> None:
        """The highlighted pool in full: state and why, its window, the last create error, its cost."""
        s, pool = self.state, self.query_one(PoolTable).cursor_pool
        snap = s.summaries.get(pool) if s is not None and pool else None
        why = self.query_one("#overview-why", Static)
        if not (snap and s):
            why.update("")
            return
        money_line = cost_text(snap, (why.content_size.width or self.size.width - 2))
        why.update(why_text(snap, s.window) + (f"\n{money_line}" if money_line else ""))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_why()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.post_message(self.Open(str(event.row_key.value)))


def why_text(snap: PoolSnapshot, label: str) -> str:
    """Two short lines about one pool: how it is and why, then its claims over the window."""
    colour = view.POOL_STATE_COLOURS.get(snap.state, "$primary")
    first = f"[b]{escape(snap.name)}[/] [{colour}]{snap.state}[/]"
    if snap.reason:
        first += f": {escape(snap.reason)}"
    if snap.sizing != "static" and snap.setpoint is not None:  # READY's target is not the file's
        first += f"  [dim]target {snap.setpoint} set by {snap.sizing} (file: {snap.target_ready})[/]"
    last = snap.metrics.get("last_create_error")
    if last and last not in snap.reason:
        first += f"  [dim]last create error: {escape(last)}[/]"
    w = window(snap, label)
    if not w:
        return first
    p50, p99 = (view.millis(w[k]) if w.get(k) is not None else "—" for k in ("p50", "p99"))
    noun = "claim" if w["claims"] == 1 else "claims"
    second = (f"last {label}: [b]{w['claims']}[/] {noun}, {w['hits']} warm, {w['cold']} cold, "
              f"{w['refusals']} refused, {w['timeouts']} timed out; p50 {p50} p99 {p99}")
    if snap.waiting:
        second += f"; {snap.waiting} waiting, longest {view.duration(snap.longest_wait)}"
    creating = snap.counts.get("creating", 0) + snap.counts.get("starting", 0)
    if creating:
        second += f"; {creating} creating"
    return f"{first}\n{second}"


def cost_text(snap: PoolSnapshot, width: int) -> str:
    """What the pool's sandboxes cost since the engine started (core/cost.py), in parts kept whole when the
    line wraps at `width`. With a price: the sum, the idle part and its share, per claim, what the ready
    sandboxes cost per hour now, and the sandbox-hours by part; without one, the idle share of the
    sandbox-hours alone. "" from a server too old to count them, or before any sandbox existed."""
    c = cost(snap)
    seconds = c.get("sandbox_seconds") or {}
    hours = {part: float(seconds.get(part) or 0.0) / 3600 for part in PARTS}
    total, waste = sum(hours.values()), c.get("waste_ratio")
    if waste is None:
        return ""
    if c.get("cost") is None:
        return f"idle [b]{view.percent(waste)}[/] of {total:.1f} sandbox-h"
    per_claim = "no claim yet" if c.get("cost_per_claim") is None else f"{money(c['cost_per_claim'])}/claim"
    parts = [f"cost [b]{money(c['cost'])}[/] since start", f"idle {money(c['idle_cost'])} ({view.percent(waste)})",
             per_claim, f"idle now [b]{c['idle_cost_per_hour']:.2f}/h[/]",
             # Ending (failed, terminating) only when there was some: most pools spend no tenth of an hour there.
             "sandbox-h " + " ".join(f"{p} {h:.1f}" for p, h in hours.items() if p != "ending" or h >= 0.05)]
    return wrap(parts, width)


def wrap(parts: list[str], width: int) -> str:
    """`parts` joined by " · ", a new line before a part that would run past `width` (markup not counted)."""
    lines: list[str] = []
    for part in parts:
        if lines and Text.from_markup(f"{lines[-1]} · {part}").cell_len <= width:
            lines[-1] += f" · {part}"
        else:
            lines.append(part)
    return "\n".join(lines)
