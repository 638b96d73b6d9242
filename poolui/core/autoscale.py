"""An autoscaling policy (sizing.Policy): the setpoint follows the claim rate.

What it uses, and why. A taken sandbox is replaced at once, and the replacement is ready after the pool's
create-to-ready time T; a setpoint of S (ready plus creating, as refill counts it) is then the base stock of
an (S-1, S) inventory. With claims arriving as a Poisson stream of rate r, the creates outstanding when a
claim arrives are Poisson with mean r*T (Palm's theorem, whatever T's distribution), and that claim finds a
ready sandbox when fewer than S are outstanding. So S is the smallest number with P(Poisson(r*T) < S) >=
hit_rate. Little's law gives the mean, r*T, the floor; the Poisson quantile over it is the burst margin,
larger in proportion for a small pool, where chance matters most. T is the MEAN of the measured
create-to-ready time (a running mean of the last 4,096; ready_time until there is one): Palm's theorem
needs nothing else of T's distribution, and sizing by a tail such as the p95 keeps more than the goal
asks (at 1 claim/s with creates lognormal, median 3 s and p95 8 s: the mean, 3.6 s, asks 10, the p95 16).
With max_wait w, a claim counts as served when it waits at most w: it is (at the latest) when fewer than S
of the creates begun by its arrival are still going w later, and their number is Poisson with mean
r*E[max(0, T - w)] (the same theorem): the part of each create a wait does not cover, which the tail of T
decides, so that is kept as a running mean too (T - w alike for every create without measurements).

How it moves. The rate is taken over `window` (stable) and `panic_window` (a burst). Up: at once to what
the stable rate needs; when the burst rate needs panic_threshold times the setpoint or more, it panics:
up at once to what the burst needs, and never down until a whole `window` has passed since it last
panicked (Knative's rule). Down: only to the most the stable rate needed over the last scale_down_delay
(the Kubernetes HPA's stabilisation), so one quiet minute does not throw away warm sandboxes; the burst
rate's needs are not remembered there: over 6 s they are noise at a low rate (at 0.1 claims/s, where 3
do, remembering them kept 6), and a real burst holds the setpoint through its panic anyway. Step limits
bound each move; a degraded pool is not scaled up (more creates would fail the same way); [min, max]
bound the result, and a schedule's rule in force raises the floor (config/autoscale.py). Each look is
O(1) on the average: running counts of claims, a running maximum of the needs (a monotonic queue).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from ..bounds import MAX_SIZE
from ..config import PoolConfig
from ..config.autoscale import AutoscaleConfig, ScheduleRule
from .sizing import Policy, Signals, Sizes, Static


def base_stock(mean: float, hit_rate: float, limit: int = MAX_SIZE) -> int:
    """The smallest S with P(Poisson(mean) < S) >= hit_rate (0 when nothing arrives), at most limit."""
    if mean <= 0:
        return 0
    # Start 10 standard deviations below the mean (the mass under it is below 1e-20), the first term in logs
    # (exp(-mean) alone underflows past a mean of ~745), then the recurrence: ~12 sqrt(mean) steps in all.
    s = max(0, int(mean - 10 * math.sqrt(mean)))
    if s >= limit:
        return limit
    pmf = math.exp(s * math.log(mean) - mean - math.lgamma(s + 1))
    cdf = 0.0
    while cdf < hit_rate and s < limit:
        cdf += pmf
        s += 1
        pmf *= mean / s
    return s


def policy_for(cfg: PoolConfig) -> Policy:
    """The pool file's choice: an Autoscaler for a pool with [pools.NAME.autoscale], else Static."""
    return Autoscaler(cfg.autoscale) if cfg.autoscale is not None else Static()


class Autoscaler:
    """The setpoint from the claim rate (see the module's text); looks again once a second of its clock."""

    name = "autoscale"

    def __init__(self, cfg: AutoscaleConfig) -> None:
        self.cfg = cfg
        self.reason = "not asked yet"
        self.value: int | None = None
        self.panic_until = -math.inf
        self._arrivals: deque[list[int]] = deque()  # [second, claims], for the last `window` seconds
        self._in_window = 0  # the claims in _arrivals
        # (when, what the stable rate needed), for scale-down: each kept only while nothing later needed as
        # much, so the first is the most needed over scale_down_delay
        self._wanted: deque[tuple[float, int]] = deque()
        self._at: int | None = None  # the second last looked at
        self._started: float | None = None
        self._zone = ZoneInfo(cfg.timezone)
        self._minute: int | None = None  # the wall-clock minute the schedule was last looked at
        self.rule: ScheduleRule | None = None  # the schedule's rule in force

    def claimed(self, now: float) -> None:
        """One more claim in the current second."""
        if self._started is None:
            self._started = now
        sec = int(now)
        self._in_window += 1
        if self._arrivals and self._arrivals[-1][0] == sec:
            self._arrivals[-1][1] += 1
        else:
            self._arrivals.append([sec, 1])

    def rate(self, now: float, seconds: float) -> float:
        """Claims per second over the last `seconds` whole seconds, the current one as far as it has gone
        (over less while the pool is younger than that)."""
        first = int(now) - int(seconds) + 1
        if self._arrivals and self._arrivals[0][0] >= first:
            n = self._in_window  # the whole record: the stable window, which want() keeps it to
        else:
            n = 0
            for sec, c in reversed(self._arrivals):  # the panic window: a few seconds from the newest
                if sec < first:
                    break
                n += c
        since = first if self._started is None else max(first, self._started)
        return n / max(now - since, 1.0)

    def want(self, sizes: Sizes, now: float, seen: Callable[[], Signals]) -> int:
        """The setpoint for now: looked at again once per second of the clock, the same in between."""
        if self._started is None:
            self._started = now
        if self.value is None:
            self.value = self._bounded(sizes.target_ready, sizes)  # start from the operator's target,
            self._remember(now, self.value)  # as if wanted: kept for scale_down_delay at least
        if self._at == int(now):
            return self.value
        self._at = int(now)
        while self._arrivals and self._arrivals[0][0] <= int(now) - int(self.cfg.window):
            self._in_window -= self._arrivals.popleft()[1]
        signals = seen()
        self._schedule(signals.wall)
        new = self._next(self.value, sizes, now, signals)
        # creates are failing: asking for more (for the rate or a schedule) would only fail more
        self.value = min(new, self.value) if signals.degraded else new
        return self.value

    def _schedule(self, wall: float) -> None:
        """The rule in force: of those whose time since firing is within their `for`, the one that fired
        last (looked for again once a minute)."""
        if not self.cfg.schedule or self._minute == int(wall // 60):
            return
        self._minute = int(wall // 60)
        at = datetime.fromtimestamp(wall, self._zone).replace(tzinfo=None)
        fired = [(last, r) for r in self.cfg.schedule if (last := r.cron.last(at)) is not None
                 and (r.hold is None or (at - last).total_seconds() < r.hold)]
        self.rule = max(fired, key=lambda f: f[0])[1] if fired else None

    def _remember(self, now: float, need: int) -> None:
        while self._wanted and self._wanted[-1][1] <= need:
            self._wanted.pop()  # never the most wanted again: this need is as high and stays longer
        self._wanted.append((now, need))

    def _need(self, rate: float, seen: Signals) -> int:
        w = self.cfg.max_wait
        cover = seen.beyond(w) if seen.beyond is not None else None
        if cover is None:
            t = seen.ready_time if seen.ready_time is not None else self.cfg.ready_time
            cover = max(0.0, t - w)
        return base_stock(rate * cover, self.cfg.hit_rate)

    def _next(self, current: int, sizes: Sizes, now: float, seen: Signals) -> int:
        c = self.cfg
        t = seen.ready_time if seen.ready_time is not None else c.ready_time
        stable_rate, burst_rate = self.rate(now, c.window), self.rate(now, c.panic_window)
        stable, burst = self._need(stable_rate, seen), self._need(burst_rate, seen)
        if burst > current and burst >= c.panic_threshold * max(current, 1):
            self.panic_until = now + c.window
        panic = now < self.panic_until
        self._remember(now, stable)  # the stable need only: the panic window's is noise at a low rate
        while self._wanted[0][0] < now - c.scale_down_delay:
            self._wanted.popleft()
        desired = max(stable, burst, current) if panic else stable
        how = (f"panic: {burst_rate:.3g} claims/s over {c.panic_window:g}s" if panic
               else f"{stable_rate:.3g} claims/s over {c.window:g}s") + f", ready in {t:.3g}s (mean)"
        if self.rule is not None and self.rule.min > current:
            self.reason = f"up: schedule '{self.rule.cron.text}' min {self.rule.min}"
            current = self._bounded(current, sizes)  # the floor first; the rate may ask for more still
        if desired > current:
            step = desired if not c.max_step_up else min(desired, current + c.max_step_up)
            self.reason = f"up: {how}"
            return self._bounded(step, sizes)
        floor = self._wanted[0][1]  # the most the stable rate needed over scale_down_delay
        if floor < current and not panic:  # a panic holds until a window has passed since it began
            step = floor if not c.max_step_down else max(floor, current - c.max_step_down)
            new = self._bounded(step, sizes)
            if new < current:
                self.reason = f"down: {how}, lower for {c.scale_down_delay:g}s"
            return new
        return self._bounded(current, sizes)

    def _bounded(self, n: int, sizes: Sizes) -> int:
        lo = sizes.min_ready if self.cfg.min is None else max(self.cfg.min, sizes.min_ready)
        if self.rule is not None:
            lo = max(lo, self.rule.min)
        hi = sizes.max_ready if self.cfg.max is None else min(self.cfg.max, sizes.max_ready)
        return max(lo, min(n, hi))
