"""Sandbox-seconds from a pool's events: how long sandboxes lived, and how much of it they were claimed.

A sandbox costs from its 'created' event (the provider is asked) to its 'terminated' one; it is claimed
from 'claimed' to whatever ends the claim (released, lease_expired, terminating, ...); the rest of its life
it is idle (creating, starting, ready, being killed). Only the time inside [start, end] counts, so a
replay's warm-up and what runs past its horizon are left out; idle + claimed is then exactly the sum of the
members' lifetimes within the window. The setpoint's time-weighted mean comes from the 'setpoint' events.
"""

from __future__ import annotations

from ..core.model import Event

ENDED = ("terminated",)


class Ledger:
    """Feed it a pool's events in order (event()); read idle, claimed, creates and the setpoint's mean."""

    def __init__(self, start: float, end: float, setpoint: int) -> None:
        self.start, self.end = start, end
        self.idle = 0.0  # sandbox-seconds
        self.claimed = 0.0
        self.creates = 0
        self._since: dict[str, tuple[float, bool]] = {}  # member -> (since when, claimed)
        self._setpoint, self._setpoint_since, self._setpoint_area = setpoint, start, 0.0
        self.max_setpoint = setpoint

    def _clip(self, ts: float) -> float:
        return min(max(ts, self.start), self.end)

    def _charge(self, member: str, now: float) -> None:
        since = self._since.get(member)
        if since is not None:
            if since[1]:
                self.claimed += now - since[0]
            else:
                self.idle += now - since[0]

    def event(self, e: Event) -> None:
        """One event of the pool, in the order the bus gave it."""
        now = self._clip(e.ts)
        if e.kind == "setpoint":
            self._moved(e.detail, now)
            return
        if e.member_id is None:
            return
        if e.kind == "created" and self.start <= e.ts < self.end:
            self.creates += 1
        self._charge(e.member_id, now)
        if e.kind in ENDED or e.state == "gone":
            self._since.pop(e.member_id, None)
        else:
            # Its claim ends with "released" or "lease_expired" (an older log tells them in state claimed).
            claimed = e.state == "claimed" and e.kind not in ("released", "lease_expired")
            self._since[e.member_id] = (now, claimed)

    def _moved(self, detail: str, now: float) -> None:
        """'OLD -> NEW: reason'."""
        try:
            new = int(detail.split("->", 1)[1].split(":", 1)[0])
        except (IndexError, ValueError):
            return
        self._setpoint_area += self._setpoint * (now - self._setpoint_since)
        self._setpoint, self._setpoint_since = new, now
        if self.start <= now < self.end:
            self.max_setpoint = max(self.max_setpoint, new)

    def close(self) -> None:
        """The window ends: whatever still lives is charged up to its end."""
        for member in list(self._since):
            self._charge(member, self.end)
        self._since.clear()
        self._setpoint_area += self._setpoint * (self.end - self._setpoint_since)
        self._setpoint_since = self.end

    @property
    def mean_setpoint(self) -> float:
        """The setpoint averaged over the window (after close())."""
        span = self.end - self.start
        return self._setpoint_area / span if span > 0 else float(self._setpoint)
