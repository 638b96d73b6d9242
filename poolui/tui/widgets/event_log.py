"""The event log pane: the pool's state changes as they happen, newest at the bottom.

RichLog renders every line when it is written (about 0.3 ms each), so a burst of a few hundred events (a
resize, a churning pool of thousands) held the main thread for tens of milliseconds. This pane keeps the
lines as data and renders only the ones in view, like the member table.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable

from rich.segment import Segment
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...core.model import Event

KEPT = 1000

KIND_STYLES = {
    "created": "dim",
    "starting": "dim",
    "ready": "green",
    "claimed": "bold cyan",
    "released": "cyan",
    "returned": "cyan",
    "terminating": "yellow",
    "terminated": "dim yellow",
    "failed": "bold red",
    "probe_failed": "red",
    "probe_ok": "green",
    "degraded": "bold red",
    "recovered": "bold green",
    "resized": "magenta",
    "maintenance": "magenta",
    "paused": "bold magenta",
    "resumed": "bold magenta",
    "draining": "bold yellow",
    "drained": "bold yellow",
    "adopted": "blue",
    "lost": "red",
    "terminate_failed": "bold red",
}


def event_line(e: Event) -> Text:
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(time.strftime("%H:%M:%S", time.localtime(e.ts)), style="dim")
    line.append(" ")
    line.append(f"{e.kind:<12}", style=KIND_STYLES.get(e.kind, ""))
    if e.member_id:
        line.append(f" {e.member_id}")
    if e.detail:
        line.append(f"  {e.detail}", style="dim")
    return line


def action_line(ts: float, text: str, error: bool) -> Text:
    line = Text(time.strftime("%H:%M:%S", time.localtime(ts)), style="dim", no_wrap=True, overflow="ellipsis")
    line.append(" » ", style="bold")
    line.append(text, style="bold red" if error else "bold")
    return line


class EventLog(ScrollView):
    DEFAULT_CSS = """
    EventLog {
        height: 1fr;
        border: round $panel-lighten-2;
        border-title-color: $foreground-muted;
        background: $surface;
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "events"
        self.items: deque[Event | Text] = deque(maxlen=KEPT)
        self._strips: dict[int, tuple[Event | Text, Strip]] = {}  # id(item) -> (item, its line), lines on screen

    def texts(self) -> list[str]:
        return [self._text(item).plain for item in self.items]

    @staticmethod
    def _text(item: Event | Text) -> Text:
        return item if isinstance(item, Text) else event_line(item)

    def add(self, items: Iterable[Event | Text]) -> None:
        follow = self.scroll_y >= self.max_scroll_y  # at the bottom: keep following; scrolled up: stay put
        self.items.extend(items)
        self.virtual_size = Size(0, len(self.items))
        if follow:
            # After the layout has taken the new height in; before it, the end is the old end.
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True)
        self.refresh()

    def replace(self, items: Iterable[Event | Text]) -> None:
        self.items.clear()
        self._strips.clear()
        self.add(items)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = int(self.scroll_y) + y
        if index >= len(self.items):
            return Strip.blank(width, self.rich_style)
        item = self.items[index]
        key = id(item)
        cached = self._strips.get(key)
        strip = cached[1] if cached is not None and cached[0] is item else None
        if strip is None or strip.cell_length != width:
            text = self._text(item)
            text.truncate(width, overflow="ellipsis", pad=True)
            segments = [Segment(s.text, self.rich_style + s.style if s.style else self.rich_style)
                        for s in text.render(self.app.console) if s.text != "\n"]
            strip = Strip(segments).adjust_cell_length(width, self.rich_style)
            if len(self._strips) > 4 * max(1, self.size.height):
                self._strips.clear()
            self._strips[key] = (item, strip)
        return strip
