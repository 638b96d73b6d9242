"""The footer: the keys that fit, never half a key.

Textual's footer lays every shown key out in a row and lets the row run off the edge, under the palette key:
at 80 columns `? Help` and `q Quit` were gone and a cut key left a stray letter (`^p paletteo`). This one
measures first: help and quit always stay, the other keys follow by how much an operator needs them, and
those that do not fit are left out whole (the help screen and the palette still list them).
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import Resize
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

PINNED = ("help", "quit")  # always shown: what to press when lost, and the way out
# The rest, most needed first; a key not named here comes after these.
NEEDED = ("claim", "terminate", "filter", "overview", "resize", "drain", "pause", "resume", "mark", "sort", "maintain",
          "faster")


class KeyFooter(Footer):
    """A compact footer that shows as many whole keys as the width allows, help and quit always."""

    def __init__(self) -> None:
        super().__init__(compact=True)
        self._width = 0

    def compose(self) -> ComposeResult:
        """Textual's footer keys, only those that fit, in their declared order."""
        if not self._bindings_ready:
            return
        active = self.screen.active_bindings
        shown: dict[str, tuple[Binding, bool, str]] = {}
        for _, binding, enabled, tooltip in active.values():
            if binding.show and binding.action not in shown:
                shown[binding.action] = (binding, enabled, tooltip)
        palette = active.get(self.app.COMMAND_PALETTE_BINDING) if self.app.ENABLE_COMMAND_PALETTE else None
        room = self.size.width or 10_000
        if palette is not None:
            room -= self._cells(palette.binding) + 1  # its left border
        keep = fitting(list(shown.values()), room, self._cells)
        for binding, enabled, tooltip in keep:
            yield FooterKey(binding.key, self.app.get_key_display(binding), binding.description, binding.action,
                            disabled=not enabled, tooltip=tooltip).data_bind(compact=Footer.compact)
        if palette is not None:
            yield FooterKey(palette.binding.key, self.app.get_key_display(palette.binding),
                            palette.binding.description, palette.binding.action, classes="-command-palette",
                            disabled=not palette.enabled, tooltip=palette.binding.tooltip)

    def _cells(self, binding: Binding) -> int:
        """Columns a compact key takes: `c Claim` and the space after it."""
        return len(self.app.get_key_display(binding)) + 1 + len(binding.description) + 1

    def on_resize(self, event: Resize) -> None:
        """Another width fits other keys."""
        if self._bindings_ready and event.size.width != self._width:
            self._width = event.size.width
            self.call_after_refresh(self.recompose)


def fitting(keys: list[tuple[Binding, bool, str]], room: int,
            cells: Callable[[Binding], int]) -> list[tuple[Binding, bool, str]]:
    """The keys to show in `room` columns: the pinned ones, then the most needed that still fit."""

    def rank(item: tuple[Binding, bool, str]) -> int:
        bid = item[0].id or ""
        if bid in PINNED:
            return -1
        return NEEDED.index(bid) if bid in NEEDED else len(NEEDED)

    chosen: set[int] = set()
    used = 0
    for i in sorted(range(len(keys)), key=lambda i: (rank(keys[i]), i)):
        size = cells(keys[i][0])
        if used + size <= room or rank(keys[i]) < 0:
            chosen.add(i)
            used += size
    # Declared order, help and quit at the end, next to the palette: always in the same place.
    return sorted((k for i, k in enumerate(keys) if i in chosen), key=lambda k: rank(k) < 0)
