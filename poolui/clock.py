"""Time for the engine, injected: deadlines use the monotonic clock, shown times wall time.

Everything that waits in the engine waits through a Clock (sleep, timeout), so a test or the simulator can
run the real engine on virtual time (poolui.virtual_time) and drive hours in milliseconds.
"""

from __future__ import annotations

import asyncio
import time


class Clock:
    """Real time: time.monotonic / time.time, and asyncio's own sleep and timeout."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def timeout(self, seconds: float | None) -> asyncio.Timeout:
        """A context manager that raises TimeoutError after `seconds` (None: never)."""
        return asyncio.timeout(seconds)


class LoopClock(Clock):
    """The running event loop's time, whatever drives it (a virtual-time loop in tests and the simulator);
    wall time moves with it from where it started."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wall: float | None = None) -> None:
        self._loop = loop
        self._mono0 = loop.time()
        self._wall0 = time.time() if wall is None else wall

    def monotonic(self) -> float:
        return self._loop.time()

    def time(self) -> float:
        return self._wall0 + (self._loop.time() - self._mono0)


class FrozenClock(Clock):
    """A clock that moves only when told to: snapshot tests and TTL arithmetic (waits stay real)."""

    def __init__(self, wall: float = 1_800_000_000.0, mono: float = 1000.0) -> None:
        self._wall = wall
        self._mono = mono

    def monotonic(self) -> float:
        return self._mono

    def time(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds
