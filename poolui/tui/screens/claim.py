"""What a claim gave: the URL (copied, and said to be only when it was), how fast, and a way to give it back."""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from ...core.model import Claim
from .. import view
from ..clipboard import Copied, osc52, outcome, tool_copy


class ClaimScreen(ModalScreen[str | None]):
    """Dismisses with "release" when the operator hands the sandbox back, else None (keep it)."""

    BINDINGS = [
        Binding("escape,enter", "keep", "Keep it", id="claim.keep"),
        Binding("y", "copy", "Copy URL", id="claim.copy"),
        Binding("r", "release", "Release", id="claim.release"),
    ]

    def __init__(self, claim: Claim, ttl_left: float, copy: bool = True) -> None:
        """copy: copy the URL as the dialog opens (what `y` does again)."""
        super().__init__(classes="dialog")
        self.claim = claim
        self.ttl_left = ttl_left
        self.copy_at_open = copy
        self.copied: Copied | None = None  # the last copy's outcome, once known

    def compose(self) -> ComposeResult:
        c = self.claim
        how = "warm" if c.warm else f"cold ({c.reason})" if c.reason else "cold"
        with Vertical(id="dialog") as box:
            box.border_title = f"claimed {c.id}"
            yield Label(f"[b]{escape(c.id)}[/] from pool [b]{escape(c.pool)}[/]: {how}, "
                        f"in {view.millis(c.latency)}; TTL left {view.countdown(self.ttl_left)}")
            # An Input so the URL can be selected and copied by hand where OSC 52 is not supported.
            yield Input(c.url, id="url")
            yield Label("[dim]select the URL to copy it, or press y[/]", id="copied")
            if c.claim_key:
                yield Label(f"claim key: {escape(c.claim_key)}")
            yield Label("[dim]The sandbox stays claimed until you release it or its TTL ends.[/]")
            with Horizontal(classes="buttons"):
                yield Button("Keep (esc)", id="keep", variant="primary")
                yield Button("Copy URL (y)", id="copy")
                yield Button("Release (r)", id="release", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()
        if self.copy_at_open:
            self.action_copy()

    def action_keep(self) -> None:
        self.dismiss(None)

    @work(group="copy", exclusive=True, exit_on_error=False)
    async def action_copy(self) -> None:
        """Copy the URL; the line under it says whether a clipboard has it for certain."""
        label = self.query_one("#copied", Label)
        label.update("[dim]copying…[/]")
        terminal = osc52(self.app, self.claim.url)
        tool = await asyncio.to_thread(tool_copy, self.claim.url)  # a process: never on the UI's loop
        self.copied = outcome(tool, terminal)
        label.update(f"[dim]{escape(self.copied.text)}[/]" if self.copied.ok else
                     f"[yellow]{escape(self.copied.text)}[/]")

    def action_release(self) -> None:
        self.dismiss("release")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "copy":
            self.action_copy()
        elif event.button.id == "release":
            self.action_release()
        else:
            self.action_keep()
