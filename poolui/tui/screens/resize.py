"""Resize: target / min / max, checked as the engine checks them, optionally saved to the pool file."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label

from ...core.model import PoolSnapshot


@dataclass(frozen=True)
class ResizeRequest:
    target: int
    min_ready: int
    max_ready: int
    persist: bool


def check(target: str, min_ready: str, max_ready: str, max_total: int) -> tuple[int, int, int] | str:
    """The three sizes, or a message that says which value is wrong and what is allowed."""
    values = []
    for name, text in (("target", target), ("min", min_ready), ("max", max_ready)):
        try:
            v = int(text.strip())
        except ValueError:
            return f"{name} = {text!r} is not allowed: expected a whole number >= 0"
        if v < 0:
            return f"{name} = {v} is not allowed: expected a whole number >= 0"
        values.append(v)
    t, lo, hi = values
    if not lo <= t <= hi:
        return f"min {lo} <= target {t} <= max {hi} does not hold"
    if hi > max_total:
        return f"max {hi} is not allowed: at most max_total = {max_total}"
    return t, lo, hi


class ResizeScreen(ModalScreen[ResizeRequest | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="resize.cancel"),
        Binding("ctrl+s", "submit", "Apply", id="resize.apply"),
    ]

    def __init__(self, snap: PoolSnapshot, config_path: str | None) -> None:
        super().__init__(classes="dialog")
        self.snap = snap
        self.config_path = config_path

    def compose(self) -> ComposeResult:
        s = self.snap
        with Vertical(id="dialog") as box:
            box.border_title = f"resize pool {s.name}"
            yield Label(f"now: target {s.target_ready}, min {s.min_ready}, max {s.max_ready}; "
                        f"max_total {s.max_total}; ready {s.ready}")
            with Horizontal(classes="fields"):
                with Vertical():
                    yield Label("target ready")
                    yield Input(str(s.target_ready), id="target", type="integer")
                with Vertical():
                    yield Label("min ready")
                    yield Input(str(s.min_ready), id="min", type="integer")
                with Vertical():
                    yield Label("max ready")
                    yield Input(str(s.max_ready), id="max", type="integer")
            where = escape(self.config_path) if self.config_path else "the server's pool file"
            yield Checkbox(f"save to {where}", id="persist")
            yield Label("", id="error")
            with Horizontal(classes="buttons"):
                yield Button("Apply (enter)", id="apply", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        target = self.query_one("#target", Input)
        target.focus()
        target.select_all()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        got = check(self.query_one("#target", Input).value, self.query_one("#min", Input).value,
                    self.query_one("#max", Input).value, self.snap.max_total)
        if isinstance(got, str):
            self.query_one("#error", Label).update(f"[$error]{escape(got)}[/]")
            return
        t, lo, hi = got
        self.dismiss(ResizeRequest(t, lo, hi, self.query_one("#persist", Checkbox).value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "apply":
            self.action_submit()
        else:
            self.action_cancel()
