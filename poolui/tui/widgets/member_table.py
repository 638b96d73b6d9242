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
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...core.model import MemberView
from .. import view


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int | None  # None: whatever is left (at least `minimum`)
    minimum: int = 12
    right: bool = False
    sort: str | None = None  # the sort key this column shows an arrow for


MARK = Column("mark", " ", 1)
ID = Column("id", "ID", 15, sort="id")
STATE = Column("state", "STATE", 11, sort="state")
URL = Column("url", "URL", None, minimum=16)
AGE = Column("age", "AGE", 7, right=True, sort="age")
TTL = Column("ttl", "TTL", 8, right=True, sort="ttl")
HEALTH = Column("health", "HEALTH", 8, sort="health")
PROBE = Column("probe", "PROBED", 10, right=True)
KEY = Column("claim_key", "CLAIM KEY", 14)
FOR = Column("claimed_for", "FOR", 7, right=True)
REASON = Column("reason", "REASON", None, minimum=12)

COLUMNS: dict[str, tuple[Column, ...]] = {
    "ready": (MARK, ID, STATE, URL, AGE, TTL, HEALTH, PROBE),
    "creating": (MARK, ID, STATE, URL, AGE, TTL, REASON),
    "in-use": (MARK, ID, URL, KEY, FOR, TTL, HEALTH, PROBE),
    "all": (MARK, ID, STATE, URL, AGE, TTL, HEALTH, PROBE, KEY, FOR),
}

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
            self.virtual_size = Size(0, height)  # width 0: columns fit the view, never scroll sideways
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

    def _widths(self, width: int) -> list[int]:
        fixed = sum((c.width or 0) + 1 for c in self.columns)
        flex = [c for c in self.columns if c.width is None]
        spare = max(0, width - fixed - len(flex))
        out = []
        for c in self.columns:
            if c.width is not None:
                out.append(c.width)
            else:
                out.append(max(c.minimum, spare // len(flex)))
        return out

    def render_lines(self, crop: Region) -> list[Strip]:
        self._paint_now = self._now()
        self._styles = {name: self.get_component_styles(f"member-table--{name}").rich_style
                        for name in ("header", "cursor", "marked", *CELL_CLASSES)}
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
        segments = []
        for col, w in zip(self.columns, self._widths(width), strict=True):
            title = col.title
            if col.sort is not None and col.sort == self.sort:
                title += " ▼" if self.reverse else " ▲"
            segments.append(Segment(_fit(title, w, col.right) + " ", style))
        return Strip(segments).adjust_cell_length(width, style)

    def _row(self, m: MemberView, row: int, width: int, base: Style) -> Strip:
        marked = m.id in self.marks
        if row == self.cursor:
            line_style = base + self._styles["cursor"]
            plain = True
        else:
            line_style = base + self._styles["marked"] if marked else base
            plain = False
        segments = []
        for col, w in zip(self.columns, self._widths(width), strict=True):
            text, cls = cell(col.key, m, marked, self._paint_now, self.min_remaining_ttl)
            style = line_style if plain or not cls else line_style + self._styles[cls]
            segments.append(Segment(_fit(text, w, col.right) + " ", style))
        return Strip(segments).adjust_cell_length(width, line_style)


def cell(key: str, m: MemberView, marked: bool, now: float, min_remaining_ttl: float) -> tuple[str, str]:
    """One cell's text and its style class ("" for none), for the column `key`, at wall time `now`."""
    if key == "mark":
        return ("●" if marked else " "), "mark"
    if key == "id":
        return m.id, ""
    if key == "state":
        return m.state + (" (adopted)" if m.adopted else ""), ""
    if key == "url":
        return m.url or "-", "" if m.url else "dim"
    if key == "age":
        return view.duration(now - m.created_at), ""
    if key == "ttl":
        left = m.expires_at - now
        level = view.ttl_level(left, min_remaining_ttl)
        return view.countdown(left), f"ttl-{level}" if level else ""
    if key == "health":
        return m.health, {"ok": "ok", "failing": "failing"}.get(m.health, "unknown")
    if key == "probe":
        return view.ago(now, m.last_probe_at), "dim"
    if key == "claim_key":
        return m.claim_key or "-", "" if m.claim_key else "dim"
    if key == "claimed_for":
        return view.duration(now - m.claimed_at) if m.claimed_at else "-", ""
    if key == "reason":
        return m.reason or "-", "dim"
    return "", ""


def _fit(text: str, width: int, right: bool) -> str:
    if cell_len(text) > width:
        return set_cell_size(text[: max(0, width - 1)], width - 1) + "…" if width > 1 else text[:width]
    return text.rjust(width) if right else set_cell_size(text, width)
