"""ctrl+p: every dashboard action by name (only those allowed now), pool switching, sorting, tabs."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from . import view

if TYPE_CHECKING:
    from .app import PoolApp


class PoolCommands(Provider):
    """The palette's entries, made from the dashboard's live bindings."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        from .screens.dashboard import DashboardScreen

        app = cast("PoolApp", self.app)
        if not isinstance(self.screen, DashboardScreen):
            return []
        out: list[tuple[str, str, Callable[[], object]]] = []
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            b = active.binding
            if not active.enabled or b.action in seen or b.action == "app.quit":
                continue
            seen.add(b.action)
            key = app.get_key_display(b)
            out.append((f"{b.description} ({key})", b.tooltip or "", partial(app.run_action, b.action)))
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
