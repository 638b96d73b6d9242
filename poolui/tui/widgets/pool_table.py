"""The pools overview's table: one row per pool, the columns on-call reads first kept when the terminal is
narrow (k9s's pods view, pgbouncer's SHOW POOLS).

The cells are computed here from pool summaries without Textual (testable alone); the window's numbers
(hit rate, p50/p99, claims) are the engine's own (core/window.py), never counted again by the console, and
so is the cost (core/cost.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from ...core.model import PoolSnapshot
from .. import view

PAD = 2  # a DataTable cell's padding, both sides together
NONE = "—"  # nothing to measure (no claim in the window): never a made-up 0


def window(snap: PoolSnapshot, label: str) -> dict[str, Any]:
    """The snapshot's numbers over one window ("1m", "5m"); {} from a server too old to send them."""
    return dict((snap.metrics.get("windows") or {}).get(label) or {})


def aim(s: PoolSnapshot) -> int:
    """The ready sandboxes a pool aims at now: its setpoint (autoscaled, or resized until resume), else
    target_ready (a server too old to say)."""
    return s.target_ready if s.setpoint is None else s.setpoint


def _ready(s: PoolSnapshot, w: str) -> Text:
    target = aim(s)
    style = "green" if s.ready >= target else "yellow" if s.ready >= s.min_ready else "bold red"
    return Text(f"{s.ready}/{target}" + ("~" if s.sizing == "autoscale" else ""), style=style)


def _state(s: PoolSnapshot, w: str) -> Text:
    style = {"healthy": "green", "degraded": "bold red", "warming": "yellow", "paused": "magenta"}.get(
        s.state, "yellow")
    return Text(s.state + ("!" if s.reason else ""), style=style)


def _waiting(s: PoolSnapshot, w: str) -> Text:
    if not s.waiting:
        return Text("0", style="dim")
    longest = f" {view.duration(s.longest_wait)}" if s.longest_wait is not None else ""
    return Text(f"{s.waiting}{longest}", style="bold yellow")


def _count(key: str, bad: bool = False) -> Callable[[PoolSnapshot, str], Text]:
    def cell(s: PoolSnapshot, w: str) -> Text:
        n = window(s, w).get(key)
        if n is None:
            return Text(NONE, style="dim")
        return Text(str(n), style="bold red" if bad and n else "" if n else "dim")
    return cell


def _hit(s: PoolSnapshot, w: str) -> Text:
    rate = window(s, w).get("hit_rate")
    if rate is None:
        return Text(NONE, style="dim")
    return Text(view.percent(rate), style="green" if rate >= 0.9 else "yellow" if rate >= 0.5 else "bold red")


def _latency(key: str) -> Callable[[PoolSnapshot, str], Text]:
    def cell(s: PoolSnapshot, w: str) -> Text:
        value = window(s, w).get(key)
        return Text(NONE, style="dim") if value is None else Text(view.millis(value))
    return cell


def _failures(s: PoolSnapshot, w: str) -> Text:
    n = int(s.metrics.get("create_failures") or 0)
    return Text(str(n), style="bold red" if n and s.state == "degraded" else "yellow" if n else "dim")


def _why(s: PoolSnapshot, w: str) -> Text:
    if s.reason:
        return Text(s.reason, style="red")
    last = s.metrics.get("last_create_error")
    return Text(f"last create error: {last}", style="dim") if last else Text("")


def cost(snap: PoolSnapshot) -> dict[str, Any]:
    """The snapshot's cost report (core/cost.py); {} from a server too old to send one."""
    return dict(snap.metrics.get("cost") or {})


def money(value: float) -> str:
    """A sum in the price's currency, no symbol (poolui does not know it): two decimals, more for a small one
    so it keeps two significant digits (0.023 a claim, not 0.02)."""
    places = 2 if value >= 0.1 or value <= 0 else max(2, 1 - math.floor(math.log10(value)))
    return f"{value:.{places}f}"


def _idle_cost(s: PoolSnapshot, w: str) -> Text:
    per_hour = cost(s).get("idle_cost_per_hour")
    if per_hour is None:  # no price in the pool file: nothing to put a number on
        return Text(NONE, style="dim")
    return Text(f"{per_hour:.2f}", style="" if per_hour else "dim")


def _waste(s: PoolSnapshot, w: str) -> Text:
    ratio = cost(s).get("waste_ratio")
    return Text(NONE, style="dim") if ratio is None else Text(view.percent(ratio))


def _plain(fn: Callable[[PoolSnapshot], object], style: str = "") -> Callable[[PoolSnapshot, str], Text]:
    return lambda s, w: Text(str(fn(s)), style=style)


@dataclass(frozen=True)
class PoolColumn:
    key: str
    title: str  # "{w}" is the window's label
    cell: Callable[[PoolSnapshot, str], Text]
    keep: int  # 0 is kept longest when the terminal is narrow
    flexible: bool = False  # takes the width left over


COLUMNS: tuple[PoolColumn, ...] = (
    PoolColumn("name", "POOL", _plain(lambda s: s.name, "bold"), 0),
    PoolColumn("state", "STATE", _state, 0),
    PoolColumn("ready", "READY", _ready, 0),
    PoolColumn("sizes", "MIN/MAX", _plain(lambda s: f"{s.min_ready}/{s.max_ready}", "dim"), 6),
    PoolColumn("creating", "NEW", _plain(lambda s: s.counts.get("creating", 0) + s.counts.get("starting", 0)), 3),
    PoolColumn("claimed", "USED", _plain(lambda s: s.counts.get("claimed", 0)), 1),
    PoolColumn("waiting", "WAIT", _waiting, 1),
    PoolColumn("hit", "HIT {w}", _hit, 1),
    PoolColumn("cold", "COLD", _count("cold"), 4),
    PoolColumn("refused", "REFUSED", _count("refusals", bad=True), 2),
    PoolColumn("timeouts", "TIMEOUT", _count("timeouts", bad=True), 2),
    PoolColumn("p50", "P50", _latency("p50"), 4),
    PoolColumn("p99", "P99", _latency("p99"), 1),
    PoolColumn("failures", "FAILS", _failures, 2),
    PoolColumn("near_ttl", "TTL<MIN", _plain(lambda s: s.near_ttl), 5),
    # What idle warmth costs matters for sizing more than for the incident at hand: it gives way early.
    PoolColumn("idle_cost", "IDLE/H", _idle_cost, 5),
    PoolColumn("waste", "WASTE", _waste, 6),
    PoolColumn("isolation", "ISOLATION", _plain(lambda s: s.isolation, "dim"), 6),
    PoolColumn("why", "WHY", _why, 7, flexible=True),
)
WHY_MIN = 16


def fit(snaps: list[PoolSnapshot], label: str, width: int) -> list[tuple[PoolColumn, int]]:
    """The columns that fit in `width`, in table order, with their widths: the least needed give way first,
    and WHY takes what is left (when at least WHY_MIN is)."""
    widths = {}
    for c in COLUMNS:
        cells = [c.cell(s, label).cell_len for s in snaps]
        widths[c.key] = max([len(c.title.format(w=label)), *cells])
    chosen: set[str] = set()
    used = 0
    for c in sorted(COLUMNS, key=lambda c: c.keep):
        need = (WHY_MIN if c.flexible else widths[c.key]) + PAD
        if used + need <= width:
            chosen.add(c.key)
            used += need
    out = []
    for c in COLUMNS:
        if c.key in chosen:
            w = max(WHY_MIN, width - used + WHY_MIN) if c.flexible else widths[c.key]
            out.append((c, w))
    return out


# Worst first for "state"; the rest say what an on-call engineer looks for first.
STATE_RANK = {"degraded": 0, "draining": 1, "drained": 2, "warming": 3, "paused": 4, "healthy": 5}
SORTS: dict[str, tuple[str, Callable[[PoolSnapshot, str], Any]]] = {
    "file": ("file order", lambda s, w: 0),
    "state": ("state, worst first", lambda s, w: STATE_RANK.get(s.state, 9)),
    "ready": ("ready of target, lowest first", lambda s, w: s.ready / aim(s) if aim(s) else 1.0),
    "waiting": ("waiting, most first", lambda s, w: -(s.longest_wait or 0.0) - s.waiting * 1e6),
    "hit": ("hit rate, lowest first", lambda s, w: 2.0 if window(s, w).get("hit_rate") is None
            else window(s, w)["hit_rate"]),
    "p99": ("claim p99, slowest first", lambda s, w: -(window(s, w).get("p99") or 0.0)),
    "failures": ("create failures, most first", lambda s, w: -int(s.metrics.get("create_failures") or 0)),
    # Unpriced pools last: they have no idle cost to rank by.
    "idle_cost": ("idle cost per hour, most first", lambda s, w: 1.0 if cost(s).get("idle_cost_per_hour") is None
                  else -cost(s)["idle_cost_per_hour"]),
}


def arrange(names: list[str], snaps: dict[str, PoolSnapshot], sort: str, reverse: bool,
            label: str) -> list[str]:
    """The pools in the order shown (stable: ties keep the file's order); pools with no summary yet last."""
    known = [n for n in names if n in snaps]
    key = SORTS[sort][1]
    ordered = sorted(known, key=lambda n: key(snaps[n], label), reverse=reverse)
    return ordered + [n for n in names if n not in snaps]


class PoolTable(DataTable[Text]):
    """The overview's rows; `show()` repaints them, keeping the cursor on the same pool."""

    DEFAULT_CSS = "PoolTable { height: 1fr; }"
    # As in the sandbox tables: home and end go to the first and last row, j and k move.
    BINDINGS: ClassVar = [
        Binding("home", "scroll_top", "First", show=False),
        Binding("end", "scroll_bottom", "Last", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("j", "cursor_down", "Down", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._shape: list[tuple[str, str, int]] = []

    @property
    def cursor_pool(self) -> str | None:
        """The pool under the cursor."""
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def show(self, names: list[str], snaps: dict[str, PoolSnapshot], label: str, width: int) -> None:
        """Repaint: the columns that fit `width`, then one row per pool in `names`' order."""
        keep = self.cursor_pool
        cols = fit([snaps[n] for n in names if n in snaps], label, width)
        shape = [(c.key, c.title.format(w=label), w) for c, w in cols]
        if shape != self._shape:
            self.clear(columns=True)
            for key, title, w in shape:
                self.add_column(title, width=w, key=key)
            self._shape = shape
        else:
            self.clear()
        for n in names:
            s = snaps.get(n)
            if s is None:
                cells = [Text(n, style="bold") if c.key == "name" else Text("…", style="dim") for c, _ in cols]
            else:
                cells = [c.cell(s, label) for c, _ in cols]
            self.add_row(*cells, key=n)
        if keep in names:
            self.move_cursor(row=names.index(keep), animate=False)
