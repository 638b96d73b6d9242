"""Counters and latency histograms: Prometheus buckets for scraping, a bounded sample window for percentiles."""

from __future__ import annotations

import bisect
import math
from collections import Counter, deque
from typing import Any

from ..clock import Clock
from .window import ClaimWindow

BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
OUTCOMES = ("warm", "cold", "failed", "timed_out")


class Histogram:
    def __init__(self, window: int = 4096) -> None:
        self.bucket_counts = [0] * (len(BUCKETS) + 1)
        self.count = 0
        self.total = 0.0
        self._window: deque[float] = deque(maxlen=window)
        self._sorted: list[float] | None = None
        # over -> the sum over the window of max(0, x - over), kept up by observe once mean(over) is asked:
        # a policy reads it every second, and a sort of the window on each new sample is not free
        self._sums: dict[float, float] = {}
        self._since_exact = 0  # samples since the sums were last added up afresh (rounding does not pile up)

    def observe(self, seconds: float) -> None:
        self.bucket_counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.count += 1
        self.total += seconds
        if self._sums:
            self._keep_sums(seconds)
        self._window.append(seconds)
        self._sorted = None

    def mean(self, over: float = 0.0) -> float | None:
        """The mean over the sample window of max(0, x - over) (of the samples themselves for over = 0, as
        durations are not negative); None before any sample. O(1): after the first call for an `over`
        (at most 4 are kept), observe keeps its running sum."""
        if not self._window:
            return None
        s = self._sums.get(over)
        if s is None:
            if len(self._sums) >= 4:
                del self._sums[next(iter(self._sums))]
            s = self._sums[over] = math.fsum(max(0.0, x - over) for x in self._window)
        return s / len(self._window)

    def _keep_sums(self, seconds: float) -> None:
        full = len(self._window) == self._window.maxlen
        old = self._window[0] if full else 0.0
        self._since_exact += 1
        if self._since_exact >= len(self._window) > 0:  # amortised O(1): a fresh sum once per window's worth
            self._since_exact = 0
            rest = list(self._window)[1:] if full else list(self._window)
            for over in self._sums:
                self._sums[over] = math.fsum(max(0.0, x - over) for x in [*rest, seconds])
            return
        for over in self._sums:
            self._sums[over] += max(0.0, seconds - over) - (max(0.0, old - over) if full else 0.0)

    def percentile(self, p: float) -> float | None:
        if not self._window:
            return None
        if self._sorted is None:
            self._sorted = sorted(self._window)
        s = self._sorted
        return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]

    def summary(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "p50": self.percentile(50),
            "p95": self.percentile(95),
            "p99": self.percentile(99),
            "sum": self.total,
            "buckets": list(zip([*BUCKETS, "+Inf"], self._cumulative(), strict=True)),
        }

    def _cumulative(self) -> list[int]:
        out, run = [], 0
        for c in self.bucket_counts:
            run += c
            out.append(run)
        return out


class PoolMetrics:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.window = ClaimWindow(self.clock)  # the same claims over the last minutes (window.py)
        self.claims: Counter[tuple[str, str]] = Counter()  # (outcome, reason)
        self.claim_latency = Histogram()
        self.create_to_ready = Histogram()
        self.creates = 0
        self.create_failures = 0
        self.terminated = 0
        self.leases_expired = 0
        self.execs = 0
        self.runs = 0
        self.resets = 0
        self.reset_failures = 0
        self.last_create_error = ""
        self.last_create_error_at: float | None = None  # wall time

    def claim(self, outcome: str, latency: float | None, reason: str = "") -> None:
        """One claim's end: warm, cold, failed (refused) or timed_out."""
        self.claims[(outcome, reason)] += 1
        self.window.record(outcome, latency)
        if latency is not None:
            self.claim_latency.observe(latency)

    def create_failed(self, why: str) -> None:
        """A create or readiness wait failed; the last reason is kept for the overview."""
        self.create_failures += 1
        self.last_create_error, self.last_create_error_at = why, self.clock.time()

    def outcome_totals(self) -> dict[str, int]:
        totals = dict.fromkeys(OUTCOMES, 0)
        for (outcome, _), n in self.claims.items():
            totals[outcome] += n
        return totals

    def to_dict(self) -> dict[str, Any]:
        totals = self.outcome_totals()
        asked = sum(totals.values())
        return {
            "claims": totals,
            "claims_by_reason": [
                {"outcome": o, "reason": r, "count": n} for (o, r), n in sorted(self.claims.items())
            ],
            "hit_rate": (totals["warm"] / asked) if asked else None,
            "claim_latency": self.claim_latency.summary(),
            "create_to_ready": self.create_to_ready.summary(),
            "creates": self.creates,
            "create_failures": self.create_failures,
            "last_create_error": self.last_create_error,
            "last_create_error_at": self.last_create_error_at,
            "terminated": self.terminated,
            "leases_expired": self.leases_expired,
            "execs": self.execs,
            "runs": self.runs,
            "resets": self.resets,
            "reset_failures": self.reset_failures,
            "windows": self.window.to_dict(),
        }
