"""Claims over the last minutes: the one place the windowed numbers come from.

Every view that shows claims over a window (the console's overview and trends, `check --json`, /metrics)
reads `ClaimWindow.to_dict()` through the pool's snapshot, so they all agree. Claims are kept in one bucket
per second of the engine's (injectable) clock, for the longest window only: memory stays bounded however
many claims come, and a test moves time instead of waiting for it. Latencies go into log-spaced bins
(2% apart) that keep their sum, so a percentile is the mean of its bin: within 2% of the exact value
whatever the claim rate, and exact when the bin's claims took the same time.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from ..clock import Clock

WINDOWS = {"1m": 60, "5m": 300}  # the windows every view shows, by the label they are shown with
SERIES_POINTS = 60  # claims per step across a window, for the console's charts
OUTCOMES = ("warm", "cold", "failed", "timed_out")
_FLOOR = 1e-5  # seconds: faster claims share the lowest bin
_GROWTH = 1.02
_LOG_GROWTH = math.log(_GROWTH)


def _bin(latency: float) -> int:
    if latency <= _FLOOR:
        return 0
    return int(math.log(latency / _FLOOR) / _LOG_GROWTH) + 1


@dataclass
class _Second:
    at: int  # whole seconds of the monotonic clock
    outcomes: Counter[str] = field(default_factory=Counter)
    latencies: Counter[int] = field(default_factory=Counter)  # bin -> claims
    sums: Counter[int] = field(default_factory=Counter)  # bin -> their latencies added up (seconds)


class ClaimWindow:
    """Claim outcomes and latencies of the last `span` seconds, to the second."""

    def __init__(self, clock: Clock, span: int = max(WINDOWS.values())) -> None:
        self.clock = clock
        self.span = span
        self.started = clock.monotonic()
        self._seconds: deque[_Second] = deque()

    def record(self, outcome: str, latency: float | None) -> None:
        """One claim's end: warm or cold (with its latency), failed (refused) or timed_out."""
        now = int(self.clock.monotonic())
        if not self._seconds or self._seconds[-1].at != now:
            self._seconds.append(_Second(now))
            self._trim(now)
        s = self._seconds[-1]
        s.outcomes[outcome] += 1
        if latency is not None:
            b = _bin(latency)
            s.latencies[b] += 1
            s.sums[b] += latency  # type: ignore[assignment]  # a Counter of floats: sums, not counts

    def _trim(self, now: int) -> None:
        while self._seconds and self._seconds[0].at <= now - self.span:
            self._seconds.popleft()

    def _recent(self, seconds: int, now: int) -> list[_Second]:
        return [s for s in self._seconds if s.at > now - seconds]

    def stats(self, seconds: int) -> dict[str, Any]:
        """The claims of the last `seconds` (the current second included): counts by outcome, hit rate
        (warm out of every claim asked, as since the start), p50/p99 of served claims, claims per minute."""
        mono = self.clock.monotonic()
        now = int(mono)
        outcomes: Counter[str] = Counter()
        latencies: Counter[int] = Counter()
        sums: Counter[int] = Counter()
        for s in self._recent(seconds, now):
            outcomes.update(s.outcomes)
            latencies.update(s.latencies)
            sums.update(s.sums)
        asked = sum(outcomes.values())
        covered = max(1.0, min(float(seconds), mono - self.started))  # a pool up 30 s has 30 s of claims
        return {
            "window": seconds, "claims": asked, "hits": outcomes["warm"], "cold": outcomes["cold"],
            "refusals": outcomes["failed"], "timeouts": outcomes["timed_out"],
            "hit_rate": outcomes["warm"] / asked if asked else None,
            "p50": _percentile(latencies, sums, 50), "p99": _percentile(latencies, sums, 99),
            "per_minute": asked / covered * 60.0,
            "series": self.series(seconds, now),
        }

    def series(self, seconds: int, now: int) -> list[int]:
        """Claims in each of SERIES_POINTS equal steps across the window, oldest first."""
        step = seconds / SERIES_POINTS
        out = [0] * SERIES_POINTS
        for s in self._recent(seconds, now):
            i = int((s.at - (now - seconds + 1)) / step)
            out[min(SERIES_POINTS - 1, max(0, i))] += sum(s.outcomes.values())
        return out

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Every window, by its label ("1m", "5m")."""
        return {label: self.stats(seconds) for label, seconds in WINDOWS.items()}


def _percentile(bins: Counter[int], sums: Counter[int], p: float) -> float | None:
    """Nearest rank over the binned latencies, as the mean of its bin (None with no served claim: never a
    made-up 0)."""
    total = sum(bins.values())
    if not total:
        return None
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for index in sorted(bins):
        seen += bins[index]
        if seen >= rank:
            return sums[index] / bins[index]
    return None  # not reached: the ranks add up to total
