"""One sandbox in full: every timestamp, its probes, and its events; live while it is open; and a command line
that runs commands in it (claimed ones)."""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import AsyncIterator, Callable

from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, RichLog, Static

from ...core.model import Event, MemberView
from ...errors import PoolError
from ...sandbox_io import ExecChunk, ExecResult
from .. import view
from ..widgets.event_log import event_line
from ..widgets.exec_console import KEPT_LINES, CommandLine, ExecSession, LineSplitter, session_for, styled


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


COMPACT_BELOW = 40  # terminal rows under which an open command line gets the room of the fields and events


def summary_line(m: MemberView, now: float) -> Text:
    """The fields in one line, for a short terminal with the command line open."""
    health = {"ok": "green", "failing": "bold red"}.get(m.health, "dim")
    return Text.assemble((m.id, "bold"), f"  {m.state}  {m.url or '-'}  TTL {view.countdown(m.expires_at - now)}  ",
                         (f"health {m.health}", health), f"  key {m.claim_key}" if m.claim_key else "")


Runner = Callable[[str, list[str]], AsyncIterator[ExecChunk | ExecResult]]  # (member id, argv) -> exec stream


class DetailScreen(ModalScreen[None]):
    """One sandbox, live; `x` opens a command line on a claimed one. Its footer shows its own keys, and what
    was run here stays with the sandbox (widgets/exec_console.py) when the view is closed."""

    BINDINGS = [Binding("escape", "back", "Close", id="detail.close", key_display="esc",
                        tooltip="Leave the command line (it is kept), else close this view"),
                Binding("q,enter", "close", "Close", id="detail.close_keys", show=False),
                Binding("x", "exec", "Run a command", id="detail.exec",
                        tooltip="Run a command in this sandbox (a claimed one): output streams below")]

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
        self.session: ExecSession = ExecSession()  # this sandbox's, once mounted in the app

    def compose(self) -> ComposeResult:
        self.session = session_for(self.app, self.member.id)
        used = "" if self.session.lines or self.session.history else "hidden"
        with Vertical(id="dialog", classes="wide") as box:
            box.border_title = f"sandbox {self.member.id}"
            yield Static(id="fields")
            yield Static("[b]events[/]", id="events-title")
            with VerticalScroll(id="member-events"):
                yield Static(id="events")
            yield CommandLine(self.session, id="exec-input", classes=used,
                              placeholder="a command to run in this sandbox, e.g. ls -la (enter runs it, "
                                          "up/down: earlier ones, esc leaves)")
            yield RichLog(id="exec-out", classes=used, max_lines=KEPT_LINES, wrap=True, markup=False,
                          highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        out = self.query_one("#exec-out", RichLog)
        for line in self.session.lines:
            out.write(line)
        self.show()
        self.set_interval(1.0, self.show)

    def show(self) -> None:
        latest = self.lookup(self.member.id)
        if latest is None:
            self.gone = True
        else:
            self.member = latest
        fields = self.query_one("#fields", Static)
        if self.compact():
            fields.update(summary_line(self.member, self.now()))
        else:
            fields.update(detail_table(self.member, self.now(), self.min_remaining_ttl))
        hint = "x: run a command · esc: close" if self.run is not None else "esc: close"
        self.query_one("#dialog").border_subtitle = f"gone from the pool · {hint}" if self.gone else hint
        lines = [event_line(e) for e in self.events(self.member.id)]
        self.query_one("#events", Static).update(Text("\n").join(lines) if lines else Text("none seen", "dim"))

    def compact(self) -> bool:
        """On a short terminal with the command line open, the fields shrink to one line and the events
        step aside, so the output has the room (at 24 rows it would otherwise get two lines)."""
        open_ = not self.query_one("#exec-input").has_class("hidden")
        short = open_ and self.app.size.height < COMPACT_BELOW
        for widget in ("#events-title", "#member-events"):
            self.query_one(widget).display = not short
        return short

    def on_resize(self) -> None:
        self.show()

    def output_lines(self) -> list[Text]:
        """What the command line has shown in this sandbox, oldest first (styled: stderr in red)."""
        return list(self.session.lines)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_back(self) -> None:
        """Esc: out of the command line first (its text, history and output stay), then close."""
        if isinstance(self.focused, Input):
            self.set_focus(None)
        else:
            self.dismiss(None)

    def on_key(self, event: events.Key) -> None:
        """A dashboard key pressed here does nothing: say so, rather than nothing at all."""
        if isinstance(self.focused, Input) or event.key in self.active_bindings:
            return
        stack = self.app.screen_stack
        below = stack[-2].active_bindings.get(event.key) if len(stack) > 1 and stack[-1] is self else None
        if below is not None and below.binding.id and below.binding.description:
            key = self.app.get_key_display(below.binding)
            self.notify(f"{key} ({below.binding.description}) is a key of the pool's tables: esc closes this view "
                        "first", severity="warning", timeout=3)

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
            self.show()

    def on_input_changed(self, event: Input.Changed) -> None:
        if isinstance(event.input, CommandLine) and event.input.position == len(self.session.history):
            self.session.draft = event.value  # kept for the next time the view opens

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            argv = shlex.split(event.value)
        except ValueError as e:
            self.notify(f"cannot read that command: {e}", severity="error")
            return
        if not argv or self.run is None:
            return
        if self.session.running is not None:
            self.notify(f"{self.session.running!r} is still running: its output goes on below", severity="warning")
            return
        self.session.remember(event.value.strip())
        event.input.value = ""
        if isinstance(event.input, CommandLine):
            event.input.reset_position()
        self.run_worker(self._exec(self.run, argv), group="exec")

    def _emit(self, line: Text) -> None:
        self.session.lines.append(line)
        if self.is_mounted:
            self.query_one("#exec-out", RichLog).write(line)

    async def _exec(self, run: Runner, argv: list[str]) -> None:
        """Run one command: its echo on a line of its own, then its output a line at a time, then how it ended."""
        command = shlex.join(argv)
        self.session.running = command
        self._emit(styled(f"$ {command}", "echo"))
        lines = LineSplitter()
        try:
            async for item in run(self.member.id, argv):
                if isinstance(item, ExecChunk):
                    for line in lines.feed(item.stream, item.data):
                        self._emit(line)
                    continue
                for line in lines.flush():
                    self._emit(line)
                self._emit(styled(f"[{item.describe()} after {item.duration * 1000:.0f} ms]",
                                  "ok" if item.ok else "failed"))
        except PoolError as e:
            for line in [*lines.flush(), styled(f"[refused: {e}]", "failed")]:
                self._emit(line)
        except asyncio.CancelledError:
            # The view closed under it: what came is kept, and the rest is no longer followed.
            self.session.lines.extend([*lines.flush(), styled("[view closed: no longer followed]", "failed")])
            raise
        finally:
            self.session.running = None
