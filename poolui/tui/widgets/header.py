"""The header: which pool, how it is doing, and how the console is connected to it."""

from __future__ import annotations

from textual.markup import escape
from textual.widgets import Static

from ...core.model import PoolSnapshot
from .. import view
from ..connection import Connection, interval_text


def badge(text: str, colour: str) -> str:
    return f"[bold $background on {colour}] {escape(text)} [/]"


class PoolHeader(Static):
    DEFAULT_CSS = """
    PoolHeader {
        height: auto;
        background: $panel;
        padding: 0 1;
    }
    """

    def show(self, snap: PoolSnapshot | None, conn: Connection, refresh: float, read_only: bool,
             monotonic_now: float, stale_for: float | None) -> None:
        self.update("\n".join(header_lines(snap, conn, refresh, read_only, monotonic_now, stale_for)))


def header_lines(snap: PoolSnapshot | None, conn: Connection, refresh: float, read_only: bool,
                 monotonic_now: float, stale_for: float | None) -> list[str]:
    lines = []
    if snap is None:
        lines.append("[b]poolui[/]  [dim]waiting for the first snapshot…[/]")
    else:
        c = snap.counts
        m = snap.metrics
        lat = m.get("claim_latency") or {}
        ready_colour = "$success" if snap.ready >= snap.target_ready else (
            "$warning" if snap.ready >= snap.min_ready else "$error")
        parts = [
            f"[b]{escape(snap.name)}[/] [dim]{escape(snap.provider)} · {escape(snap.isolation)}[/]",
            badge(snap.state.upper(), view.POOL_STATE_COLOURS.get(snap.state, "$primary")),
            f"ready [b {ready_colour}]{snap.ready}[/]/{snap.target_ready}",
            f"creating [b]{c.get('creating', 0) + c.get('starting', 0)}[/]",
            f"in use [b]{c.get('claimed', 0)}[/]",
        ]
        if snap.waiting:
            parts.append(f"waiting [b $warning]{snap.waiting}[/]")
        parts += [
            f"hit [b]{view.percent(m.get('hit_rate'))}[/]",
            f"p50 [b]{view.millis(lat.get('p50'))}[/] p99 [b]{view.millis(lat.get('p99'))}[/]",
        ]
        lines.append("  ".join(parts))
        if snap.reason:
            lines.append(f"[$error]degraded: {escape(snap.reason)}[/]")
    second = [connection_text(conn, monotonic_now), f"refresh {interval_text(refresh)}"]
    if snap is not None and snap.shield:
        second.append(view.shield(snap.shield))
    if stale_for is not None and conn.state == "disconnected":
        second.append(f"[dim]data {view.duration(stale_for)} old[/]")
    if read_only:
        second.append(badge("READ-ONLY", "$warning"))
    lines.append("  ".join(second))
    return lines


def connection_text(conn: Connection, monotonic_now: float) -> str:
    if conn.state == "embedded":
        return f"{badge('EMBEDDED', '$accent')} [dim]{escape(conn.source)}[/]"
    if conn.state == "connected":
        return f"[$success]●[/] connected [dim]{escape(conn.source)}[/]"
    if conn.state == "connecting":
        return f"[$warning]○[/] connecting to [dim]{escape(conn.source)}[/]…"
    wait = max(0.0, conn.retry_at - monotonic_now)
    return (f"{badge('DISCONNECTED', '$error')} {escape(conn.source)}: {escape(conn.error)}; "
            f"retry {conn.failures + 1} in {wait:.0f}s")
