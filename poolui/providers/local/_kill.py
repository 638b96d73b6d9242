"""The SIGKILL loop the watchdog and the agent share (standard library only: both start on every create)."""

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
