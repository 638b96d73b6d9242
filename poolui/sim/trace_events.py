"""A claim trace from a pool's event log (`poolui --headless events --format trace`).

A claim is its 'claimed' event to what ends it: 'released', 'lease_expired', or the sandbox going
('terminating', 'terminated'); a claim its claimer gave back unused ('returned') is dropped. What the log
cannot say: a claim is logged when it was served, so a cold claim's arrival is late by its wait, and a claim
that timed out or was refused is not there at all; a trace from a pool that missed often understates the
demand it missed (the simulator then flatters small targets).
"""

from __future__ import annotations

from ..core.model import Event

ENDS = ("released", "lease_expired", "terminating", "terminated")


class TraceRecorder:
    """Feed a pool's events (history, then live; repeats by seq are skipped); get claims as they end."""

    def __init__(self, pool: str | None = None) -> None:
        self.pool = pool
        self.open: dict[str, float] = {}  # member -> wall time claimed
        self.start: float | None = None  # the first claim's wall time: the trace's arrival 0
        self.last_seq = 0

    def feed(self, e: Event) -> tuple[float, float] | None:
        """(arrival seconds from the start, hold seconds) when e ends a claim, else None."""
        if e.seq and e.seq <= self.last_seq:
            return None
        self.last_seq = max(self.last_seq, e.seq)
        if e.member_id is None or (self.pool is not None and e.pool != self.pool):
            return None
        if e.kind == "claimed":
            self.open[e.member_id] = e.ts
            if self.start is None:
                self.start = e.ts
            return None
        if e.kind == "returned":
            self.open.pop(e.member_id, None)
            return None
        if e.kind in ENDS and e.member_id in self.open:
            at = self.open.pop(e.member_id)
            return max(0.0, at - (self.start or at)), max(0.0, e.ts - at)
        return None
