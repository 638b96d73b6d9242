"""The agent's side of the spawner (_spawner.py): start it, hand it a command, read how the command ended.

A command the spawner cannot be handed (not started yet, not ready, gone) is started by the agent itself,
as before: the spawner only makes execs cheaper, and a sandbox whose code kills it loses nothing but that.
One handed over but not answered (the code stopped the spawner) is an error for that exec, never a second
start: the command may have run. Standard library only.
"""

from __future__ import annotations

import marshal
import os
import socket
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ANSWER_WAIT = 5.0  # seconds for the spawner to start a command, or say how one it watched ended
START_AFTER = 2  # execs run by the agent itself before it starts a spawner: one-shot runs never pay for it
INLINE = 48 * 1024  # a request up to this size goes in its control message (_spawner.INLINE takes as much)


class SpawnLost(Exception):
    """The spawner took the command and did not answer: it may or may not have started it."""


class Spawned:
    """A command the spawner started, with what the agent's Pump needs of a Popen object."""

    def __init__(self, spawner: Spawner, conn: socket.socket, rest: bytes, pid: int, pidfd: int, stdin: int | None,
                 stdout: int, stderr: int) -> None:
        self.spawner, self.conn, self.rest, self.pid, self.pidfd = spawner, conn, rest, pid, pidfd
        self.stdin = os.fdopen(stdin, "wb", buffering=0) if stdin is not None else None
        self.stdout, self.stderr = os.fdopen(stdout, "rb", buffering=0), os.fdopen(stderr, "rb", buffering=0)

    def wait(self) -> int:
        """The command's returncode, as Popen's (negative: the signal that ended it); SpawnLost if the
        spawner does not say."""
        try:
            line, _, fds = read_line(self.conn, self.rest)
            for fd in fds:  # none is due: a spawner that sends one is not trusted with it
                os.close(fd)
            word, _, status = line.partition(b" ")
            if word != b"status":
                raise ValueError(f"not a status: {line[:80]!r}")
            return int(status)
        except (OSError, ValueError, KeyError, TypeError) as e:
            self.spawner.gone()  # stopped or killed by the sandbox's code: the next exec goes without it
            raise SpawnLost("the sandbox's spawner did not say how the command ended (the sandbox's code may have "
                            f"stopped or killed it: {e})") from None
        finally:
            self.conn.close()


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
        """The command started by the spawner, None when it could not be handed over (not started)."""
        body = marshal.dumps({"argv": argv, "cwd": cwd, "env": env})  # to the spawner only: never loaded back
        inline = len(body) <= INLINE
        ours, theirs = socket.socketpair()
        in_r, in_w = os.pipe() if stdin else (os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), None)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        control = self.control
        try:
            if control is None:
                raise BrokenPipeError
            socket.send_fds(control, [b"m" + body if inline else b"s"], [theirs.fileno(), in_r, out_w, err_w])
        except OSError:
            for fd in (in_w, out_r, err_r):
                if fd is not None:
                    os.close(fd)
            ours.close()
            self.gone()
            return None
        finally:
            theirs.close()
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        keep, fds = [fd for fd in (in_w, out_r, err_r) if fd is not None], list[int]()
        try:
            ours.settimeout(ANSWER_WAIT)
            if not inline:
                ours.sendall(len(body).to_bytes(4, "big") + body)
            line, rest, fds = read_line(ours)
            word, _, said = line.partition(b" ")
            if word == b"error":  # as Popen raises: the agent answers exit 127
                raise FileNotFoundError(said.decode(errors="replace")[:200])
            if word != b"pid":
                raise ValueError(f"not a pid: {line[:80]!r}")
            pid, pidfd = int(said), fds.pop(0)
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            ours.close()
            for fd in keep:
                os.close(fd)
            if isinstance(e, FileNotFoundError):
                raise
            self.gone()
            raise SpawnLost("the sandbox's spawner did not answer, so the command may or may not have run (the "
                            f"sandbox's code may have stopped or killed it: {e})") from None
        finally:
            for fd in fds:  # beyond the pidfd, none is due
                os.close(fd)
        return Spawned(self, ours, rest, pid, pidfd, in_w, out_r, err_r)


def read_line(conn: socket.socket, buf: bytes = b"") -> tuple[bytes, bytes, list[int]]:
    """One answer of the spawner, a line (untrusted: parsed as words and a number only); what came after it;
    the descriptors that came with it."""
    fds: list[int] = []
    while b"\n" not in buf:
        if len(buf) > 4096:
            raise ValueError("an answer too long")
        data, got, _, _ = socket.recv_fds(conn, 65536, 1)
        fds += got
        if not data:
            raise ValueError("no answer")
        buf += data
    line, _, rest = buf.partition(b"\n")
    return line, rest, fds
