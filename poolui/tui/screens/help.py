"""`?`: every key of the screen behind it, built from the bindings themselves (so it cannot drift),
with the ones that are disabled right now (read-only, disconnected) shown as such."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


@dataclass(frozen=True)
class KeyHelp:
    key: str
    description: str
    help: str
    enabled: bool
    why_disabled: str = ""


def help_table(keys: list[KeyHelp]) -> Table:
    table = Table(box=None, expand=True, padding=(0, 1), show_header=True, header_style="bold")
    table.add_column("key", no_wrap=True, style="bold")
    table.add_column("action", no_wrap=True)
    table.add_column("what it does", ratio=1)
    for k in keys:
        if k.enabled:
            table.add_row(k.key, k.description, k.help)
        else:
            note = f"{k.help} [disabled: {k.why_disabled}]" if k.why_disabled else f"{k.help} [disabled]"
            table.add_row(Text(k.key, style="dim strike"), Text(k.description, style="dim"), Text(note, style="dim"))
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help.close")]

    def __init__(self, keys: list[KeyHelp], intro: str) -> None:
        super().__init__(classes="dialog")
        self.keys = keys
        self.intro = intro

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="wide") as box:
            box.border_title = "keys"
            box.border_subtitle = "esc to close"
            yield Static(self.intro, id="help-intro")
            # Scrolls: on a small terminal the list would otherwise be cut off (dolphie #1).
            with VerticalScroll(id="help-keys"):
                yield Static(help_table(self.keys))

    def action_close(self) -> None:
        self.dismiss(None)
