"""The SIGKILL loop the watchdog and the agent share, the count of memory kills the watchdog watches, and
the removal of a dead sandbox's directory (standard library only: both start on every create)."""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # typing costs milliseconds to import, on every sandbox's start
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
else:
    import _signal as signal  # signal's enums cost ~8 ms to import


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


def rmtree(top: str) -> None:
    """Remove a directory tree without following symlinks (shutil costs ~3 ms to import)."""
    for _, dirs, files, fd in os.fwalk(top, topdown=False):  # fd is valid only during its own step
        for name in files:
            try:
                os.unlink(name, dir_fd=fd)
            except OSError:
                pass
        for name in dirs:
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                try:
                    os.unlink(name, dir_fd=fd)  # a symlink to a directory
                except OSError:
                    pass
    try:
        os.rmdir(top)
    except OSError:
        pass


def end_child(pid: int) -> None:
    """SIGKILL a child of this process (a helper of the watchdog's: the forwarder, pasta) and reap it."""
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
