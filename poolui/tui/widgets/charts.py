"""Trends over the chosen window (1m or 5m, `w`): ready against target, and claims per minute.

Each chart has a labelled scale (its top and 0 on the left, the window's start and now below) and is drawn
from zero, so a steady pool of 3 is a steady bar and a dip from 3 to 2 a third lower, not a cliff (Textual's
Sparkline scales between the data's own min and max). Ready is sampled by the console at each refresh (the
lowest sample in a column, so a dip shows; blank before the console opened); claims per minute come from
the engine's own record of the window (core/window.py), so they are there in full from the first refresh.
Nothing is made up: with no claim in the window, latency reads "—", never 0.0ms.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Static

from ...core.model import PoolSnapshot
from ...core.window import WINDOWS
from .. import view

KEPT = 2000  # ready samples at most (5 minutes at the fastest refresh, 250 ms, is 1200)
BLOCKS = " ▁▂▃▄▅▆▇█"
NONE = "—"
GUTTER = 4  # the scale's labels, right-aligned: both charts and the time axis line up


@dataclass
class History:
    """One pool's ready samples (wall time of the snapshot, ready) and its latest windows."""

    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=KEPT))
    target: int = 0
    sizing: str = "static"
    min_ready: int = 0
    windows: dict[str, Any] = field(default_factory=dict)

    def add(self, snap: PoolSnapshot) -> None:
        """Keep a snapshot's ready count; samples older than the longest window go."""
        self.samples.append((snap.taken_at, snap.ready))
        while self.samples and self.samples[0][0] < snap.taken_at - max(WINDOWS.values()):
            self.samples.popleft()
        # What refill aims at now: the setpoint (an autoscaled or resized pool's), else target_ready.
        self.target = snap.target_ready if snap.setpoint is None else snap.setpoint
        self.sizing = snap.sizing
        self.min_ready = snap.min_ready
        self.windows = dict(snap.metrics.get("windows") or {})

    def ready_columns(self, seconds: int, columns: int) -> list[int | None]:
        """The lowest ready count in each of `columns` equal slices of the last `seconds` (None: no sample)."""
        out: list[int | None] = [None] * columns
        if not self.samples:
            return out
        now = self.samples[-1][0]
        for at, ready in self.samples:
            i = int((at - (now - seconds)) / seconds * columns)
            if 0 <= i <= columns:
                i = min(columns - 1, i)
                cur = out[i]
                out[i] = ready if cur is None else min(cur, ready)
        # A column between two samples (refreshes slower than a column) holds the last one seen: a step line,
        # blank only before the first sample.
        last = None
        for i, v in enumerate(out):
            out[i] = last = v if v is not None else last
        return out


def per_minute(series: Sequence[int], seconds: int, columns: int) -> list[float]:
    """The engine's claim counts (equal steps across the window) as claims per minute in `columns` columns."""
    n = len(series)
    if not n:
        return [0.0] * columns
    step = seconds / n
    out = []
    for c in range(columns):
        lo, hi = c * n // columns, max(c * n // columns + 1, (c + 1) * n // columns)
        out.append(sum(series[lo:hi]) / ((hi - lo) * step) * 60.0)
    return out


def bars(values: Sequence[float | None], top: float, rows: int = 2, styles: Sequence[str] | None = None) -> list[Text]:
    """Vertical bars `rows` lines high, 0 at the bottom and `top` at the top; None draws nothing. Any value
    above 0 shows at least a sliver, so one claim in five minutes is not lost to rounding."""
    steps = rows * 8
    levels = []
    for v in values:
        lv = 0 if v is None or top <= 0 else max(0, min(steps, round(v / top * steps)))
        levels.append(max(lv, 1) if v else lv)
    lines = []
    for r in range(rows - 1, -1, -1):
        line = Text(no_wrap=True)
        for i, lv in enumerate(levels):
            line.append(BLOCKS[max(0, min(8, lv - r * 8))], style=styles[i] if styles else "")
        lines.append(line)
    return lines


def scaled(values: Sequence[float | None], top: float, styles: Sequence[str] | None = None) -> Text:
    """Two rows of bars with the scale on the left: `top` against the top row, 0 against the bottom."""
    out = Text(no_wrap=True)
    for label, line in zip((_number(top), "0"), bars(values, top, 2, styles), strict=True):
        out.append(f"{label:>{GUTTER}}┤", style="dim")
        out.append_text(line)
        out.append("\n")
    out.rstrip()
    return out


def time_axis(label: str, columns: int) -> Text:
    """-5m under the first column, now under the last."""
    left, right = f"-{label}", "now"
    return Text(" " * (GUTTER + 1) + left + " " * max(1, columns - len(left) - len(right)) + right, style="dim")


def _number(x: float) -> str:
    """A scale label in at most GUTTER characters: 4, 2.5, 120, 1.2k, 35k."""
    if x >= 10_000:
        return f"{x / 1000:.0f}k"
    if x >= 1000:
        return f"{x / 1000:.1f}k"
    return f"{x:.0f}" if x >= 10 or x == int(x) else f"{x:.1f}"


class Trend(Static):
    DEFAULT_CSS = "Trend { height: 2; }"


class Charts(Vertical):
    DEFAULT_CSS = """
    Charts {
        height: 1fr;
        border: round $panel-lighten-2;
        border-title-color: $foreground-muted;
        padding: 0 1;
    }
    Charts Label { color: $foreground-muted; }
    Charts #axis { height: 1; }
    """

    def compose(self) -> ComposeResult:
        self.border_title = "trends"
        yield Label("ready", id="ready-label")
        yield Trend(id="ready-trend")
        yield Label("claims", id="claims-label")
        yield Trend(id="claims-trend")
        yield Static("", id="axis")

    def show(self, history: History, window: str = "5m") -> None:
        """Repaint both charts over the window labelled `window` ("1m", "5m")."""
        seconds = WINDOWS.get(window, max(WINDOWS.values()))
        self.border_title = f"trends, last {window} (w)"
        w = history.windows.get(window) or {}
        series = list(w.get("series") or [])
        columns = min(max(8, (self.content_region.width or 40) - GUTTER - 1), len(series) or 60)
        ready = history.ready_columns(seconds, columns)
        ready_top = float(max([history.target, *(r for r in ready if r is not None)])) or 1.0
        colours = ["green" if v is not None and v >= history.target else "yellow" if v is not None
                   and v >= history.min_ready else "red" for v in ready]
        now = history.samples[-1][1] if history.samples else None
        self.query_one("#ready-label", Label).update(
            f"ready [b]{'-' if now is None else now}[/] of target [b]{history.target}[/]"
            + (f" [dim]({history.sizing})[/]" if history.sizing != "static" else "")
            + f"  [dim]min {history.min_ready}[/]")
        self.query_one("#ready-trend", Trend).update(scaled(ready, ready_top, colours))
        claims = per_minute(series, seconds, columns)
        self.query_one("#claims-label", Label).update(claims_text(w))
        self.border_subtitle = outcomes_text(w)
        self.query_one("#claims-trend", Trend).update(scaled(claims, max([1.0, *claims]), ["cyan"] * columns))
        self.query_one("#axis", Static).update(time_axis(window, columns))


def claims_text(w: dict[str, Any]) -> str:
    """The claims chart's title: the window's rate and latency."""
    if not w:
        return f"claims/min {NONE}  [dim](the server sends no window)[/]"
    p50, p99 = (view.millis(w[k]) if w.get(k) is not None else NONE for k in ("p50", "p99"))
    return f"claims/min [b]{_number(float(w.get('per_minute') or 0.0))}[/]  p50 [b]{p50}[/] p99 [b]{p99}[/]"


def outcomes_text(w: dict[str, Any]) -> str:
    """The window's claims by outcome, apart (the panel's bottom edge)."""
    if not w.get("claims"):
        return ""
    return f"{w['hits']} warm {w['cold']} cold {w['refusals']} refused {w['timeouts']} timed out"
