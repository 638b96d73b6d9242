"""The member tables' columns: what each holds, how wide it wants to be, and how it gives way.

Every column has a natural width and a smallest one. When the table is narrower than the natural widths,
columns give way in a fixed order (the URL first, showing `127.0.0.1:41001`, then `:41001`: its port always
stays), down to their smallest; when even that does not fit, the table scrolls sideways a column at a time
with the mark and ID columns held in place (poolui/tui/widgets/member_table.py).

Sorting: ▲ is a column's own order and ▼ its reverse (S): AGE ▲ lists the oldest first (by when each was
made), TTL ▲ the least time left first, ID ▲ A to Z. The status line says the order in words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from rich.cells import cell_len, set_cell_size

from ...core.model import MemberView
from .. import view
from ..connection import LOOPBACK


def short_url(url: str, width: int) -> str:
    """`url` in at most `width` cells, its port kept: the whole URL, then without the scheme, then (on this
    machine) `:PORT`, then the host cut in the middle."""
    if cell_len(url) <= width or "://" not in url:
        return url
    parts = urlsplit(url)
    rest = parts.netloc + (parts.path if parts.path != "/" else "")
    if cell_len(rest) <= width:
        return rest
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    tail = port + (parts.path if parts.path != "/" else "")
    if port and (host in LOOPBACK or host.startswith("127.")) and cell_len(tail) <= width:
        return tail
    if port and width > len(port) + 1:
        keep = width - len(port) - 1
        return set_cell_size(host, keep) + "…" + port
    return rest


def without_ago(text: str, width: int) -> str:
    """"4s ago" as "4s" when the column is narrow: the title says PROBED."""
    return text if cell_len(text) <= width else text.removesuffix(" ago")


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int  # natural width
    minimum: int  # the narrowest it gives way to
    right: bool = False
    sort: str | None = None  # the sort key this column shows an arrow for
    flex: bool = False  # takes a share of any spare width...
    most: int = 0  # ...up to this many cells (0: no limit), so a wide screen does not strand the columns after it
    shorten: Callable[[str, int], str] | None = None  # a shorter form of a cell before it is cut with …


MARK = Column("mark", " ", 1, 1)
ID = Column("id", "ID", 13, 13, sort="id")  # pu- and ten hex digits
STATE = Column("state", "STATE", 11, 8, sort="state")
URL = Column("url", "URL", 22, 7, flex=True, most=48, shorten=short_url)
AGE = Column("age", "AGE", 7, 6, right=True, sort="age")
TTL = Column("ttl", "TTL", 7, 6, right=True, sort="ttl")
HEALTH = Column("health", "HEALTH", 8, 8, sort="health")
PROBE = Column("probe", "PROBED", 10, 6, right=True, shorten=without_ago)
KEY = Column("claim_key", "CLAIM KEY", 14, 12, flex=True, most=40)
FOR = Column("claimed_for", "FOR", 7, 6, right=True)
REASON = Column("reason", "REASON", 20, 10, flex=True)

COLUMNS: dict[str, tuple[Column, ...]] = {
    "ready": (MARK, ID, STATE, URL, AGE, TTL, HEALTH, PROBE),
    "creating": (MARK, ID, STATE, URL, AGE, TTL, REASON),
    "in-use": (MARK, ID, URL, KEY, FOR, TTL, HEALTH, PROBE),
    "all": (MARK, ID, STATE, URL, AGE, TTL, HEALTH, PROBE, KEY, FOR),
}
FROZEN = 2  # the mark and the ID stay in place when the table scrolls sideways
GIVE_WAY = ("url", "reason", "claim_key", "probe", "state", "ttl", "age", "claimed_for")  # first narrows first
SORT_WORDS = {
    "age": ("oldest first", "newest first"),
    "ttl": ("least TTL left first", "most TTL left first"),
    "id": ("A to Z", "Z to A"),
    "state": ("ready first", "terminating first"),
    "health": ("failing first", "healthy first"),
}


def arrow(reverse: bool) -> str:
    """The sort mark on a column's title: ▲ its own order, ▼ reversed."""
    return "▼" if reverse else "▲"


def sort_words(key: str, reverse: bool) -> str:
    """The sort order as the status line says it: `AGE ▲ oldest first`."""
    title = next((c.title for cols in COLUMNS.values() for c in cols if c.sort == key), key.upper())
    words = SORT_WORDS.get(key, ("", "reversed"))
    return f"{title} {arrow(reverse)} {words[1] if reverse else words[0]}".rstrip()


def widths(columns: tuple[Column, ...], width: int) -> list[int]:
    """Each column's width in a table `width` cells wide (a space follows each): natural widths with the
    spare shared by the flexible columns, or narrower ones giving way in GIVE_WAY order. The sum may exceed
    `width`: then the table scrolls sideways."""
    out = [c.width for c in columns]
    spare = width - sum(out) - len(out)
    if spare >= 0:
        while spare > 0:  # one cell at a time to each column that may still grow: a few hundred steps at most
            growing = [i for i, c in enumerate(columns) if c.flex and (not c.most or out[i] < c.most)]
            if not growing:
                break
            for i in growing[:spare]:
                out[i] += 1
            spare -= min(spare, len(growing))
        return out
    excess = -spare
    for key in GIVE_WAY:
        for i, c in enumerate(columns):
            if c.key == key and excess > 0:
                give = min(excess, out[i] - c.minimum)
                out[i] -= give
                excess -= give
    return out


def fit(col: Column, text: str, width: int) -> str:
    """A cell's text in exactly `width` cells: shortened the column's way, then cut with …"""
    if col.shorten is not None and cell_len(text) > width:
        text = col.shorten(text, width)
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else text[:width]
    return text.rjust(width) if col.right else set_cell_size(text, width)


def title(col: Column, width: int, sort: str, reverse: bool) -> str:
    """A column's title, with the sort arrow when the table is sorted by it (the arrow is never cut)."""
    if col.sort is None or col.sort != sort:
        return fit(col, col.title, width)
    mark = " " + arrow(reverse)
    name = col.title if cell_len(col.title) + len(mark) <= width else set_cell_size(col.title, width - len(mark))
    return fit(col, name + mark, width)


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
