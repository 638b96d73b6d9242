"""An asyncio event loop on virtual time: when nothing is ready to run, time jumps to the next timer.

The real engine (its loops, claim deadlines, backoff, TTLs) then runs hours of pool life in milliseconds,
exactly and repeatably: tests drive time this way instead of waiting on it, and so does the simulator.
Code that waits on something other than timers (a socket, a subprocess, a thread) still works, but time
does not stop for it: use this only where everything waits on the loop's own timers.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """select() that never sleeps for a timer: it moves the loop's virtual time to it instead."""

    loop: VirtualTimeLoop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:  # no timer at all: only I/O can wake the loop, so wait for it for real
            return super().select(None)
        self.loop.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 1000.0) -> None:
        selector = _JumpingSelector()
        self.now = start
        super().__init__(selector)
        selector.loop = self

    def time(self) -> float:
        return self.now


def run(main: Coroutine[Any, Any, T], start: float = 1000.0) -> T:
    """asyncio.run on virtual time."""
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(start)) as runner:
        return runner.run(main)
