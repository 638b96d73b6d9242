"""The event log pane: the pool's state changes as they happen, newest at the bottom."""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.text import Text
from textual.widgets import RichLog

from ...core.model import Event

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


class EventLog(RichLog):
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
        super().__init__(max_lines=1000, wrap=False, markup=False, auto_scroll=True, id=id)
        self.border_title = "events"
        self.can_focus = False

    def add(self, events: Iterable[Event]) -> None:
        for e in events:
            self.write(event_line(e), scroll_end=True)

    def replace(self, events: Iterable[Event]) -> None:
        self.clear()
        self.add(events)
