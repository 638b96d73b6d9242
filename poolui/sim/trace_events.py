"""A claim trace from a pool's event log (`poolui --headless events --format trace`).

A claim is its 'claimed' event to what ends it: 'released', 'lease_expired', or the sandbox going
('terminating', 'terminated'); a claim its claimer gave back unused ('returned') is dropped. A cold claim
is logged when it was served with the wait before it, so its arrival is put where it was; a claim that timed
out is logged too ('claim_timed_out') and counted (`timeouts`), though it holds nothing. What the log cannot
say: a claim refused at once (on_empty = "fail", a draining pool) is not there.
"""

from __future__ import annotations

from ..core.events import waited_of
from ..core.model import Event

ENDS = ("released", "lease_expired", "terminating", "terminated")


class TraceRecorder:
    """Feed a pool's events (history, then live; repeats by seq are skipped); get claims as they end."""

    def __init__(self, pool: str | None = None) -> None:
        self.pool = pool
        self.open: dict[str, tuple[float, float]] = {}  # member -> wall times the claim arrived and was served
        self.start: float | None = None  # the first claim's wall time: the trace's arrival 0
        self.last_seq = 0
        self.timeouts = 0  # claims that waited their whole timeout and got nothing

    def feed(self, e: Event) -> tuple[float, float] | None:
        """(arrival seconds from the start, hold seconds) when e ends a claim, else None."""
        if e.seq and e.seq <= self.last_seq:
            return None
        self.last_seq = max(self.last_seq, e.seq)
        if self.pool is not None and e.pool != self.pool:
            return None
        if e.kind == "claim_timed_out":
            self.timeouts += 1
        if e.member_id is None:
            return None
        if e.kind == "claimed":
            arrived = e.ts - waited_of(e.detail)
            self.open[e.member_id] = arrived, e.ts
            if self.start is None:
                self.start = arrived
            return None
        if e.kind == "returned":
            self.open.pop(e.member_id, None)
            return None
        if e.kind in ENDS and e.member_id in self.open:
            at, served = self.open.pop(e.member_id)
            return max(0.0, at - (self.start or at)), max(0.0, e.ts - served)
        return None
