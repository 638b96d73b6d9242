"""One sandbox in full: every timestamp, its probes, and its events; live while it is open."""

from __future__ import annotations

import shlex
import time
from collections.abc import AsyncIterator, Callable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Log, Static

from ...core.model import Event, MemberView
from ...errors import PoolError
from ...sandbox_io import ExecChunk, ExecResult
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


Runner = Callable[[str, list[str]], AsyncIterator[ExecChunk | ExecResult]]  # (member id, argv) -> exec stream


class DetailScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,enter", "close", "Close", id="detail.close"),
                Binding("x", "exec", "Run a command", id="detail.exec")]

    def __init__(self, member: MemberView, lookup: Callable[[str], MemberView | None],
                 events: Callable[[str], list[Event]], now: Callable[[], float], min_remaining_ttl: float,
                 run: Runner | None = None, why_not: str = "") -> None:
        """run: how to exec in this sandbox (None when the console may not: why_not says why)."""
        super().__init__(classes="dialog")
        self.run = run
        self.why_not = why_not
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
            yield Input(placeholder="a command to run in this sandbox, e.g. ls -la (enter runs it, escape closes)",
                        id="exec-input", classes="hidden")
            yield Log(id="exec-out", classes="hidden", max_lines=2000)

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

    def action_exec(self) -> None:
        """x: open the command line (a claimed sandbox only; never in read-only mode)."""
        if self.run is None:
            self.notify(self.why_not or "commands cannot be run from here", severity="warning")
        elif self.member.state != "claimed" or self.gone:
            self.notify(f"{self.member.id} is {'gone' if self.gone else self.member.state}: only a claimed sandbox "
                        "runs commands (claim one with c)", severity="warning")
        else:
            for widget in ("#exec-input", "#exec-out"):
                self.query_one(widget).remove_class("hidden")
            self.query_one("#exec-input", Input).focus()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            argv = shlex.split(event.value)
        except ValueError as e:
            self.notify(f"cannot read that command: {e}", severity="error")
            return
        if argv and self.run is not None:
            event.input.value = ""
            self.run_worker(self._exec(self.run, argv), group="exec")

    async def _exec(self, run: Runner, argv: list[str]) -> None:
        out = self.query_one("#exec-out", Log)
        out.write_line(f"$ {shlex.join(argv)}")
        try:
            async for item in run(self.member.id, argv):
                if isinstance(item, ExecChunk):
                    out.write(item.data.decode(errors="replace"))
                else:
                    out.write_line(f"[{item.describe()} after {item.duration * 1000:.0f} ms]")
        except PoolError as e:
            out.write_line(f"[refused: {e}]")
