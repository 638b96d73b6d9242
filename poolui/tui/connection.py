"""The console's link to its pools: embedded, connected, or lost and being retried with backoff."""

from __future__ import annotations

from dataclasses import dataclass

from ..backoff import delay as backoff_delay

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 15.0
REFRESH_STEPS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass
class Connection:
    embedded: bool
    source: str  # the server URL, or the pool file an embedded console runs
    state: str = "connecting"  # embedded | connecting | connected | disconnected
    failures: int = 0
    error: str = ""
    retry_at: float = 0.0  # monotonic time of the next attempt while disconnected

    def ok(self) -> bool:
        """True when the last call got through (and so actions can be tried)."""
        return self.state in ("embedded", "connected")

    def succeeded(self) -> bool:
        """Record a call that got through; True when it ends an outage."""
        recovered = self.state == "disconnected"
        self.state = "embedded" if self.embedded else "connected"
        self.failures = 0
        self.error = ""
        return recovered

    def failed(self, error: str, now: float) -> float:
        """Record a failed call; returns how long to wait before the next attempt (exponential, capped)."""
        self.failures += 1
        self.error = error
        self.state = "disconnected"
        delay = backoff_delay(self.failures, BACKOFF_FIRST, BACKOFF_MAX)
        self.retry_at = now + delay
        return delay


def faster(interval: float) -> float:
    smaller = [s for s in REFRESH_STEPS if s < interval]
    return smaller[-1] if smaller else REFRESH_STEPS[0]


def slower(interval: float) -> float:
    larger = [s for s in REFRESH_STEPS if s > interval]
    return larger[0] if larger else REFRESH_STEPS[-1]


def interval_text(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:g}s"
