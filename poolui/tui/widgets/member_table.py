"""A virtual, keyed table of sandboxes.

Textual's DataTable keeps every row as widget state: `remove_row` is O(N) per call and re-measuring cells is
O(N) per column (research/tui.md §3.2), so a tick with churn over 10,000 members costs most of a second.
Here the rows are plain data owned by the App; the table keeps only the ordered list and a key -> index map,
and paints the rows in the viewport (Line API). A tick is O(N) dictionary work plus O(viewport) painting,
the cursor is held by sandbox id across updates, and TTL cells are computed at paint time from the clock,
so a once-a-second repaint makes every visible countdown tick without touching the data.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.cells import set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...core.model import MemberView
from .columns import COLUMNS, FROZEN, Column, cell, fit, title, widths

__all__ = ["MemberTable", "cell"]


CELL_CLASSES = ("ok", "failing", "unknown", "ttl-low", "ttl-critical", "dim", "mark")


class MemberTable(ScrollView, can_focus=True):
    """Rows of MemberView keyed by id; the App calls `show()` with each new arrangement."""

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("enter", "select", "Details", id="details", show=False,
                tooltip="Show everything about this sandbox: timestamps, probes, events"),
        Binding("left,h", "scroll_columns(-1)", "Columns left", id="columns_left", show=False,
                tooltip="Show the columns to the left, when the table is too narrow for all of them"),
        Binding("right,l", "scroll_columns(1)", "Columns right", id="columns_right", show=False,
                tooltip="Show the columns to the right (› in the titles says there are more)"),
    ]

    COMPONENT_CLASSES = {
        "member-table--header",
        "member-table--cursor",
        "member-table--marked",
        *(f"member-table--{c}" for c in CELL_CLASSES),
    }

    DEFAULT_CSS = """
    MemberTable {
        height: 1fr;
        background: $surface;
        color: $foreground;
        scrollbar-gutter: stable;
        & > .member-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .member-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .member-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .member-table--marked { background: $accent 25%; }
        & > .member-table--ok { color: $success; }
        & > .member-table--failing { color: $error; text-style: bold; }
        & > .member-table--unknown { color: $foreground-muted; }
        & > .member-table--ttl-low { color: $warning; }
        & > .member-table--ttl-critical { color: $error; text-style: bold; }
        & > .member-table--dim { color: $foreground-muted; }
        & > .member-table--mark { color: $accent; text-style: bold; }
    }
    """

    class Selected(Message):
        """Enter (or a click on the cursor row): open the detail view of this sandbox."""

        def __init__(self, table: MemberTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

    def __init__(self, tab: str, now: Callable[[], float], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tab = tab
        self.columns = COLUMNS[tab]
        self._now = now
        self.rows: list[MemberView] = []
        self.index: dict[str, int] = {}
        self.cursor = 0
        self.marks: frozenset[str] = frozenset()
        self.min_remaining_ttl = 0.0
        self.sort = "age"
        self.reverse = False
        self.empty_text = "no sandboxes"
        self._styles: dict[str, Style] = {}
        self._paint_now = 0.0
        self.first_column = 0  # sideways scroll: the first column shown after the mark and the ID
        self._layout: tuple[list[tuple[Column, int]], bool, bool] = ([], False, False)

    # ------------------------------------------------------------------ data

    @property
    def cursor_key(self) -> str | None:
        if 0 <= self.cursor < len(self.rows):
            return self.rows[self.cursor].id
        return None

    @property
    def cursor_member(self) -> MemberView | None:
        key = self.cursor_key
        return None if key is None else self.rows[self.cursor]

    def show(self, rows: list[MemberView], *, marks: frozenset[str] | None = None,
             min_remaining_ttl: float | None = None, sort: str | None = None, reverse: bool | None = None,
             empty_text: str | None = None) -> None:
        """Replace the arrangement; the cursor stays on the same sandbox and the viewport does not jump."""
        old_key = self.cursor_key
        old_cursor = self.cursor
        self.rows = rows
        self.index = {m.id: i for i, m in enumerate(rows)}
        if marks is not None:
            self.marks = marks
        if min_remaining_ttl is not None:
            self.min_remaining_ttl = min_remaining_ttl
        if sort is not None:
            self.sort = sort
        if reverse is not None:
            self.reverse = reverse
        if empty_text is not None:
            self.empty_text = empty_text
        new_cursor = self.index.get(old_key, old_cursor) if old_key is not None else old_cursor
        self.cursor = max(0, min(new_cursor, len(rows) - 1))
        height = len(rows) + 1
        if self.virtual_size.height != height:
            self.virtual_size = Size(0, height)  # width 0: sideways it scrolls by whole columns (layout)
        # Rows that came or went above the cursor move the viewport with it, so what is on screen holds still.
        shift = self.cursor - old_cursor
        if shift and self._cursor_visible(old_cursor):
            self.scroll_to(y=self.scroll_y + shift, animate=False, immediate=True)
        self._keep_cursor_visible()
        self.refresh()

    def move_to(self, key: str) -> bool:
        i = self.index.get(key)
        if i is None:
            return False
        self._move(i)
        return True

    # ------------------------------------------------------------------ cursor

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _cursor_visible(self, row: int) -> bool:
        top = int(self.scroll_y)
        return top <= row < top + self._page()

    def _keep_cursor_visible(self) -> None:
        top, page = int(self.scroll_y), self._page()
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + page:
            self.scroll_to(y=self.cursor - page + 1, animate=False, immediate=True)

    def _move(self, row: int) -> None:
        row = max(0, min(row, len(self.rows) - 1))
        if row != self.cursor:
            self.cursor = row
            self._keep_cursor_visible()
            self.refresh()

    def action_cursor_up(self) -> None:
        self._move(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self._move(self.cursor + 1)

    def action_page_up(self) -> None:
        self._move(self.cursor - self._page())

    def action_page_down(self) -> None:
        self._move(self.cursor + self._page())

    def action_first(self) -> None:
        self._move(0)

    def action_last(self) -> None:
        self._move(len(self.rows) - 1)

    def action_select(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.Selected(self, key))

    async def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y == 0:
            return
        row = int(self.scroll_y) + offset.y - 1
        if 0 <= row < len(self.rows):
            if row == self.cursor or event.chain > 1:
                self.cursor = row
                self.action_select()
            self._move(row)

    # ------------------------------------------------------------------ painting

    def arrange_columns(self, width: int) -> tuple[list[tuple[Column, int]], bool, bool]:
        """The columns on screen with their widths, and whether columns are hidden to the left and right.
        Narrow columns give way first (columns.py); past that, the mark and ID stay and the rest scroll."""
        ws = widths(self.columns, width)
        placed = list(zip(self.columns, ws, strict=True))
        if sum(ws) + len(ws) <= width:
            self.first_column = 0
            return placed, False, False
        frozen, rest = placed[:FROZEN], placed[FROZEN:]
        room = width - sum(w + 1 for _, w in frozen) - 1  # a column for the › that says more is right
        self.first_column = max(0, min(self.first_column, self._last_start(rest, room)))
        shown: list[tuple[Column, int]] = []
        for col, w in rest[self.first_column:]:
            if sum(x + 1 for _, x in shown) + w + 1 > room:
                break
            shown.append((col, w))
        return frozen + shown, self.first_column > 0, self.first_column + len(shown) < len(rest)

    @staticmethod
    def _last_start(rest: list[tuple[Column, int]], room: int) -> int:
        """The first column to show when scrolled all the way right: the last ones that fit."""
        used = 0
        for i in range(len(rest) - 1, -1, -1):
            used += rest[i][1] + 1
            if used > room:
                return i + 1
        return 0

    def action_scroll_columns(self, step: int) -> None:
        """Show the columns further right (1) or left (-1) when they do not all fit."""
        self.first_column = max(0, self.first_column + step)
        self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        self._paint_now = self._now()
        self._styles = {name: self.get_component_styles(f"member-table--{name}").rich_style
                        for name in ("header", "cursor", "marked", *CELL_CLASSES)}
        self._layout = self.arrange_columns(self.scrollable_content_region.width)
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            return self._header(width)
        row = int(self.scroll_y) + y - 1
        if row >= len(self.rows):
            if row == 0 and not self.rows:
                text = set_cell_size(f"  {self.empty_text}", width)
                return Strip([Segment(text, base + self._styles["dim"])], width)
            return Strip.blank(width, base)
        return self._row(self.rows[row], row, width, base)

    def _header(self, width: int) -> Strip:
        style = self._styles["header"]
        placed, left, right = self._layout
        segments = []
        for i, (col, w) in enumerate(placed):
            after = "‹" if left and i == FROZEN - 1 else " "  # columns hidden to the left
            segments.append(Segment(title(col, w, self.sort, self.reverse) + after, style))
        strip = Strip(segments).adjust_cell_length(width - 1 if right else width, style)
        return Strip([*strip, Segment("›", style)]) if right else strip

    def _row(self, m: MemberView, row: int, width: int, base: Style) -> Strip:
        marked = m.id in self.marks
        if row == self.cursor:
            line_style = base + self._styles["cursor"]
            plain = True
        else:
            line_style = base + self._styles["marked"] if marked else base
            plain = False
        segments = []
        for col, w in self._layout[0]:
            text, cls = cell(col.key, m, marked, self._paint_now, self.min_remaining_ttl)
            style = line_style if plain or not cls else line_style + self._styles[cls]
            segments.append(Segment(fit(col, text, w) + " ", style))
        return Strip(segments).adjust_cell_length(width, line_style)


