"""The agent's side of the spawner (_spawner.py): start it, hand it a command, hear how the command ended.

A command the spawner cannot be handed (not started yet, not ready, gone) is started by the agent itself,
as before (Child): the spawner only makes execs cheaper, and a sandbox whose code kills it loses nothing
but that. One handed over (Spawned) is never started again: the command may have run. What the spawner
says of it is read when it is needed, never waited for before the command's output: the agent waits for
the output and for the answer pipe's close (the spawner said all), and reads the pid only for a timeout's
kill or to see the command's end for itself. A spawner that says something else, or nothing in time (no
pid within ANSWER_WAIT of the request, no status within ANSWER_WAIT of the command's end), costs that exec
an error (SpawnLost) and is killed. Standard library only.
"""

from __future__ import annotations

import marshal
import os
import select
import socket
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ANSWER_WAIT = 5.0  # seconds for the spawner to start a command, or say how one it watched ended
START_AFTER = 2  # execs run by the agent itself before it starts a spawner: one-shot runs never pay for it
INLINE = 48 * 1024  # a request up to this size goes in its control message (_spawner.INLINE takes as much)
LONGEST = 4096  # bytes a spawner may say of one command: two short lines


class SpawnLost(Exception):
    """The spawner took the command and did not say (in time, or in its words) how it went: it may or may
    not have started it."""


class SpawnFailed(Exception):
    """The spawner could not start the command (its `error` answer): as Popen's OSError, exit 127."""


class Child:
    """A command the agent started itself (a Popen), as the exec's pump sees one: bare descriptors, and
    its end seen on a pidfd."""

    answer_by = None  # the pump's due time for the spawner: none here

    def __init__(self, popen: Any) -> None:
        self.popen, self.pid = popen, popen.pid
        self.stdin = popen.stdin.fileno() if popen.stdin is not None else None
        self.stdout, self.stderr = popen.stdout.fileno(), popen.stderr.fileno()
        self.pidfd = os.pidfd_open(popen.pid)

    def watch(self, poller: Any) -> None:
        """Register with the pump's poll what tells the command's end."""
        poller.register(self.pidfd, select.POLLIN)

    def ready(self, fd: int, poller: Any) -> bool:
        """Its pidfd fired: it ended."""
        return True

    def quiet(self, poller: Any) -> bool:
        """Both outputs closed: its pidfd says when it ends."""
        return False

    def overdue(self, poller: Any) -> bool:
        """Never due (answer_by is None)."""
        return False

    def close_stdin(self) -> None:
        """All of stdin is in: the command sees its end."""
        self.popen.stdin.close()

    def kill_pid(self) -> int:
        """The session a timeout's kill takes."""
        return int(self.pid)

    def wait(self) -> int:
        """The command's returncode, as Popen's."""
        return int(self.popen.wait())

    def close(self) -> None:
        """Its pidfd and pipes, once the exec is done."""
        os.close(self.pidfd)
        for f in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if f is not None and not f.closed:
                f.close()


class Spawner:
    """The one spawner of this agent, started lazily and again after it is gone (a reset kills it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.control: socket.socket | None = None
        self.proc: Any = None
        self.ready = False
        self.execs = 0

    def usable(self) -> bool:
        """Started and said it is ready (never waits for it: a command goes the agent's way meanwhile)."""
        with self.lock:
            if self.control is None:
                return False
            if not self.ready:
                try:
                    self.ready = self.control.recv(1, socket.MSG_DONTWAIT) == b"r"
                except BlockingIOError:
                    return False
                except OSError:
                    self._forget()
            return self.ready

    def ran_one(self, user: dict[str, Any], work: str) -> None:
        """An exec ran without the spawner: start it once enough did (after the answer: off its path)."""
        with self.lock:
            self.execs += 1
            if self.control is not None or self.execs < START_AFTER:
                return
            import subprocess
            import sys

            import _spawner

            code = marshal.dumps(_spawner.__loader__.get_code("_spawner")).hex()
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                self.proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", "import marshal, sys; exec(marshal.loads(bytes.fromhex("
                     "sys.argv.pop())))", str(theirs.fileno()), code], cwd=work, stdin=subprocess.DEVNULL,
                    start_new_session=True, close_fds=True, pass_fds=(theirs.fileno(),), **user)
            except OSError:
                mine.close()
                return
            finally:
                theirs.close()
            self.control, self.ready = mine, False

    def gone(self) -> None:
        """Kill and reap the spawner (a reset, or it stopped answering): the next exec goes without it."""
        with self.lock:
            self._forget()

    def _forget(self) -> None:
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(2)
            except Exception:  # gone already, or stopped beyond reach: the reset's kill loop sees to it
                pass
        if self.control is not None:
            self.control.close()
        self.control, self.proc, self.ready, self.execs = None, None, False, 0

    def spawn(self, argv: list[str], cwd: str, env: dict[str, str], stdin: bool) -> Spawned | None:
        """The command handed to the spawner (not waited for), None when it could not be (the spawner is
        gone: the agent starts it itself)."""
        body = marshal.dumps({"argv": argv, "cwd": cwd, "env": env})  # to the spawner only: never loaded back
        inline = len(body) <= INLINE
        answer, answer_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # read when needed, never waited on
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if stdin else (None, None)
        ours, separate = socket.socketpair() if not inline else (None, None)
        theirs = [answer_w, out_w, err_w, *([in_r] if in_r is not None else []),
                  *([separate.fileno()] if separate is not None else [])]
        try:
            if self.control is None:
                raise BrokenPipeError
            socket.send_fds(self.control, [(b"m" if inline else b"s") + (b"1" if stdin else b"0") +
                                           (body if inline else b"")], theirs)
        except OSError:
            for fd in (answer, out_r, err_r, in_w):
                if fd is not None:
                    os.close(fd)
            if ours is not None:
                ours.close()
            self.gone()
            return None
        finally:
            for fd in (answer_w, out_w, err_w, in_r):
                if fd is not None:
                    os.close(fd)
            if separate is not None:
                separate.close()
        proc = Spawned(self, answer, in_w, out_r, err_r)
        if ours is not None:
            with ours:
                try:
                    ours.settimeout(ANSWER_WAIT)
                    ours.sendall(len(body).to_bytes(4, "big") + body)
                except OSError as e:
                    proc.close()
                    raise proc.lost(f"it did not take the request: {e}") from None
        return proc


class Spawned:
    """A command the spawner started, as the exec's pump sees one: bare descriptors, and what the spawner
    says of it on its answer pipe (`pid N`, then `status S`; or `error WHY`; then the pipe's close). The
    spawner is the code's to speak for: its words are parsed as words and numbers only, and trusted with
    nothing beyond this exec."""

    def __init__(self, spawner: Spawner, answer: int, stdin: int | None, stdout: int, stderr: int) -> None:
        self.spawner, self.answer, self.stdin, self.stdout, self.stderr = spawner, answer, stdin, stdout, stderr
        self.said = b""
        self.pid: int | None = None
        self.status: int | None = None
        self.closed = False  # the spawner closed the answer pipe: it says nothing more
        self.listening = False  # the answer pipe is in the pump's poll (for its close only)
        self.pidfd: int | None = None  # the agent's own, once it watches the command's end itself
        self.ended = False  # the command's end, seen by the agent
        self.outputs_done = False  # both of the command's outputs have closed
        self.answer_by: float | None = time.monotonic() + ANSWER_WAIT  # the pid is due by then

    def watch(self, poller: Any) -> None:
        """Register with the pump's poll the answer pipe's close (POLLHUP: not its lines, read when needed)."""
        poller.register(self.answer, 0)
        self.listening = True

    def hear(self) -> None:
        """Read what the spawner said so far, without waiting, and parse it: SpawnLost for anything but its
        two lines, SpawnFailed for its error."""
        while not self.closed:
            try:
                chunk = os.read(self.answer, LONGEST)
            except BlockingIOError:
                break
            self.said += chunk
            self.closed = not chunk
            if len(self.said) > LONGEST:
                raise self.lost("it said too much")
        *lines, rest = self.said.split(b"\n")
        if len(lines) > 2 or (self.closed and rest):
            raise self.lost(f"not an answer: {self.said[:80]!r}")
        for i, line in enumerate(lines):
            word, _, value = line.partition(b" ")
            if i == 0 and word == b"error":
                raise SpawnFailed(value.decode(errors="replace")[:200])
            number = int(value) if value.isdigit() or value[:1] == b"-" and value[1:].isdigit() else None
            if i == 0 and word == b"pid" and number is not None and number > 0:
                self.pid = number
            elif i == 1 and word == b"status" and number is not None and -64 <= number <= 255:
                self.status = number
            else:
                raise self.lost(f"not an answer: {line[:80]!r}")

    def heard(self, poller: Any) -> bool:
        """True once the spawner said how the command ended. A spawner gone without saying it (the code
        killed it) costs the exec its status: at the command's end, or, when the spawner went before it
        even named the command (the command can kill it that soon), at the end of its outputs; either way
        what the command wrote comes first."""
        if self.status is not None:
            return True
        if self.closed:
            if self.listening:
                poller.unregister(self.answer)
                self.listening = False
            if self.ended or self.pid is None and self.outputs_done:
                raise self.lost("it ended without saying how the command ended")
            if self.pid is None:
                self.answer_by = None  # nothing more can be said: the outputs' end ends the exec
            self.see_end(poller)
        return False

    def see_end(self, poller: Any) -> None:
        """Watch the named command's end (a pidfd of the agent's own)."""
        if self.pidfd is not None or self.ended or self.pid is None:
            return
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except OSError:  # gone and reaped already, or a pid that never was
            self.end_seen()
            return
        poller.register(self.pidfd, select.POLLIN)

    def end_seen(self) -> None:
        """The command ended: the spawner has ANSWER_WAIT to say how."""
        self.ended = True
        if self.status is None and self.closed:
            raise self.lost("it ended without saying how the command ended")
        self.answer_by = time.monotonic() + ANSWER_WAIT

    def ready(self, fd: int, poller: Any) -> bool:
        """The answer pipe closed or the command's pidfd fired; True once it ended and the spawner said how."""
        if fd == self.answer:
            self.hear()
            return self.heard(poller)
        poller.unregister(fd)
        self.end_seen()
        return self.status is not None

    def quiet(self, poller: Any) -> bool:
        """Both outputs closed (the command most likely ended): True if the spawner said how already, else
        the command's end is watched, so that a spawner slow to say it is caught ANSWER_WAIT after."""
        self.outputs_done = True
        self.hear()
        if self.heard(poller):
            return True
        self.see_end(poller)
        return False

    def overdue(self, poller: Any) -> bool:
        """ANSWER_WAIT passed since the request (no pid yet) or since the command's end (no status yet)."""
        self.hear()
        if self.heard(poller):
            return True
        if self.pid is None or self.ended:
            raise self.lost(f"no {'status' if self.pid else 'pid'} within {ANSWER_WAIT:g} s")
        self.answer_by = None  # it runs on: the spawner has till ANSWER_WAIT after its end
        self.see_end(poller)
        return False

    def close_stdin(self) -> None:
        """All of stdin is in: the command sees its end."""
        if self.stdin is not None:
            os.close(self.stdin)
            self.stdin = None

    def kill_pid(self) -> int | None:
        """The session a timeout's kill takes: the pid the spawner named, if it named one."""
        try:
            self.hear()
        except (SpawnLost, SpawnFailed):
            pass
        return self.pid

    def wait(self) -> int:
        """The command's returncode as the spawner says it, as Popen's (negative: the signal that ended it),
        within ANSWER_WAIT (after a timeout's kill); SpawnLost if it does not say."""
        deadline = time.monotonic() + ANSWER_WAIT
        self.hear()
        while self.status is None:
            left = deadline - time.monotonic()
            if self.closed or left <= 0:
                raise self.lost("it did not say how the command ended")
            select.select([self.answer], [], [], left)
            self.hear()
        return self.status

    def lost(self, why: str) -> SpawnLost:
        """The spawner stopped answering as it should: it is killed (the next exec goes without it)."""
        self.spawner.gone()
        return SpawnLost(f"the sandbox's spawner did not say how the command went, so it may or may not have run "
                         f"(the sandbox's code may have stopped, killed or spoken for it: {why})")

    def close(self) -> None:
        """Its descriptors, once the exec is done."""
        self.close_stdin()
        for fd in (self.answer, self.pidfd, self.stdout, self.stderr):
            if fd is not None:
                os.close(fd)
