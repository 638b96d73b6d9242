"""Resize: target / min / max, checked as the engine checks them, optionally saved to the pool file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label

from ...core.model import PoolSnapshot
from ...errors import PoolError
from ...pool_file import preview_pool_sizes


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
        # Only digits: int() would also take "+3", "1_0" and " 3 ", and an integer Input drops what it
        # does not like without a word ("abc" kept the old value, "1e3" became 13).
        if not text.isascii() or not text.isdigit() or len(text) > 7:
            return f"{name} = {text!r} is not allowed: expected a whole number from 0 to {max_total}"
        values.append(int(text))
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
        # Enter applies from anywhere (on the checkbox it used to toggle "save" instead); space toggles.
        Binding("enter", "enter", "Apply", show=False, priority=True),
    ]

    def __init__(self, snap: PoolSnapshot, config_path: str | None, target: int | None = None) -> None:
        super().__init__(classes="dialog")
        self.snap = snap
        self.config_path = config_path
        # A target proposed by the what-if (`f`): min and max make room for it; the operator still applies.
        t = snap.target_ready if target is None else target
        self.proposed = (t, min(snap.min_ready, t), max(snap.max_ready, t))

    def compose(self) -> ComposeResult:
        s = self.snap
        with Vertical(id="dialog") as box:
            box.border_title = f"resize pool {s.name}"
            yield Label(f"now: target {s.target_ready}, min {s.min_ready}, max {s.max_ready}; "
                        f"max_total {s.max_total}; ready {s.ready}")
            with Horizontal(classes="fields"):
                with Vertical():
                    yield Label("target ready")
                    yield Input(str(self.proposed[0]), id="target")
                with Vertical():
                    yield Label("min ready")
                    yield Input(str(self.proposed[1]), id="min")
                with Vertical():
                    yield Label("max ready")
                    yield Input(str(self.proposed[2]), id="max")
            where = escape(self.config_path) if self.config_path else "the server's pool file"
            yield Checkbox(f"save to {where} (space)", id="persist")
            yield Label("", id="preview")
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

    def _checked(self) -> tuple[int, int, int] | None:
        got = check(self.query_one("#target", Input).value, self.query_one("#min", Input).value,
                    self.query_one("#max", Input).value, self.snap.max_total)
        self.query_one("#error", Label).update(f"[$error]{escape(got)}[/]" if isinstance(got, str) else "")
        return None if isinstance(got, str) else got

    def action_enter(self) -> None:
        if self.focused is not None and self.focused.id == "cancel":
            self.action_cancel()
        else:
            self.action_submit()

    def action_submit(self) -> None:
        got = self._checked()
        if got is not None:
            persist = self.query_one("#persist", Checkbox).value and self._file_changes(got)
            self.dismiss(ResizeRequest(*got, persist))

    def _file_changes(self, sizes: tuple[int, int, int]) -> bool:
        """False when the pool file, on this machine, already says these sizes: then saving is not asked for
        and nothing says "saved to". True when it would change, or when only the server can tell."""
        if not self.config_path or not os.path.isfile(self.config_path):
            return True
        try:
            return bool(preview_pool_sizes(Path(self.config_path), self.snap.name, target_ready=sizes[0],
                                           min_ready=sizes[1], max_ready=sizes[2]))
        except (OSError, PoolError):
            return True  # the resize itself then says what is wrong with the file

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._show_preview()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._show_preview()

    def _show_preview(self) -> None:
        """What saving would change in the pool file, before it is saved (where the file is on this machine)."""
        label = self.query_one("#preview", Label)
        got = self._checked() if self.query_one("#persist", Checkbox).value else None
        if got is None or not self.config_path or not os.path.isfile(self.config_path):
            label.update("")
            return
        try:
            lines = preview_pool_sizes(Path(self.config_path), self.snap.name, target_ready=got[0],
                                       min_ready=got[1], max_ready=got[2])
        except (OSError, PoolError) as e:
            label.update(f"[$error]{escape(str(e))}[/]")
            return
        shown = [f"[$error]{escape(x)}[/]" if x.startswith("-") else f"[$success]{escape(x)}[/]" for x in lines]
        label.update("\n".join(shown) if shown else "[dim]the file already says so: it will not be written[/]")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "apply":
            self.action_submit()
        else:
            self.action_cancel()
