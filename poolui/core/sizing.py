"""How many ready sandboxes a pool aims at now (its setpoint), kept apart from the operator's sizes.

The operator's sizes are the pool file's `target_ready`, `min_ready` and `max_ready` (a resize changes them
at run time). The setpoint is what refill creates toward and trims down to. A policy proposes it: `Static`,
the operator's target; later an autoscaler or a schedule. Whatever a policy proposes, the setpoint stays
within min_ready..max_ready, so `max_ready` is the most ready sandboxes a pool keeps, and no policy takes a
pool below the level `check` calls critical. A resize is the operator speaking: their target wins over the
policy until the pool is resumed.

Nothing here knows a Pool: it reads sizes and the clock, so it is unit-tested alone (tests/test_sizing.py).
"""

from __future__ import annotations

from typing import Protocol

from ..clock import Clock


class Sizes(Protocol):
    """The operator's sizes: a PoolConfig has them (from the pool file, or as a resize left them)."""

    @property
    def target_ready(self) -> int: ...
    @property
    def min_ready(self) -> int: ...
    @property
    def max_ready(self) -> int: ...


class Policy(Protocol):
    """Proposes how many ready sandboxes a pool should have; the bounds are applied after it."""

    name: str

    def want(self, sizes: Sizes, now: float) -> int:
        """Ready sandboxes wanted at monotonic time `now`."""
        ...


class Static:
    """The operator's target as it stands: the pool file's target_ready, or a resize's."""

    name = "static"

    def want(self, sizes: Sizes, now: float) -> int:
        """target_ready, whatever the time."""
        return sizes.target_ready


class Sizing:
    """One pool's setpoint: its policy, and whether an operator's resize overrides it."""

    def __init__(self, clock: Clock, policy: Policy | None = None) -> None:
        self.clock = clock
        self.policy: Policy = policy or Static()
        self.manual = False  # a resize set the target: it wins over the policy until resumed()

    @property
    def source(self) -> str:
        """Who sets the setpoint now: "manual" after a resize, else the policy's name."""
        return "manual" if self.manual else self.policy.name

    def setpoint(self, sizes: Sizes) -> int:
        """The ready sandboxes to aim at now: what the source wants, within min_ready..max_ready."""
        want = sizes.target_ready if self.manual else self.policy.want(sizes, self.clock.monotonic())
        return max(sizes.min_ready, min(want, sizes.max_ready))

    def resized(self) -> None:
        """The operator set the sizes: their target is the setpoint until resumed()."""
        self.manual = True

    def resumed(self) -> None:
        """The operator handed sizing back to the policy (a Static policy reads the same target)."""
        self.manual = False
