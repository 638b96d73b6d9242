"""The SIGKILL loop the watchdog and the agent share, and the count of memory kills the watchdog watches
(standard library only: both start on every create)."""

from __future__ import annotations

import os
import signal
import time

TYPE_CHECKING = False  # typing costs milliseconds to import, on every sandbox's start
if TYPE_CHECKING:
    from collections.abc import Callable


def kill_all(find: Callable[[], list[int]], wait: float) -> list[int]:
    """SIGKILL what `find()` lists until it lists nothing; what is still there after `wait` seconds."""
    deadline = time.monotonic() + wait
    while left := find():
        if time.monotonic() > deadline:
            return left
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.002)
    return []


def oom_kills(cgroups: list[str]) -> int:
    """How many processes the kernel killed for the sandbox's memory limit (v1 oom_control, v2 events)."""
    n = 0
    for d in cgroups:
        for name in ("memory.oom_control", "memory.events"):
            try:
                with open(f"{d}/{name}") as f:
                    n += sum(int(line.split()[1]) for line in f if line.startswith("oom_kill "))
            except (OSError, ValueError, IndexError):
                pass
    return n
