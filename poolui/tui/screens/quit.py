"""Quitting an embedded console while sandboxes are claimed: keep them running, terminate them, or stay.

The embedded pools live in the console's process, so quitting stops them. A claimed sandbox is someone's
work in progress, so the console asks first and starts on Stay (Enter pressed out of habit quits nothing).
"""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from ..view import names

QuitAnswer = Literal["keep", "terminate", "stay"]


def sandboxes(n: int, kind: str = "") -> str:
    """`1 sandbox`, `3 claimed sandboxes`."""
    return f"{n} {kind + ' ' if kind else ''}sandbox{'es' if n != 1 else ''}"


def quit_question(claimed: dict[str, list[str]], others: int, state_dir: str | None) -> str:
    """What the quit dialog says: how many are claimed and where, and what each answer does to them and to
    the `others` (ready, starting and creating) sandboxes."""
    n = sum(len(ids) for ids in claimed.values())
    where = "; ".join(f"pool {pool}: {names(ids, 4)}" for pool, ids in claimed.items())
    them = "it" if n == 1 else "them"
    on = f" ({state_dir})" if state_dir else ""
    text = (f"{sandboxes(n)} {'is' if n == 1 else 'are'} claimed (in use), in {where}.\n\n"
            f"Keep claimed (k): quit, and leave {them} running ({'its' if n == 1 else 'their'} TTL still ends "
            f"{them}); the next poolui started on the same state directory{on} adopts {them}.")
    if others:
        text += (f" The {sandboxes(others)} not claimed {'is' if others == 1 else 'are'} terminated: nobody "
                 f"holds {'it' if others == 1 else 'them'}, and the next start warms new ones.")
    total = n + others
    every = "both sandboxes" if total == 2 else "the sandbox" if total == 1 else f"all {sandboxes(total)}"
    text += (f"\n\nTerminate all (t): quit, and terminate {every}"
             + (f", the claimed {'one' if n == 1 else 'ones'} too" if others else "")
             + ".\n\nStay (esc): back to the console.")
    return text


class QuitScreen(ModalScreen[QuitAnswer]):
    """Keep claimed / Terminate all / Stay, focused on Stay."""

    BINDINGS = [
        Binding("k", "answer('keep')", "Keep claimed", id="quit.keep"),
        Binding("t", "answer('terminate')", "Terminate all", id="quit.terminate"),
        Binding("escape,n,s", "answer('stay')", "Stay", id="quit.stay"),
        Binding("left,h", "app.focus_previous", "Previous", show=False),
        Binding("right,l", "app.focus_next", "Next", show=False),
    ]

    def __init__(self, claimed: dict[str, list[str]], others: int, state_dir: str | None = None) -> None:
        super().__init__(classes="dialog")
        self.claimed = claimed
        self.body = quit_question(claimed, others, state_dir)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as box:
            box.border_title = "quit"
            yield Static(self.body, id="question", markup=False)
            yield Label("[dim]k keeps the claimed, t terminates all; enter or esc stays[/]", id="how")
            with Horizontal(classes="buttons"):
                yield Button("Keep claimed (k)", id="keep", variant="primary")
                yield Button("Terminate all (t)", id="terminate", variant="error")
                yield Button("Stay (esc)", id="stay")

    def on_mount(self) -> None:
        # Terminating is the one answer that cannot be undone: the dialog starts on Stay, as every
        # destructive question in this console starts on Cancel.
        self.query_one("#stay", Button).focus()

    def action_answer(self, answer: QuitAnswer) -> None:
        """Close the dialog with the answer."""
        self.dismiss(answer)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """A button pressed (enter on the focused one, or a click)."""
        event.stop()
        answer: QuitAnswer = "keep" if event.button.id == "keep" else (
            "terminate" if event.button.id == "terminate" else "stay")
        self.dismiss(answer)
