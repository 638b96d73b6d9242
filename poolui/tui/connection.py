"""The console's link to its pools: embedded, connected, or lost and being retried with backoff.

What the header's badge says about the link comes from here too (`health`): the pool's own state while the
data is fresh, STALE once the last snapshot is older than a few refresh periods (a hung server, a slow link),
DISCONNECTED once a call has failed, both with the data's age.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..backoff import delay as backoff_delay

BACKOFF_FIRST = 0.25
# A server on this machine is back the moment it listens, and a refused connect costs next to nothing: try
# every second at most, so a restarted server is seen within about a second. Farther away, every 5 s.
BACKOFF_MAX_LOOPBACK = 1.0
BACKOFF_MAX_REMOTE = 5.0
STALE_PERIODS = 3  # snapshots missed before the data is called stale
STALE_MIN = 2.0  # seconds: a fast refresh rate does not make a snapshot stale after 750 ms
REFRESH_STEPS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(url: str) -> bool:
    """True for a URL on this machine (127.x.x.x, localhost, ::1)."""
    host = (urlsplit(url).hostname or "") if "://" in url else ""
    return host in LOOPBACK or host.startswith("127.")


@dataclass
class Connection:
    embedded: bool
    source: str  # the server URL, or the pool file an embedded console runs
    state: str = "connecting"  # embedded | connecting | connected | disconnected
    failures: int = 0
    error: str = ""
    retry_at: float = 0.0  # the console clock's monotonic time of the next attempt while disconnected
    # The last failure was a server that answered and refused the console (it runs another pool file, or
    # not this token): the header says it in full; retries go on, and check the server again each time.
    refused: bool = False

    @property
    def backoff_cap(self) -> float:
        """The longest wait between two attempts: short on this machine, longer across a network."""
        return BACKOFF_MAX_LOOPBACK if self.embedded or is_loopback(self.source) else BACKOFF_MAX_REMOTE

    def ok(self) -> bool:
        """True when the last call got through (and so actions can be tried)."""
        return self.state in ("embedded", "connected")

    def succeeded(self) -> bool:
        """Record a call that got through; True when it ends an outage."""
        recovered = self.state == "disconnected"
        self.state = "embedded" if self.embedded else "connected"
        self.failures = 0
        self.error = ""
        self.refused = False
        return recovered

    def failed(self, error: str, now: float, refused: bool = False) -> float:
        """Record a failed call (`refused`: the server answered and refused the console); returns how long to
        wait before the next attempt (exponential, capped)."""
        self.failures += 1
        self.error = error
        self.refused = refused
        self.state = "disconnected"
        delay = backoff_delay(self.failures, BACKOFF_FIRST, self.backoff_cap)
        self.retry_at = now + delay
        return delay

    def health(self, data_age: float | None, refresh: float) -> str:
        """What the badge says of the link: "disconnected", "stale", "connecting" or "" (fresh data)."""
        if self.state == "disconnected":
            return "disconnected"
        if data_age is None:
            return "connecting"
        if data_age > stale_after(refresh):
            return "stale"
        return ""


def stale_after(refresh: float) -> float:
    """How old a snapshot may get before the console calls its data stale."""
    return max(STALE_MIN, STALE_PERIODS * refresh)


def short_source(source: str) -> str:
    """A server URL without its scheme (127.0.0.1:8765); a pool file as it is."""
    if "://" not in source:
        return source
    parts = urlsplit(source)
    return (parts.netloc + parts.path.rstrip("/")) or source


def faster(interval: float) -> float:
    """The next shorter refresh interval."""
    smaller = [s for s in REFRESH_STEPS if s < interval]
    return smaller[-1] if smaller else REFRESH_STEPS[0]


def slower(interval: float) -> float:
    """The next longer refresh interval."""
    larger = [s for s in REFRESH_STEPS if s > interval]
    return larger[0] if larger else REFRESH_STEPS[-1]


def interval_text(seconds: float) -> str:
    """A refresh interval as the header shows it: 250ms, 1s, 30s."""
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:g}s"
