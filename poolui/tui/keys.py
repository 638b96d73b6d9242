"""Key bindings declared on the action they run, so a new console key is one decorated method.

    KEYS = Keys()

    @KEYS.bind("c", "Claim", id="claim", mutating=True, tooltip="...")
    async def action_claim(self) -> None: ...

The dashboard screen collects every module's bindings (poolui/tui/app.py); help, the command palette and
the user keymap (poolui/tui/keymap.py) all go by the binding ids. `mutating` keys are dimmed in read-only
mode and while disconnected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from textual.binding import Binding

F = TypeVar("F", bound=Callable[..., object])


class Keys:
    """The bindings of one group of actions, in the order they were declared."""

    def __init__(self) -> None:
        self.bindings: list[Binding] = []
        self.mutating: set[str] = set()

    def add(self, key: str, action: str, description: str, *, id: str, tooltip: str, show: bool = True,
            key_display: str | None = None, mutating: bool = False) -> None:
        """Bind `key` to an action expression such as "cycle_pool(1)" (the decorator's long form)."""
        # Declared beside App methods, run from the dashboard screen: hence the app. prefix.
        self.bindings.append(Binding(key, f"app.{action}", description, id=id, tooltip=tooltip, show=show,
                                     key_display=key_display))
        if mutating:
            self.mutating.add(action.split("(")[0])

    def bind(self, key: str, description: str, *, id: str, tooltip: str, show: bool = True,
             key_display: str | None = None, mutating: bool = False) -> Callable[[F], F]:
        """Bind `key` to the decorated `action_<name>` method."""

        def decorate(fn: F) -> F:
            action = getattr(fn, "__name__", "").removeprefix("action_")
            self.add(key, action, description, id=id, tooltip=tooltip, show=show, key_display=key_display,
                     mutating=mutating)
            return fn

        return decorate
