"""Trends of the ready count and claim latency over the last minutes, one sample per refresh.

Textual's Sparkline scales between the data's own min and max, so a steady pool of 3 draws as a full bar and
a dip from 3 to 2 as a cliff. These bars are scaled from zero (ready: up to the target or the peak), so the
height means something at a glance, and ready samples under the target are coloured.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Static

from ...core.model import PoolSnapshot
from .. import view

SAMPLES = 300  # five minutes at the default one-second refresh
BLOCKS = " ▁▂▃▄▅▆▇█"


@dataclass
class History:
    ready: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    latency: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))  # p99 of the recent window, s
    taken_at: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    target: int = 0
    min_ready: int = 0

    def add(self, snap: PoolSnapshot) -> None:
        self.taken_at.append(snap.taken_at)
        self.ready.append(float(snap.ready))
        p99 = (snap.metrics.get("claim_latency") or {}).get("p99")
        self.latency.append(0.0 if p99 is None else float(p99))
        self.target = snap.target_ready
        self.min_ready = snap.min_ready


def bars(values: Sequence[float], width: int, top: float, rows: int = 2,
         styles: Sequence[str] | None = None) -> Text:
    """The last `width` values as vertical bars `rows` lines high, 0 at the bottom and `top` at the top."""
    values = list(values)[-width:] if width > 0 else []
    if styles is not None:
        styles = list(styles)[-width:]
    pad = width - len(values)
    steps = rows * 8
    levels = [0 if top <= 0 else max(0, min(steps, round(v / top * steps))) for v in values]
    if values:
        levels = [max(lv, 1) if v > 0 else lv for lv, v in zip(levels, values, strict=True)]
    out = Text(no_wrap=True)
    for r in range(rows - 1, -1, -1):
        out.append(" " * pad)
        for i, lv in enumerate(levels):
            part = max(0, min(8, lv - r * 8))
            out.append(BLOCKS[part], style=styles[i] if styles else "")
        if r:
            out.append("\n")
    return out


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
    """

    def compose(self) -> ComposeResult:
        self.border_title = "trends"
        yield Label("ready", id="ready-label")
        yield Trend(id="ready-trend")
        yield Label("claim p99", id="latency-label")
        yield Trend(id="latency-trend")

    def show(self, history: History, window: str = "5m") -> None:
        ready, latency = list(history.ready), list(history.latency)
        width = max(1, self.content_region.width or 40)
        shown = ready[-width:]
        span = view.duration(history.taken_at[-1] - history.taken_at[-len(shown)]) if shown else "-"
        low = f"{min(shown):.0f}" if shown else "-"
        now_ready = f"{ready[-1]:.0f}" if ready else "-"
        self.query_one("#ready-label", Label).update(
            f"ready [b]{now_ready}[/]/{history.target}  [dim]min {low} in the last {span}[/]")
        colours = ["green" if v >= history.target else "yellow" if v >= history.min_ready else "red"
                   for v in ready]
        top = max([float(history.target), *shown]) if shown else 1.0
        self.query_one("#ready-trend", Trend).update(bars(ready, width, top, styles=colours))
        lat_shown = latency[-width:]
        high = max(lat_shown) if lat_shown else 0.0
        self.query_one("#latency-label", Label).update(
            f"claim p99 [b]{view.millis(latency[-1]) if latency else '-'}[/]  "
            f"[dim]max {view.millis(high) if lat_shown else '-'}[/]")
        self.query_one("#latency-trend", Trend).update(
            bars(latency, width, high or 1.0, styles=["cyan"] * len(latency)))
