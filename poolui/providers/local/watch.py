"""The controller's view of one watchdog: a pidfd for its exit and, when we started it, its report pipe."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable


class Watch:
    """One watchdog: a pidfd for its exit and, when we started it, the pipe its reports come on."""

    def __init__(self, member_id: str, pid: int, pidfd: int, out_fd: int | None,
                 on_end: Callable[[Watch], None]) -> None:
        self.member_id, self.pid, self.pidfd, self.out_fd = member_id, pid, pidfd, out_fd
        self.own = out_fd is not None  # we spawned it, so we reap it
        self.on_end = on_end
        self.loop = asyncio.get_running_loop()
        self.head: bytes | None = None  # the first line: "started ..." or "failed ..."
        self.rest = bytearray()
        self.got_head = asyncio.Event()
        self.ended = asyncio.Event()
        self.started = self.terminating = False
        self.loop.add_reader(pidfd, self._exited)
        if out_fd is not None:
            os.set_blocking(out_fd, False)
            self.loop.add_reader(out_fd, self._read)

    def _take(self, data: bytes) -> None:
        self.rest += data
        if self.head is None and b"\n" in self.rest:
            head, _, rest = bytes(self.rest).partition(b"\n")
            self.head, self.rest = head, bytearray(rest)
            self.got_head.set()
        if len(self.rest) > 16384:
            del self.rest[:-16384]

    def _read(self) -> bool:
        assert self.out_fd is not None
        try:
            data = os.read(self.out_fd, 65536)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if data:
            self._take(data)
            return True
        self._close_out()
        return False

    def _close_out(self) -> None:
        if self.out_fd is not None:
            self.loop.remove_reader(self.out_fd)
            os.close(self.out_fd)
            self.out_fd = None

    def _exited(self) -> None:
        self.loop.remove_reader(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = -1
        if self.own:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, os.WNOHANG)
        while self.out_fd is not None and self._read():
            pass  # everything it wrote is in the pipe now
        self._close_out()
        self.got_head.set()
        self.ended.set()
        self.on_end(self)

    def signal(self, sig: int) -> None:
        if self.pidfd >= 0:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.pidfd, sig)

    def close(self) -> None:
        """Stop watching; the watchdog and its sandbox go on."""
        self._close_out()
        if self.pidfd >= 0:
            self.loop.remove_reader(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = -1

    def describe(self) -> str:
        """Why it ended, for people: the status and the tail of the sandbox's output."""
        header, _, tail = bytes(self.rest).partition(b"\n")
        parts = header.decode(errors="replace").split("\t")
        if parts[0] != "ended":
            text = bytes(self.rest).decode(errors="replace").strip()[-500:]
            return f"its watchdog ended ({text})" if text else "its watchdog ended"
        reason, status = (parts + ["", ""])[1:3]
        what = {"ttl": "killed at its hard TTL", "terminated": "terminated",
                "oom": "oom: out of memory (limits.memory); the whole sandbox was killed",
                "firewall": "its egress firewall could not be given an address this machine gained, so it "
                            "was ended"}.get(reason, status)
        out = tail.decode(errors="replace").strip()
        return what + (f"; last output: {out[-500:]}" if out else "")


async def wait_set(event: asyncio.Event, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
        return True
    except TimeoutError:
        return False
