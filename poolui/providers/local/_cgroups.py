"""The watchdog's cgroup work for one sandbox: make its cgroups and set their limits, list and remove them,
and pay the kernel's cost of the first move into a cgroup ahead of time. Standard library only, like the
watchdog, whose start is on the cold start's critical path.

What a start costs here, measured on a host with v1 memory and pids and a v2 hierarchy without them: a
refused write to a v2 cgroup.subtree_control about 1.1 ms (four of them a start, until only what the
hierarchy has and the parent does not delegate yet was asked for); the first move of a process into a
cgroup for a while about 6 ms, as the kernel waits for an RCU grace period before it blocks forks
(cgroup_threadgroup_rwsem), while a move soon after another finds that wait done.
"""

from __future__ import annotations

import _thread
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal  # signal's enums cost ~8 ms to import

CONTROLLERS = {"memory", "pids"}  # the ones a sandbox's limits need (memory.max, pids.max)
_early: _thread.LockType | None = None  # start_early's: released once the directories are made


def write(path: str, value: object) -> bool:
    """One write(2) of `value` to an existing file; False when refused (a buffered file tries twice)."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return False
    try:
        os.write(fd, str(value).encode())
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def start_early(argv: list[str]) -> None:
    """The watchdog's first step, before its own imports: close every descriptor it did not open (none of
    the controller's may reach the sandbox), then make the sandbox's cgroup directories (argv's cg=) and
    start the kernel's grace period for cgroup moves, on a thread. The sandbox's own move into its
    cgroups, right after the fork, then finds that wait done instead of spending ~6 ms in it, as the
    imports and the rest of the preparing (~8 ms) go on meanwhile. The thread moves itself into the v1
    cgroup it is already in (`tasks` moves one thread), which changes nothing else."""
    global _early
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    words = argv[1:argv.index("--")] if "--" in argv else argv[1:]
    dirs = [w[3:] for w in words if w.startswith("cg=")]
    base = next((d.split("/poolui/")[0] for d in dirs if "/poolui/" in d), "")
    tasks = _high_fd(base + "/tasks") if base else -1
    made = _thread.allocate_lock()
    made.acquire()

    def work() -> None:
        try:
            for d in dirs:
                _mkdir(d)
        finally:
            made.release()
        if tasks >= 0:
            try:
                os.write(tasks, str(_thread.get_native_id()).encode())
            except OSError:
                pass
            os.close(tasks)

    # Born with every signal blocked (a thread inherits its creator's mask): the watchdog's SIGTERM must
    # reach the main thread, which blocks it while it forks the sandbox and records its pid.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        _thread.start_new_thread(work, ())
    except RuntimeError:
        return  # make_cgroups makes them
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    _early = made


def _high_fd(path: str) -> int:
    """`path` open for writing at a number far above the ones the watchdog places (3-8) and opens next: a
    descriptor of the thread's may not be one the main thread closes or replaces meanwhile. -1 if refused."""
    import fcntl

    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return -1
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)
    except OSError:
        return -1
    finally:
        os.close(fd)


def early() -> bool:
    """start_early() ran (and closed the inherited descriptors)."""
    return _early is not None


def _mkdir(d: str) -> None:
    for _ in range(5):  # another sandbox's cleanup may remove an empty parent between two mkdirs
        try:
            os.makedirs(d, exist_ok=True)
            return
        except FileNotFoundError:
            continue
        except OSError:
            return


def make_cgroups(dirs: list[str], memory: int, pids: int) -> tuple[list[str], bool]:
    """Create the sandbox's cgroups (best effort) and set its limits; returns (made, memory limited)."""
    if _early is not None:
        _early.acquire(timeout=10)  # start_early's thread made them
    made, mem_limited = [], False
    for d in dirs:
        if not os.path.isdir(d):
            _mkdir(d)
        if not os.path.isdir(d):
            continue
        made.append(d)
        if os.path.exists(d + "/cgroup.subtree_control"):
            _enable_v2_controllers(d)
        if memory:
            if write(d + "/memory.limit_in_bytes", memory):
                mem_limited = True
                write(d + "/memory.memsw.limit_in_bytes", memory)  # no way around the limit through swap
            elif write(d + "/memory.max", memory):
                mem_limited = True
                write(d + "/memory.swap.max", 0)
        if pids:
            write(d + "/pids.max", pids)
    return made, mem_limited


def _enable_v2_controllers(d: str) -> None:
    """On a pure v2 host memory.max/pids.max appear only when every parent delegates them (may fail). Asked
    only for what the hierarchy has and the sandbox's parent does not delegate yet: after the first
    sandbox, or on a v2 hierarchy without them, there is nothing to write."""
    parts = d.split("/")
    top = parts.index("poolui") if "poolui" in parts else len(parts)
    have = set(_read("/".join(parts[:-1]) + "/cgroup.subtree_control").split())
    missing = CONTROLLERS - have
    if missing:
        missing &= set(_read("/".join(parts[:top]) + "/cgroup.controllers").split())
    if not missing:
        return
    ask = " ".join(f"+{c}" for c in sorted(missing))
    for i in range(top, len(parts)):
        write("/".join(parts[:i]) + "/cgroup.subtree_control", ask)


def procs(d: str) -> list[int]:
    """The pids in cgroup `d` ([] when it is gone)."""
    try:
        with open(d + "/cgroup.procs") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def remove_cgroups(dirs: list[str], wait: float = 2.0) -> None:
    """rmdir each sandbox cgroup (EBUSY until its last process is gone). Parents stay: recreating them
    for every sandbox makes the next one's cgroup join slower."""
    deadline = time.monotonic() + wait
    for d in dirs:
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.002)
