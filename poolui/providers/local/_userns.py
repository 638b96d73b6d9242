"""Two users inside a sandbox, when the controller is root: the agent as the user namespace's root, and the
sandbox's code as an unprivileged user that cannot reach it.

bubblewrap, run as the agent's host uid (so the namespace is owned by a uid nothing else on the host
uses), makes the sandbox's user namespace and waits (`--userns-block-fd`) while the watchdog, still
root on the host, writes a mapping of two ids: 0 inside is the agent's host uid, the sandbox's uid
inside is the same number outside (nobody, 65534, by default). An unprivileged bubblewrap could map only
one. The agent then holds a few capabilities of that namespace only (`CAPS`), and everything the
sandbox's code runs as has none: it can neither signal the agent, nor open its `/proc/PID/mem` or `fd`,
nor write anything the agent owns. Standard library only, like the watchdog.
"""

from __future__ import annotations

import os
import select
import time

BLOCK_FD, INFO_FD = 7, 8  # bubblewrap's --userns-block-fd and --info-fd, as the sandbox gets them
# What the agent needs, in the sandbox's namespace only: run commands as the sandbox's user (SETUID,
# SETGID), end them (KILL), read their markers in /proc (SYS_PTRACE; the ptrace call itself stays
# refused by the seccomp filter), and empty the writable places whatever their modes (DAC_OVERRIDE,
# FOWNER, CHOWN for the work directory).
CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_CHOWN")
WAIT = 5.0


def bwrap_args() -> list[str]:
    """bubblewrap's part: a user namespace whose mapping the watchdog writes, the agent as its root."""
    caps = [x for c in CAPS for x in ("--cap-add", c)]
    return ["--unshare-user", "--userns-block-fd", str(BLOCK_FD), "--info-fd", str(INFO_FD), "--uid", "0",
            "--gid", "0", *caps]


def pipes() -> tuple[int, int]:
    """The two pipes, their sandbox ends at BLOCK_FD and INFO_FD; returns the watchdog's ends
    (info's read end, block's write end)."""
    import fcntl

    def high(fd: int) -> int:  # above the fixed numbers, so placing one end never closes another
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 16)
        os.close(fd)
        return moved

    block_r, block_w, info_r, info_w = map(high, (*os.pipe(), *os.pipe()))
    for fd, at in ((block_r, BLOCK_FD), (info_w, INFO_FD)):
        os.dup2(fd, at)
        os.close(fd)
    return info_r, block_w


def _child_pid(info: bytes) -> int:
    """bubblewrap's '{"child-pid": N, ...}', read without json (its import costs the watchdog, and so every
    cold start, about 3 ms); 0 until the number is whole."""
    _, key, rest = info.partition(b'"child-pid"')
    digits = rest.lstrip(b": \t\n")
    n = len(digits) - len(digits.lstrip(b"0123456789"))
    return int(digits[:n]) if key and 0 < n < len(digits) else 0


def write_maps(info_r: int, block_w: int, agent: tuple[int, int], sandbox: tuple[int, int]) -> None:
    """Read bubblewrap's child pid, write its uid and gid maps, and let it go on."""
    deadline = time.monotonic() + WAIT
    data = b""
    try:
        while True:
            child = _child_pid(data)
            if child:
                break
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([info_r], [], [], left)[0]:
                raise OSError("bubblewrap did not say its child's pid")
            chunk = os.read(info_r, 4096)
            if not chunk:
                raise OSError("bubblewrap ended before its user namespace was mapped")
            data += chunk
        for name, i in (("uid_map", 0), ("gid_map", 1)):
            with open(f"/proc/{child}/{name}", "w") as f:
                f.write(f"0 {agent[i]} 1\n{sandbox[i]} {sandbox[i]} 1\n")
        os.write(block_w, b"1")
    finally:
        # info_r stays open for the watchdog's life: bubblewrap may still be writing the rest of its
        # info (more fields, the closing brace), and a write to a pipe nobody reads kills it (SIGPIPE).
        os.close(block_w)
