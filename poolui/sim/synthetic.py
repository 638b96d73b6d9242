"""Reproducible synthetic traces: the same kind, seed and sizes give the same claims, byte for byte.

Arrivals are a Poisson process whose rate may change with time, drawn by thinning (candidates at the
highest rate, each kept with probability rate(t) / highest): so a constant rate is exactly Poisson.

- poisson: `rate` claims/s all along.
- diurnal: a day's cycle around `rate`: lowest at 02:00 and highest at 14:00 (UTC of the trace's start),
  the peak (1 + 0.9) / (1 - 0.9) = 19 times the trough.
- bursty: `rate`, with bursts: they begin at random (on average one every `burst_every`), each lasts 1 to
  5 minutes at 4 to 10 times the rate.
- bursty-diurnal: the diurnal cycle with the bursts on top (the benchmark's reference trace).

Holds are exponential with mean `hold` (the time a claimer keeps a sandbox), at least 100 ms. Traces start
on a Monday at 00:00 UTC, so a schedule's weekday rules fire in a replay.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from . import SYNTHETIC_KINDS
from .trace import Trace

KINDS = SYNTHETIC_KINDS
START = datetime(2026, 12, 7, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
AMPLITUDE = 0.9
PEAK_HOUR = 14.0
MIN_HOLD = 0.1


@dataclass(frozen=True)
class Shape:
    """What a synthetic trace is made of (the defaults are the benchmark's)."""

    kind: str = "bursty-diurnal"
    seed: int = 1
    duration: float = 86400.0
    rate: float = 0.5  # mean claims per second, before bursts
    hold: float = 30.0  # mean seconds a claim is held
    burst_every: float = 3600.0  # mean seconds between the starts of bursts


def _bursts(rng: random.Random, shape: Shape) -> list[tuple[float, float, float]]:
    """(start, end, factor) of each burst over the trace."""
    out: list[tuple[float, float, float]] = []
    t = 0.0
    while True:
        t += rng.expovariate(1.0 / shape.burst_every)
        if t >= shape.duration:
            return out
        out.append((t, t + rng.uniform(60.0, 300.0), rng.uniform(4.0, 10.0)))


def _diurnal(t: float) -> float:
    hour = (t / 3600.0) % 24.0
    return 1.0 + AMPLITUDE * math.cos(2 * math.pi * (hour - PEAK_HOUR) / 24.0)


def rate_of(shape: Shape, bursts: list[tuple[float, float, float]]) -> Callable[[float], float]:
    """The arrival rate at t seconds into the trace."""
    daily = shape.kind in ("diurnal", "bursty-diurnal")

    starts = [b[0] for b in bursts]

    def rate(t: float) -> float:
        r = shape.rate * (_diurnal(t) if daily else 1.0)
        i = bisect.bisect_right(starts, t) - 1  # the burst begun last (one that overlaps it gives way)
        if i >= 0 and t < bursts[i][1]:
            return r * bursts[i][2]
        return r

    return rate


def synthetic(shape: Shape) -> Trace:
    """The trace of this shape and seed; ValueError names a kind or size that is not allowed."""
    if shape.kind not in KINDS:
        raise ValueError(f"synthetic trace {shape.kind!r} is not allowed: expected one of {', '.join(KINDS)}")
    for what, v in (("duration", shape.duration), ("rate", shape.rate), ("hold", shape.hold)):
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"synthetic trace: {what} = {v!r} is not allowed: expected a positive number")
    rng = random.Random(shape.seed)
    bursts = _bursts(rng, shape) if shape.kind.startswith("bursty") else []
    rate = rate_of(shape, bursts)
    top = shape.rate * (1 + AMPLITUDE if "diurnal" in shape.kind else 1.0) * max((f for *_, f in bursts), default=1.0)
    claims, t = [], 0.0
    while True:
        t += rng.expovariate(top)
        if t >= shape.duration:
            break
        if rng.random() * top < rate(t):
            claims.append((round(t, 6), round(max(MIN_HOLD, rng.expovariate(1.0 / shape.hold)), 6)))
    meta = {"kind": shape.kind, "seed": shape.seed, "rate": shape.rate, "hold": shape.hold}
    return Trace(claims, START, shape.duration, meta)
