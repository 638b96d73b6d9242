"""ctrl+p: what an operator reaches for, by name: the console's own keys that are allowed now (never Textual's
scrolling, focus or copy keys, nor its theme, screenshot and maximize entries: see
Operations.get_system_commands), pool switching, sorting, clearing."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from . import view

if TYPE_CHECKING:
    from .app import PoolApp


class PoolCommands(Provider):
    """The palette's entries, made from the live bindings of the screen it was opened on."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        from .screens.dashboard import DashboardScreen

        app = cast("PoolApp", self.app)
        out: list[tuple[str, str, Callable[[], object]]] = []
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            b = active.binding
            action = b.action.removeprefix("app.")
            # Ours all have ids; one entry an action (q and ctrl+c are one Quit), and only what is allowed now.
            if not b.id or not active.enabled or action in seen:
                continue
            seen.add(action)
            name = f"Tab {b.description}" if b.id.startswith("tab_") else b.description
            out.append((f"{name} ({app.get_key_display(b)})", b.tooltip or "",
                        partial(app.run_action, b.action, active.node)))
        if not isinstance(self.screen, DashboardScreen):
            return out
        for name in app.state.pool_names:
            if name != app.state.pool:
                out.append((f"Switch to pool {name}", f"Show pool '{name}'", partial(app.switch_pool, name)))
        for s in view.SORTS:
            out.append((f"Sort by {s.title}", "Order the tables by this column",
                        partial(app.sort_by, s.key)))
        out.append(("Clear marks and filter", "Unmark every sandbox and show all rows", app.clear_all))
        return out

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
