"""The event log pane: the pool's state changes as they happen, newest at the bottom.

RichLog renders every line when it is written (about 0.3 ms each), so a burst of a few hundred events (a
resize, a churning pool of thousands) held the main thread for tens of milliseconds. This pane keeps the
lines as data and renders only the ones in view, like the member table.

`e` on the dashboard steps the pane's level: every event, warnings and errors, errors only. On call, the
failed probe among hundreds of created/ready/claimed lines is the one to find.
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


# Severity of an event by its kind; anything not named is "info". Errors: something broke. Warnings: the pool
# stopped doing its usual work, or came back to it.
ERROR_KINDS = frozenset({"failed", "probe_failed", "degraded", "lost", "terminate_failed"})
WARNING_KINDS = frozenset({"lease_expired", "draining", "drained", "paused", "resumed", "recovered", "restarted"})
LEVELS = ("info", "warning", "error")  # what `e` steps through, as the lowest severity shown
LEVEL_TITLES = {"info": "events", "warning": "events: warnings and errors", "error": "events: errors only"}


class ActionText(Text):
    """An operator's own action in the pane (`» ...`); `error` when it failed."""

    error = False


def severity(item: Event | Text) -> str:
    """"error", "warning" or "info": an event by its kind, an action line by whether it failed."""
    if isinstance(item, Event):
        return "error" if item.kind in ERROR_KINDS else "warning" if item.kind in WARNING_KINDS else "info"
    return "error" if isinstance(item, ActionText) and item.error else "info"


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
    line = ActionText(time.strftime("%H:%M:%S", time.localtime(ts)), style="dim", no_wrap=True,
                      overflow="ellipsis")
    line.error = error
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
        self.items: deque[Event | Text] = deque(maxlen=KEPT)  # everything kept, whatever the level
        self.level = "info"  # the lowest severity shown
        self.shown: deque[Event | Text] = self.items  # what is on screen: `items` itself at the "info" level
        self._strips: dict[int, tuple[Event | Text, Strip]] = {}  # id(item) -> (item, its line), lines on screen
        self._say_count()

    def texts(self) -> list[str]:
        """Every line kept, whatever the level."""
        return [self._text(item).plain for item in self.items]

    def shown_texts(self) -> list[str]:
        """The lines the level lets through."""
        return [self._text(item).plain for item in self.shown]

    @staticmethod
    def _text(item: Event | Text) -> Text:
        return item if isinstance(item, Text) else event_line(item)

    def _passes(self, item: Event | Text) -> bool:
        return LEVELS.index(severity(item)) >= LEVELS.index(self.level)

    def set_level(self, level: str) -> None:
        """Show only lines of `level` and worse ("info": all); the pane follows the newest again."""
        self.level = level
        self.shown = self.items if level == "info" else deque((i for i in self.items if self._passes(i)),
                                                              maxlen=KEPT)
        self.border_title = LEVEL_TITLES[level]
        self._say_count()
        self._strips.clear()
        self.virtual_size = Size(0, len(self.shown))
        self.call_after_refresh(self.scroll_end, animate=False, immediate=True)
        self.refresh()

    def _say_count(self) -> None:
        then = {"warning": "warnings, errors", "error": "errors only", "info": "all"}[
            LEVELS[(LEVELS.index(self.level) + 1) % len(LEVELS)]]
        count = f"{len(self.shown)} of {len(self.items)} shown; " if self.shown is not self.items else ""
        self.border_subtitle = f"{count}e: {then}"

    def next_level(self) -> str:
        """Step to the next level (all, warnings and errors, errors, all again); the new level."""
        self.set_level(LEVELS[(LEVELS.index(self.level) + 1) % len(LEVELS)])
        return self.level

    def add(self, items: Iterable[Event | Text]) -> None:
        follow = self.scroll_y >= self.max_scroll_y  # at the bottom: keep following; scrolled up: stay put
        items = list(items)
        self.items.extend(items)
        if self.shown is not self.items:
            self.shown.extend(i for i in items if self._passes(i))
            self._say_count()
        self.virtual_size = Size(0, len(self.shown))
        if follow:
            # After the layout has taken the new height in; before it, the end is the old end.
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True)
        self.refresh()

    def replace(self, items: Iterable[Event | Text]) -> None:
        self.items.clear()
        if self.shown is not self.items:
            self.shown.clear()
        self._strips.clear()
        self.add(items)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = int(self.scroll_y) + y
        if index >= len(self.shown):
            if index == 0 and self.shown is not self.items:
                return self._line(Text(f"no {LEVEL_TITLES[self.level].removeprefix('events: ')} among the last "
                                       f"{len(self.items)} events", style="dim"), width)
            return Strip.blank(width, self.rich_style)
        item = self.shown[index]
        key = id(item)
        cached = self._strips.get(key)
        strip = cached[1] if cached is not None and cached[0] is item else None
        if strip is None or strip.cell_length != width:
            strip = self._line(self._text(item), width)
            if len(self._strips) > 4 * max(1, self.size.height):
                self._strips.clear()
            self._strips[key] = (item, strip)
        return strip

    def _line(self, text: Text, width: int) -> Strip:
        text = text.copy()  # truncating in place would cut an action line kept in `items`
        text.truncate(width, overflow="ellipsis", pad=True)
        segments = [Segment(s.text, self.rich_style + s.style if s.style else self.rich_style)
                    for s in text.render(self.app.console) if s.text != "\n"]
        return Strip(segments).adjust_cell_length(width, self.rich_style)
