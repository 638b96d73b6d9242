"""Create-to-ready times for simulated sandboxes: a distribution written on the command line, the pool's
configured one, or one fitted to what a running pool measured.

    3s                              every create takes 3 s
    uniform:min=2s,max=6s           evenly between
    lognormal:median=3s,p95=8s      skewed to the right, as real create times are (a slow tail)

A lognormal is what `measured` fits: its median and p95 are the pool's measured p50 and p95.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from ..config import PoolConfig
from ..durations import parse_duration

Z95 = 1.6448536269514722  # the standard normal's 95th percentile
ALLOWED = ('a duration ("3s"), "uniform:min=2s,max=6s", "lognormal:median=3s,p95=8s", "configured" or '
           '"measured"')
MAX_CREATE = 3600.0


@dataclass(frozen=True)
class CreateTime:
    """A distribution of create-to-ready seconds; `source` says where it came from, for the report."""

    kind: str  # fixed | uniform | lognormal
    a: float  # fixed: the time; uniform: min; lognormal: median
    b: float = 0.0  # uniform: max; lognormal: p95
    source: str = "given"

    def sampler(self, seed: int) -> Callable[[], float]:
        """Draws, reproducible by seed."""
        rng = random.Random(seed)
        if self.kind == "uniform":
            return lambda: rng.uniform(self.a, self.b)
        if self.kind == "lognormal":
            mu = math.log(self.a)
            sigma = (math.log(self.b) - mu) / Z95
            return lambda: min(MAX_CREATE, rng.lognormvariate(mu, sigma))
        return lambda: self.a

    def p95(self) -> float:
        """The 95th percentile (what the autoscaler sizes by)."""
        return {"fixed": self.a, "uniform": self.a + 0.95 * (self.b - self.a)}.get(self.kind, self.b)

    def describe(self) -> str:
        """As it would be written, with where it came from."""
        text = {"fixed": f"{self.a:g}s", "uniform": f"uniform:min={self.a:g}s,max={self.b:g}s",
                "lognormal": f"lognormal:median={self.a:g}s,p95={self.b:g}s"}[self.kind]
        return f"{text} ({self.source})"


def _fields(body: str, names: tuple[str, ...], spec: str) -> list[float]:
    got: dict[str, float] = {}
    for part in body.split(","):
        k, eq, v = part.partition("=")
        if not eq or k.strip() not in names:
            raise ValueError(f"create time {spec!r}: {part.strip()!r} is not allowed; expected "
                             f"{', '.join(n + '=DURATION' for n in names)}")
        got[k.strip()] = parse_duration(v.strip())
    if set(got) != set(names):
        raise ValueError(f"create time {spec!r} needs {' and '.join(names)}")
    return [got[n] for n in names]


def parse_create_time(spec: str) -> CreateTime:
    """A written distribution; ValueError says what is allowed (configured and measured are resolved by the
    caller)."""
    kind, colon, body = spec.strip().partition(":")
    try:
        if not colon:
            try:
                ct = CreateTime("fixed", parse_duration(spec.strip()))
            except ValueError:
                raise ValueError(f"create time {spec!r} is not allowed: expected {ALLOWED}") from None
        elif kind == "uniform":
            lo, hi = _fields(body, ("min", "max"), spec)
            if lo > hi:
                raise ValueError(f"create time {spec!r}: min is over max")
            ct = CreateTime("uniform", lo, hi)
        elif kind == "lognormal":
            med, p95 = _fields(body, ("median", "p95"), spec)
            if not 0 < med < p95:
                raise ValueError(f"create time {spec!r}: expected 0 < median < p95")
            ct = CreateTime("lognormal", med, p95)
        else:
            raise ValueError(f"create time {spec!r} is not allowed: expected {ALLOWED}")
    except ValueError as e:
        msg = str(e)
        raise ValueError(msg if msg.startswith("create time") else f"create time {spec!r}: {msg}") from None
    if ct.p95() > MAX_CREATE:
        raise ValueError(f"create time {spec!r}: at most {MAX_CREATE:g}s")
    return ct


def configured(cfg: PoolConfig) -> CreateTime:
    """The pool's own: an instant pool's create_delay + ready_delay; else the autoscaler's ready_time (the
    create-to-ready time it assumes until it has measured one), else 5 s."""
    if cfg.provider == "instant":
        raw = cfg.raw_options
        t = parse_duration(raw.get("create_delay", 0)) + parse_duration(raw.get("ready_delay", 0))
        return CreateTime("fixed", t, source="the pool's instant create_delay + ready_delay")
    if cfg.autoscale is not None:
        return CreateTime("fixed", cfg.autoscale.ready_time, source="the pool's autoscale ready_time")
    return CreateTime("fixed", 5.0, source="nothing configured or measured: 5s assumed")


def measured(p50: float | None, p95: float | None) -> CreateTime | None:
    """A lognormal through a running pool's measured p50 and p95 of create-to-ready (None: none yet)."""
    if not p50 or not p95:
        return None
    if p95 <= p50 * 1.001:
        return CreateTime("fixed", p50, source="measured by the running pool")
    return CreateTime("lognormal", p50, p95, source="measured by the running pool")
