"""The header: which pool, how it is doing, and whether what is shown is live.

One line, whatever the width: each part has a rank, and when the line is too long the least needed parts go
first (the shield, the refresh rate, latencies...), never the pool, its badge, or ready/target. The badge is
the pool's state while the data is fresh; it turns STALE when the last snapshot is older than a few refresh
periods and DISCONNECTED when the server does not answer, both with the data's age and, while disconnected,
the key that retries now. A second line appears only when something is wrong: why the pool is degraded, or
what the connection's last error was (a server that refuses the console, by its pools or its token, is said in
full over a few lines: nothing else on screen is current then).

Hit rate and claim latency are over the window the overview and the trends show (1m or 5m, `w`), the engine's
own numbers, so the header and the overview never disagree; "—" when no claim fell in the window.
"""

from __future__ import annotations

import textwrap
from typing import Any

from textual.content import Content
from textual.events import Resize
from textual.markup import escape
from textual.widgets import Static

from ...core.model import PoolSnapshot
from .. import view
from ..connection import Connection, interval_text, short_source
from .pool_table import NONE, window

REFUSAL_LINES = 10  # at most, for a refusal's reason (which server, what it runs, what to do)

SEP = "  "


def badge(text: str, colour: str) -> str:
    """Bold text on a coloured block: the pool's state, or what is wrong with the link."""
    return f"[bold $background on {colour}] {escape(text)} [/]"


class PoolHeader(Static):
    """The pool's summary line (and an alert line when something is wrong), fitted to the width."""

    DEFAULT_CSS = """
    PoolHeader {
        height: auto;
        background: $panel;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last: tuple[Any, ...] | None = None

    def show(self, snap: PoolSnapshot | None, conn: Connection, refresh: float, read_only: bool,
             monotonic_now: float, stale_for: float | None, window: str = "1m") -> None:
        """Repaint from the console's state; `stale_for` is the age of the data (None before any), `window`
        the label of the claims' window shown ("1m", "5m")."""
        self._last = (snap, conn, refresh, read_only, monotonic_now, stale_for, window)
        width = self.content_region.width or 10_000  # before the first layout: everything, cut at resize
        self.update("\n".join(header_lines(snap, conn, refresh, read_only, monotonic_now, stale_for, width,
                                           window)))

    def on_resize(self, event: Resize) -> None:
        """Another width keeps other parts: fit the last state again."""
        if self._last is not None:
            self.show(*self._last)


def header_lines(snap: PoolSnapshot | None, conn: Connection, refresh: float, read_only: bool,
                 monotonic_now: float, stale_for: float | None, width: int = 10_000,
                 window: str = "1m") -> list[str]:
    """The header's lines: the summary fitted to `width`, then the alert line(s) if there is one."""
    health = conn.health(stale_for, refresh)
    parts = status_parts(snap, conn, health, stale_for, read_only)
    if snap is not None:
        parts += pool_parts(snap, window)
    parts += connection_parts(conn, health)
    parts.append((8, f"[dim]refresh {interval_text(refresh)}[/]"))
    if snap is not None and snap.shield:
        parts.append((9, view.shield(snap.shield)))
    lines = [fit(parts, width)]
    if health == "disconnected" and conn.refused:
        lines += refusal_lines(conn, monotonic_now, width)
        if snap is not None and snap.reason:
            lines.append(f"[$error]degraded: {escape(snap.reason)}[/]")
        return lines
    alert = alert_text(snap, conn, health, monotonic_now)
    if alert:
        lines.append(alert)
    return lines


def status_parts(snap: PoolSnapshot | None, conn: Connection, health: str, age: float | None,
                 read_only: bool) -> list[tuple[int, str]]:
    """The pool's name and the badge: the pool's state, or STALE/DISCONNECTED with the data's age."""
    parts = [(0, f"[b]{escape(snap.name)}[/]" if snap is not None else "[b]poolui[/]")]
    if health in ("disconnected", "stale"):
        colour = "$error" if health == "disconnected" else "$warning"
        parts.append((0, badge(health.upper(), colour)))
        parts.append((0, f"[b {colour}]data {view.duration(age)} old[/]" if age is not None
                      else f"[{colour}]no data yet[/]"))
        if health == "disconnected":
            parts.append((1, "[b]ctrl+r[/] retry now"))
        if snap is not None:
            parts.append((6, f"[dim]last seen {escape(snap.state)}[/]"))
    elif snap is None:
        parts.append((0, badge("CONNECTING", "$warning") if health == "connecting" and not conn.embedded
                      else "[dim]waiting for the first snapshot…[/]"))
    else:
        parts.append((0, badge(snap.state.upper(), view.POOL_STATE_COLOURS.get(snap.state, "$primary"))))
    if read_only:
        parts.append((1, badge("READ-ONLY", "$warning")))
    return parts


def pool_parts(snap: PoolSnapshot, label: str = "1m") -> list[tuple[int, str]]:
    """Ready against target, who is waiting, what is in use and being made, how claims went over the window
    labelled `label` (the overview's numbers: hit rate, p50, p99; "—" with no claim in it)."""
    c = snap.counts
    w = window(snap, label)

    def measured(key: str, shown: Any) -> str:
        value = w.get(key)
        return NONE if value is None else str(shown(value))
    ready_colour = "$success" if snap.ready >= snap.target_ready else (
        "$warning" if snap.ready >= snap.min_ready else "$error")
    parts = [(1, f"ready [b {ready_colour}]{snap.ready}[/]/{snap.target_ready}")]
    if snap.waiting:
        parts.append((2, f"waiting [b $warning]{snap.waiting}[/]"))
    parts += [
        (2, f"in use [b]{c.get('claimed', 0)}[/]"),
        (3, f"creating [b]{c.get('creating', 0) + c.get('starting', 0)}[/]"),
        # The window's label goes with the hit rate, which stays longer than p99 and p50 on a narrow line.
        (5, f"[dim]{escape(label)}[/] hit [b]{measured('hit_rate', view.percent)}[/]"),
        (7, f"p50 [b]{measured('p50', view.millis)}[/]"),
        (5, f"p99 [b]{measured('p99', view.millis)}[/]"),
        (7, f"[dim]{escape(snap.provider)} · {escape(snap.isolation)}[/]"),
    ]
    return parts


def connection_parts(conn: Connection, health: str) -> list[tuple[int, str]]:
    """Where the data comes from: the pool file run here (quitting stops its pools), or the server and
    whether it answers; the file or address goes before the word does."""
    where = (6, f"[dim]{escape(short_source(conn.source))}[/]")
    if conn.embedded:
        return [(2, "[b $accent]EMBEDDED[/]"), where]
    if health == "disconnected":
        return [(2, "[$error]○[/]"), where]
    if conn.state == "connecting":
        return [(2, "[$warning]○[/] connecting to"), where]
    return [(2, "[$success]●[/] connected"), (4, where[1])]


def alert_text(snap: PoolSnapshot | None, conn: Connection, health: str, monotonic_now: float) -> str:
    """The second line: what went wrong and what happens next ("" when nothing is wrong)."""
    alerts = []
    if health == "disconnected":
        wait = max(0.0, conn.retry_at - monotonic_now)
        # The retry first: the error can be long, and the line is cut at the edge.
        alerts.append(f"retry {conn.failures + 1} in {wait:.0f}s: [$error]{escape(conn.error)}[/]")
    if snap is not None and snap.reason:
        alerts.append(f"[$error]degraded: {escape(snap.reason)}[/]")
    return SEP.join(alerts)


def refusal_lines(conn: Connection, monotonic_now: float, width: int) -> list[str]:
    """A server that answers but refuses the console (another pool file's, or not this token): the whole
    reason, wrapped over at most REFUSAL_LINES lines of `width`, with the next check's countdown first."""
    wait = max(0.0, conn.retry_at - monotonic_now)
    text = f"retry {conn.failures + 1} in {wait:.0f}s: {conn.error}"
    lines = textwrap.wrap(text, max(20, width), break_on_hyphens=False) or [text]
    if len(lines) > REFUSAL_LINES:
        lines = [*lines[:REFUSAL_LINES - 1], lines[REFUSAL_LINES - 1][:max(1, width - 1)] + "…"]
    return [f"[$error]{escape(line)}[/]" for line in lines]


def fit(parts: list[tuple[int, str]], width: int) -> str:
    """Join the parts in order, leaving out the least needed (highest rank) until the line fits `width`;
    rank 0 always stays (the line is then cut at the edge)."""
    sizes = [Content.from_markup(text).cell_length for _, text in parts]
    kept = list(range(len(parts)))

    def length() -> int:
        return sum(sizes[i] for i in kept) + len(SEP) * max(0, len(kept) - 1)

    while length() > width:
        droppable = [i for i in kept if parts[i][0] > 0]
        if not droppable:
            break
        worst = max(droppable, key=lambda i: (parts[i][0], i))
        kept.remove(worst)
    return SEP.join(parts[i][1] for i in kept)
