"""Exponential backoff, written once: the engine's create retries, adoption retries, the console's
reconnects and the Docker event stream all wait first, first*2, first*4 ... up to a cap."""

from __future__ import annotations

from dataclasses import dataclass


def delay(failures: int, first: float, cap: float, factor: float = 2.0) -> float:
    """The pause after `failures` failures in a row (0 failures: no pause)."""
    if failures <= 0:
        return 0.0
    # min() before the power would overflow: 2 ** 2000 is fine for ints, not for floats.
    steps = min(failures - 1, 64)
    return min(cap, first * factor**steps)


@dataclass
class Backoff:
    """Counts failures in a row; `failed()` says how long to wait before the next try."""

    first: float
    cap: float
    factor: float = 2.0
    failures: int = 0

    def failed(self) -> float:
        self.failures += 1
        return delay(self.failures, self.first, self.cap, self.factor)

    def reset(self) -> None:
        self.failures = 0
