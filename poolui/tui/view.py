"""What the console shows, computed from snapshots without Textual: groups, filters, sorting, formatting.

Times shown are wall-clock differences against the console's own (injectable) clock, corrected by the skew
between that clock and the snapshot's `taken_at`, so a countdown ticks every second between refreshes and a
server whose clock is a little off still shows the right TTL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..core.model import MemberView

# Which member states each tab shows.
TABS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ready": ("Ready", ("ready",)),
    "creating": ("Creating", ("creating", "starting")),
    "in-use": ("In use", ("claimed",)),
    "all": ("All", ("creating", "starting", "ready", "claimed", "failed", "terminating")),
}
# A pool state's colour (theme variables, so every theme works): the header's badge, the switcher's dot.
POOL_STATE_COLOURS = {
    "healthy": "$success",
    "warming": "$warning",
    "degraded": "$error",
    "paused": "$secondary",
    "draining": "$warning",
    "drained": "$warning",
}
STATE_ORDER = {s: i for i, s in enumerate(("ready", "claimed", "starting", "creating", "failed", "terminating"))}


@dataclass(frozen=True)
class SortKey:
    key: str
    title: str
    fn: Callable[[MemberView], object]


SORTS: tuple[SortKey, ...] = (
    SortKey("age", "age", lambda m: m.created_at),  # oldest first: the next one handed out
    SortKey("ttl", "TTL left", lambda m: m.expires_at),
    SortKey("id", "id", lambda m: m.id),
    SortKey("state", "state", lambda m: (STATE_ORDER.get(m.state, 99), m.id)),
    SortKey("health", "health", lambda m: ({"failing": 0, "unknown": 1}.get(m.health, 2), m.id)),
)
SORT_BY_KEY = {s.key: s for s in SORTS}


def group(members: Iterable[MemberView]) -> dict[str, list[MemberView]]:
    """Members per tab; one pass, so a tick over 10,000 members stays a few milliseconds."""
    by_state: dict[str, list[MemberView]] = {}
    for m in members:
        by_state.setdefault(m.state, []).append(m)
    out: dict[str, list[MemberView]] = {}
    for tab, (_, states) in TABS.items():
        rows: list[MemberView] = []
        for s in states:
            rows.extend(by_state.get(s, ()))
        out[tab] = rows
    return out


def matches(m: MemberView, needle: str) -> bool:
    return (
        needle in m.id
        or needle in m.state
        or needle in m.url
        or needle in m.health
        or (m.claim_key is not None and needle in m.claim_key.lower())
        or needle in m.reason.lower()
    )


def arrange(rows: list[MemberView], needle: str, sort: str, reverse: bool) -> list[MemberView]:
    """Filter (case-insensitive substring over the visible fields) then sort; the table shows the result."""
    if needle:
        n = needle.lower()
        rows = [m for m in rows if matches(m, n)]
    key = SORT_BY_KEY[sort].fn
    return sorted(rows, key=key, reverse=reverse)  # type: ignore[arg-type]


# ---------------------------------------------------------------- formatting


def duration(seconds: float | None) -> str:
    """3s, 2m05s, 1h02m, 3d04h: short and fixed-ish width for table cells."""
    if seconds is None:
        return "-"
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def countdown(seconds: float) -> str:
    """TTL left as m:ss (h:mm:ss past an hour); never negative."""
    s = int(max(0.0, seconds))
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def ago(now: float, ts: float | None) -> str:
    return "-" if ts is None else f"{duration(now - ts)} ago"


def millis(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    if ms < 10:
        return f"{ms:.1f}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return f"{seconds:.1f}s"  # 9.5s, not 9500ms


def percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.0f}%"


def ttl_level(ttl_left: float, min_remaining: float) -> str:
    """'' normally; 'low' under min_remaining_ttl (no longer handed out); 'critical' in its last 10 seconds."""
    if ttl_left <= 10:
        return "critical"
    if ttl_left < min_remaining:
        return "low"
    return ""


def names(ids: list[str], limit: int = 8) -> str:
    """sb-1, sb-2 and 3 more: how a confirmation names what it will touch."""
    if len(ids) <= limit:
        return ", ".join(ids)
    return ", ".join(ids[:limit]) + f" and {len(ids) - limit} more"


def shield(s: dict[str, Any] | None) -> str:
    """What protects a pool's sandboxes, as the header says it; a sandbox on the host's network in red."""
    if not s:
        return ""
    net = s.get("network", "?")
    parts = ["[b $error]network host[/]" if net == "host" else f"net {net}"]
    uid = s.get("uid")
    parts.append("[b $error]uid 0[/]" if uid == 0 else f"uid {uid}")
    parts.append("seccomp" if s.get("seccomp") else "[$warning]no seccomp[/]")
    disk = s.get("disk")
    parts.append(f"disk {disk >> 20}MiB" if isinstance(disk, int) else "[$warning]disk unbounded[/]")
    return " · ".join(parts)
