"""One sandbox in full: every timestamp, its probes, and its events; live while it is open."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ...core.model import Event, MemberView
from .. import view
from ..widgets.event_log import event_line


def stamp(ts: float | None, now: float) -> str:
    if ts is None:
        return "-"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(ts))}  ({view.duration(abs(now - ts))} " + (
        "ago)" if ts <= now else "from now)")


def detail_table(m: MemberView, now: float, min_remaining_ttl: float) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    left = m.expires_at - now
    level = view.ttl_level(left, min_remaining_ttl)
    ttl_style = {"critical": "bold red", "low": "yellow"}.get(level, "")
    health_style = {"ok": "green", "failing": "bold red"}.get(m.health, "dim")
    rows: list[tuple[str, str | Text]] = [
        ("id", m.id),
        ("state", m.state + (" (adopted after a restart)" if m.adopted else "")),
        ("url", m.url or "-"),
        ("created", stamp(m.created_at, now)),
        ("ready", stamp(m.ready_at, now)),
        ("claimed", stamp(m.claimed_at, now)),
        ("expires", stamp(m.expires_at, now)),
        ("TTL left", Text(view.countdown(left) + (
            f"  (under min_remaining_ttl {view.duration(min_remaining_ttl)}: no longer handed out)"
            if level else ""), style=ttl_style)),
        ("health", Text(m.health + (f": {m.health_detail}" if m.health_detail else ""), style=health_style)),
        ("last probe", stamp(m.last_probe_at, now)),
        ("claim key", m.claim_key or "-"),
        ("reason", m.reason or "-"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    return table


class DetailScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,enter", "close", "Close", id="detail.close")]

    def __init__(self, member: MemberView, lookup: Callable[[str], MemberView | None],
                 events: Callable[[str], list[Event]], now: Callable[[], float], min_remaining_ttl: float) -> None:
        super().__init__(classes="dialog")
        self.member = member
        self.lookup = lookup
        self.events = events
        self.now = now
        self.min_remaining_ttl = min_remaining_ttl
        self.gone = False

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="wide") as box:
            box.border_title = f"sandbox {self.member.id}"
            yield Static(id="fields")
            yield Static("[b]events[/]", id="events-title")
            with VerticalScroll(id="member-events"):
                yield Static(id="events")

    def on_mount(self) -> None:
        self.show()
        self.set_interval(1.0, self.show)

    def show(self) -> None:
        latest = self.lookup(self.member.id)
        if latest is None:
            self.gone = True
        else:
            self.member = latest
        fields = detail_table(self.member, self.now(), self.min_remaining_ttl)
        if self.gone:
            self.query_one("#fields", Static).update(
                Text.assemble(Text("gone: no longer in the pool (showing its last known state)\n", style="bold"),
                              "\n"))
            self.query_one("#fields", Static).update(fields)
            self.query_one("#dialog").border_subtitle = "gone from the pool"
        else:
            self.query_one("#fields", Static).update(fields)
        lines = [event_line(e) for e in self.events(self.member.id)]
        self.query_one("#events", Static).update(Text("\n").join(lines) if lines else Text("none seen", "dim"))

    def action_close(self) -> None:
        self.dismiss(None)
