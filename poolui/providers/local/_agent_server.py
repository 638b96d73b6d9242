"""The sandbox's own command (its server), as the agent's child: the shell starts it beside the agent and
becomes the agent (see _agent.py), and a reset of a reuse pool starts it again, fresh.

A reset kills the server with everything else the sandbox ran, because a process that a claim's code could
reach (the same uid: its /proc/PID/mem) may carry that claim's implant to the next one; a new process
from the same argv, env and work directory carries nothing. The sandbox still ends when its server ends
by itself: the agent leaves then, and with it bubblewrap's child. Standard library only.
"""

from __future__ import annotations

import os
import subprocess
import threading
from typing import Any


class Server:
    """The server's pid and pidfd, which a restart swaps while the agent's loop watches them."""

    def __init__(self, pid: int, argv: list[str], work: str) -> None:
        self.pid, self.argv, self.work = pid, argv, work
        self.fd = os.pidfd_open(pid)
        self.restarting = False
        self.retired: list[int] = []  # old pidfds, closed by the loop (never under its select)
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()

    def ended_by_itself(self, fd: int) -> bool:
        """The pidfd `fd` the loop saw readable means the sandbox's end (not a restart's kill)."""
        with self.lock:
            return fd == self.fd and not self.restarting

    def tidy(self) -> None:
        """Close the pidfds of servers a restart replaced (called by the loop, between two selects)."""
        with self.lock:
            old, self.retired = self.retired, []
        for fd in old:
            os.close(fd)

    def end_as_it_did(self) -> int:
        """Reap the server that ended by itself; its exit status, to be the agent's (a server killed by a
        signal: the agent ends by the same signal), so the sandbox ends as its command did."""
        import signal

        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return 0
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1

    def stopping(self) -> None:
        """A reset is about to kill the server: its death is not the sandbox's end."""
        with self.lock:
            self.restarting = True

    def start_again(self, user: dict[str, Any]) -> str:
        """Reap the killed server and start a new one as the sandbox's user; '' or why it could not."""
        try:
            if self.proc is not None:
                self.proc.wait(5)
            else:
                os.waitpid(self.pid, 0)  # the first server is the shell's background job: the agent's child
        except (ChildProcessError, subprocess.TimeoutExpired):
            pass
        try:
            proc = subprocess.Popen(self.argv, cwd=self.work, stdin=subprocess.DEVNULL, start_new_session=True,
                                    close_fds=True, **user)
        except OSError as e:
            return f"the server could not start again: {self.argv[0]}: {e.strerror or e}"
        with self.lock:
            self.retired.append(self.fd)
            self.pid, self.proc, self.fd = proc.pid, proc, os.pidfd_open(proc.pid)
            self.restarting = False
        return ""
