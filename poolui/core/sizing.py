"""How many ready sandboxes a pool aims at now (its setpoint), kept apart from the operator's sizes.

The operator's sizes are the pool file's `target_ready`, `min_ready` and `max_ready` (a resize changes them
at run time). The setpoint is what refill creates toward and trims down to, counting creates in flight. A
policy proposes it: `Static`, the operator's target; `autoscale.Autoscaler`, from the claim rate. Whatever a
policy proposes, the setpoint stays within min_ready..max_ready, so `max_ready` is the most ready sandboxes
a pool keeps, and no policy takes a pool below the level `check` calls critical. A resize is the operator
speaking: their target wins over the policy until the pool is resumed.

Nothing here changes a Pool: it reads sizes, the clock and what `observe` gathers, so it is unit-tested
alone (tests/test_sizing.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..clock import Clock

if TYPE_CHECKING:
    from .pool import Pool


class Sizes(Protocol):
    """The operator's sizes: a PoolConfig has them (from the pool file, or as a resize left them)."""

    @property
    def target_ready(self) -> int: ...
    @property
    def min_ready(self) -> int: ...
    @property
    def max_ready(self) -> int: ...


@dataclass(frozen=True)
class Signals:
    """What a policy may go by besides the time and the claims it is told of; gathered only when a policy
    asks (refill asks for the setpoint on every claim, a policy looks once a second)."""

    wall: float = 0.0  # wall time, for schedules
    ready_time: float | None = None  # the mean create-to-ready time, as measured (None: nothing measured yet)
    degraded: bool = False  # creates keep failing: a policy must not ask for more
    # w -> the mean of max(0, T - w) over the measured create-to-ready times T (None: nothing measured yet);
    # without it, a policy takes every create as lasting ready_time
    beyond: Callable[[float], float | None] | None = None


class Policy(Protocol):
    """Proposes how many ready sandboxes a pool should have; the bounds are applied after it."""

    name: str
    reason: str  # why it wants what it last proposed, for the event of a change

    def want(self, sizes: Sizes, now: float, seen: Callable[[], Signals]) -> int:
        """Ready sandboxes wanted at monotonic time `now` (creates in flight count toward them); `seen()`
        gathers the signals, when the policy needs them."""
        ...

    def claimed(self, now: float) -> None:
        """A claim was asked for at monotonic time `now` (a claim key's retry is not a new claim)."""
        ...


class Static:
    """The operator's target as it stands: the pool file's target_ready, or a resize's."""

    name = "static"
    reason = "target_ready"

    def want(self, sizes: Sizes, now: float, seen: Callable[[], Signals]) -> int:
        """target_ready, whatever happens."""
        return sizes.target_ready

    def claimed(self, now: float) -> None:
        """Claims do not move a static target."""


def observe(pool: Pool) -> Signals:
    """A pool's signals for its policy, read when the setpoint is asked for: running means over the last
    4,096 create-to-ready times, O(1) each (no sort)."""
    times = pool.metrics.create_to_ready
    return Signals(pool.clock.time(), times.mean(), bool(pool.degraded_reason), times.mean)


class Sizing:
    """One pool's setpoint: its policy, and whether an operator's resize overrides it."""

    def __init__(self, clock: Clock, policy: Policy | None = None,
                 signals: Callable[[], Signals] | None = None) -> None:
        self.clock = clock
        self.policy: Policy = policy or Static()
        self.signals = signals or (lambda: Signals(clock.time()))
        self.manual = False  # a resize set the target: it wins over the policy until resumed()
        self.value: int | None = None  # the last setpoint given, and the last one told of (news())
        self._told: int | None = None

    @property
    def source(self) -> str:
        """Who sets the setpoint now: "manual" after a resize, else the policy's name."""
        return "manual" if self.manual else self.policy.name

    def setpoint(self, sizes: Sizes) -> int:
        """The ready sandboxes to aim at now: what the source wants, within min_ready..max_ready."""
        want = sizes.target_ready if self.manual else self.policy.want(sizes, self.clock.monotonic(), self.signals)
        self.value = max(sizes.min_ready, min(want, sizes.max_ready))
        return self.value

    def claimed(self) -> None:
        """A claim was asked for: the policy may follow the claim rate."""
        self.policy.claimed(self.clock.monotonic())

    def news(self) -> str | None:
        """How the setpoint moved since the last call, and why, when the policy moved it (a resize says
        so in its own event); None when it did not move."""
        old, self._told = self._told, self.value
        if old is None or old == self.value or self.manual or isinstance(self.policy, Static):
            return None
        return f"{old} -> {self.value}: {self.policy.reason}"

    def resized(self) -> None:
        """The operator set the sizes: their target is the setpoint until resumed()."""
        self.manual = True

    def resumed(self) -> None:
        """The operator handed sizing back to the policy (a Static policy reads the same target)."""
        self.manual = False
