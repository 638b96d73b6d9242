"""The pool switcher: one line per pool of the file with its state and ready count."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ...core.model import PoolSnapshot
from .. import view


class PoolList(OptionList):
    DEFAULT_CSS = """
    PoolList {
        width: 26;
        height: 1fr;
        border: round $panel-lighten-2;
        border-title-color: $foreground-muted;
    }
    """

    def __init__(self, names: list[str], *, id: str | None = None) -> None:
        super().__init__(*(Option(n, id=n) for n in names), id=id)
        self.border_title = "pools"
        self.border_subtitle = "o: overview"  # one key away
        self.names = list(names)

    def show(self, pools: list[PoolSnapshot], current: str) -> None:
        by_name = {p.name: p for p in pools}
        names = self.names + [n for n in by_name if n not in self.names]  # the file's order
        highlighted = current
        options = []
        for n in names:
            p = by_name.get(n)
            if p is None:
                options.append(Option(Content.from_markup("[dim]○[/] $n", n=n), id=n))
                continue
            dot = view.POOL_STATE_COLOURS.get(p.state, "$primary")
            options.append(Option(Content.from_markup(
                f"[{dot}]●[/] [b]$n[/] [dim]{p.ready}/{p.target_ready} {p.state}[/]", n=n), id=n))
        self.names = names
        self.set_options(options)
        if highlighted in names:
            self.highlighted = names.index(highlighted)
