"""What a pool's sandboxes cost: sandbox-seconds by what they were doing, and the price on them.

`Tally` keeps the number of members in each state (the pool asks it on every claim, so no scan) and, on
the engine's clock, the sandbox-seconds spent in each: when a state's count changes, the time since its
last change times the count is added, which is exactly the sum over members of their time in that state.
So on virtual time a simulated day gets the same numbers a real one would.

A sandbox's life is counted from its create (or adoption after a restart: what came before is not known
here) to its end, in four parts, every one of which a provider bills:
- warming: being created, probed for readiness, or reset between claims of a reuse pool;
- idle: ready and not claimed, the warmth a pool keeps for the next claim;
- claimed: serving a claim;
- ending: failed or being terminated, until the provider says it is gone.

`report` puts a pool's price on them: `price_per_hour` per sandbox (the pool file's, or for Modal its cpu
and memory at the rates the pool file gives; poolui never fetches a price)."""

from __future__ import annotations

from typing import Any

from ..clock import Clock
from .model import MemberState

S = MemberState
PART = {S.CREATING: "warming", S.STARTING: "warming", S.READY: "idle", S.CLAIMED: "claimed",
        S.FAILED: "ending", S.TERMINATING: "ending"}
PARTS = ("warming", "idle", "claimed", "ending")


class Tally:
    """Members per state now, and sandbox-seconds per state so far. Changed only by core/pool.py."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        start = clock.monotonic()
        self.n: dict[MemberState, int] = dict.fromkeys(MemberState, 0)
        self.seconds: dict[MemberState, float] = dict.fromkeys(MemberState, 0.0)
        self.since: dict[MemberState, float] = dict.fromkeys(MemberState, start)  # its count last changed

    def __getitem__(self, state: MemberState) -> int:
        return self.n[state]

    def move(self, was: MemberState | None, now: MemberState | None) -> None:
        """One member went from `was` to `now` (None: it was not counted before, or is gone). Only these two
        states' seconds are brought up to date: a move is on every claim's path."""
        t = self.clock.monotonic()
        if was is not None:
            self._count(was, t, -1)
        if now is not None:
            self._count(now, t, 1)

    def _count(self, state: MemberState, t: float, by: int) -> None:
        n = self.n[state]
        self.seconds[state] += n * (t - self.since[state])
        self.since[state] = t
        self.n[state] = n + by

    def parts(self) -> dict[str, float]:
        """Sandbox-seconds up to now, by part of a sandbox's life (PARTS)."""
        t = self.clock.monotonic()
        out = dict.fromkeys(PARTS, 0.0)
        for state, part in PART.items():
            out[part] += self.seconds[state] + self.n[state] * (t - self.since[state])
        return out


def report(tally: Tally, price_per_hour: float | None, claims: int) -> dict[str, Any]:
    """A pool's cost since this manager started: sandbox-seconds by part, and with a price, what they cost,
    what the ready sandboxes cost per hour now and what a claim cost. Sums are in the currency the price is
    written in; None where there is nothing to divide by or no price."""
    parts = tally.parts()
    total = sum(parts.values())
    price = price_per_hour
    cost = None if price is None else total * price / 3600

    def priced(seconds: float) -> float | None:
        return None if price is None else seconds * price / 3600

    return {
        "sandbox_seconds": parts,
        "price_per_hour": price,
        "cost": cost,
        "idle_cost": priced(parts["idle"]),
        "idle_cost_per_hour": None if price is None else tally[S.READY] * price,
        "claims": claims,
        "cost_per_claim": cost / claims if cost is not None and claims else None,
        "waste_ratio": parts["idle"] / total if total > 0 else None,
    }
