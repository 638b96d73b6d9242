"""An autoscaling policy (sizing.Policy): the setpoint follows the claim rate.

What it uses, and why. A taken sandbox is replaced at once, and the replacement is ready after the pool's
create-to-ready time T; a setpoint of S (ready plus creating, as refill counts it) is then the base stock of
an (S-1, S) inventory. With claims arriving as a Poisson stream of rate r, the creates outstanding when a
claim arrives are Poisson with mean r*T (Palm's theorem, whatever T's distribution), and that claim finds a
ready sandbox when fewer than S are outstanding. So S is the smallest number with P(Poisson(r*T) < S) >=
hit_rate. Little's law gives the mean, r*T, the floor; the Poisson quantile over it is the burst margin,
larger in proportion for a small pool, where chance matters most. With max_wait, a claim that waits at
most that long counts as served: then only T - max_wait of the lead time needs covering. T is the p95 of
the measured create-to-ready time (ready_time until there is one): the slow creates are the ones that
leave claims waiting.

How it moves. The rate is taken over `window` (stable) and `panic_window` (a burst). Up: at once to what
the stable rate needs; when the burst rate needs panic_threshold times the setpoint or more, it panics:
up at once to what the burst needs, and never down until a whole `window` has passed since it last
panicked (Knative's rule). Down: only to the most it wanted over the last scale_down_delay (the Kubernetes
HPA's stabilisation), so one quiet minute does not throw away warm sandboxes. Step limits bound each move;
a degraded pool is not scaled up (more creates would fail the same way); [min, max] bound the result,
and a schedule's rule in force raises the floor (config/autoscale.py).
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
        self._wanted: deque[tuple[float, int]] = deque()  # (when, what the rate needed), for scale-down
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
        if self._arrivals and self._arrivals[-1][0] == sec:
            self._arrivals[-1][1] += 1
        else:
            self._arrivals.append([sec, 1])

    def rate(self, now: float, seconds: float) -> float:
        """Claims per second over the last `seconds` whole seconds, the current one as far as it has gone
        (over less while the pool is younger than that)."""
        first = int(now) - int(seconds) + 1
        n = sum(c for sec, c in self._arrivals if sec >= first)
        since = first if self._started is None else max(first, self._started)
        return n / max(now - since, 1.0)

    def want(self, sizes: Sizes, now: float, seen: Callable[[], Signals]) -> int:
        """The setpoint for now: looked at again once per second of the clock, the same in between."""
        if self._started is None:
            self._started = now
        if self.value is None:
            self.value = self._bounded(sizes.target_ready, sizes)  # start from the operator's target,
            self._wanted.append((now, self.value))  # as if wanted: kept for scale_down_delay at least
        if self._at == int(now):
            return self.value
        self._at = int(now)
        while self._arrivals and self._arrivals[0][0] <= int(now) - int(self.cfg.window):
            self._arrivals.popleft()
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

    def _need(self, rate: float, ready_time: float) -> int:
        cover = max(0.0, ready_time - self.cfg.max_wait)
        return base_stock(rate * cover, self.cfg.hit_rate)

    def _next(self, current: int, sizes: Sizes, now: float, seen: Signals) -> int:
        c = self.cfg
        t = seen.ready_time if seen.ready_time is not None else c.ready_time
        stable_rate, burst_rate = self.rate(now, c.window), self.rate(now, c.panic_window)
        stable, burst = self._need(stable_rate, t), self._need(burst_rate, t)
        if burst > current and burst >= c.panic_threshold * max(current, 1):
            self.panic_until = now + c.window
        panic = now < self.panic_until
        desired = max(stable, burst, current) if panic else stable
        self._wanted.append((now, desired))
        while self._wanted and self._wanted[0][0] < now - c.scale_down_delay:
            self._wanted.popleft()
        how = (f"panic: {burst_rate:.3g} claims/s over {c.panic_window:g}s" if panic
               else f"{stable_rate:.3g} claims/s over {c.window:g}s") + f", ready in {t:.3g}s (p95)"
        if self.rule is not None and self.rule.min > current:
            self.reason = f"up: schedule '{self.rule.cron.text}' min {self.rule.min}"
            current = self._bounded(current, sizes)  # the floor first; the rate may ask for more still
        if desired > current:
            step = desired if not c.max_step_up else min(desired, current + c.max_step_up)
            self.reason = f"up: {how}"
            return self._bounded(step, sizes)
        floor = max(w for _, w in self._wanted)  # the most wanted over scale_down_delay
        if floor < current:
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
