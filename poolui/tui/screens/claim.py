"""What a claim gave: the URL (copied when the terminal allows), how fast, and a way to give it back."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from ...core.model import Claim
from .. import view


class ClaimScreen(ModalScreen[str | None]):
    """Dismisses with "release" when the operator hands the sandbox back, else None (keep it)."""

    BINDINGS = [
        Binding("escape,enter", "keep", "Keep it", id="claim.keep"),
        Binding("y", "copy", "Copy URL", id="claim.copy"),
        Binding("r", "release", "Release", id="claim.release"),
    ]

    def __init__(self, claim: Claim, ttl_left: float, copied: bool) -> None:
        super().__init__(classes="dialog")
        self.claim = claim
        self.ttl_left = ttl_left
        self.copied = copied

    def compose(self) -> ComposeResult:
        c = self.claim
        how = "warm" if c.warm else f"cold ({c.reason})" if c.reason else "cold"
        with Vertical(id="dialog") as box:
            box.border_title = f"claimed {c.id}"
            yield Label(f"[b]{escape(c.id)}[/] from pool [b]{escape(c.pool)}[/]: {how}, "
                        f"in {view.millis(c.latency)}; TTL left {view.countdown(self.ttl_left)}")
            # An Input so the URL can be selected and copied by hand where OSC 52 is not supported.
            yield Input(c.url, id="url")
            yield Label("[dim]copied to the clipboard[/]" if self.copied else
                        "[dim]select the URL to copy it; y copies it (if the terminal allows)[/]", id="copied")
            if c.claim_key:
                yield Label(f"claim key: {escape(c.claim_key)}")
            yield Label("[dim]The sandbox stays claimed until you release it or its TTL ends.[/]")
            with Horizontal(classes="buttons"):
                yield Button("Keep (esc)", id="keep", variant="primary")
                yield Button("Copy URL (y)", id="copy")
                yield Button("Release (r)", id="release", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()

    def action_keep(self) -> None:
        self.dismiss(None)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.claim.url)
        self.query_one("#copied", Label).update("[dim]copied to the clipboard (if the terminal allows)[/]")

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
