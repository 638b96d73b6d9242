"""The spawner: a small process that starts the commands of exec requests for the agent, as the sandbox's
own uid, so that it can use vfork.

With a root controller the agent is the user namespace's root and the commands run as the sandbox's uid
(_userns.py). CPython's subprocess cannot vfork when it changes uid, so an agent starting them itself
forks its whole interpreter each time: about 1.5 ms more an exec. The spawner already is that uid, with no
capability (the agent starts it as it starts a command) and a small interpreter to copy.

It runs as the sandbox's code does, so that code can signal it, stop it or write its memory: it is given
nothing that code has not (a command's env and its pipes), the agent trusts none of its answers beyond
the one claim, and a reset kills it with every other process of the sandbox (_agent_reset.py). The
agent starts it after a claim's second exec, so a one-shot run never pays for it (_agent_spawn.py).

It must be ready soon after: until then the agent starts commands itself. So it imports only modules
built into the interpreter (no subprocess, socket or json: those cost 40 ms and more at its start) and
starts commands with os.posix_spawn (glibc's vfork), in the command's working directory (the spawner has
one thread, so its own chdir is safe). Its descriptors are all close-on-exec, so a command gets its three
pipes and nothing else.

The agent sends it its code (marshalled: the sandbox's uid cannot read the agent's zip) and fd, a Unix
SOCK_SEQPACKET socket. Each request on it is one message with the command's descriptors: the write end of
an answer pipe for this command alone, its stdout and stderr, and its stdin when it has one (else the
command opens /dev/null). The message is `m`, `0` or `1` (no stdin, stdin) and the marshalled {argv,
cwd, env} (from the agent: the only direction marshal is trusted in), all in one, so the spawner never
waits between the descriptors and the request; a request too large for one message is `s`, with one more
descriptor, a stream socket on which its 4-byte length and body follow. Back on the answer pipe go text
lines: `pid N` once the command started (or `error WHY`), then `status S` when it ended, S as Popen's
returncode; then the pipe is closed, which is what the agent waits for (it reads the pid only when it
needs it). The spawner waits for what comes with one blocking call while no command runs.
"""

from __future__ import annotations

import _signal
import _socket
import marshal
import os
import select
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FDS = _socket.CMSG_SPACE(5 * 4)
INLINE = 48 * 1024  # the largest request sent in its control message (_agent_spawn.py sends no more)


def serve(fd: int) -> None:
    """Start what the agent sends until the agent goes; each command's status goes back when it ends."""
    # a command starts with every signal at its default but those the agent's Popen left ignored (as Popen
    # starts one: SIGPIPE and SIGXFSZ, which the interpreter ignores, too); glibc then sets each once
    # instead of asking first, and the spawner keeps ignoring SIGPIPE (an agent gone is no concern of it)
    keep = {_signal.SIGKILL, _signal.SIGSTOP, *(s for s in _signal.valid_signals()
                                                 if _signal.getsignal(s) == _signal.SIG_IGN)}
    defaults = (_signal.valid_signals() - keep) | {_signal.SIGPIPE, _signal.SIGXFSZ}
    os.set_inheritable(fd, False)
    control = _socket.socket(fileno=fd)
    control.send(b"r", _socket.MSG_NOSIGNAL)  # ready: the agent sends nothing before it hears this
    running: dict[int, tuple[int, int]] = {}  # pidfd: (pid, the answer pipe)
    while True:
        watched: list[Any] = [control, *running]
        # with nothing running, the one thing to wait for is the agent's next request: recvmsg waits for it
        for one in select.select(watched, [], [])[0] if running else watched:
            if one is control:
                if not start(control, running, defaults):
                    return  # the agent went: the sandbox is ending, or a reset
            else:
                pidfd: int = one  # one of running's keys
                pid, answer = running.pop(pidfd)
                _, status = os.waitpid(pid, 0)
                say(answer, b"status %d\n" % os.waitstatus_to_exitcode(status))
                os.close(answer)  # said all: the agent waits for this close (so it comes first)
                os.close(pidfd)


def start(control: Any, running: dict[int, tuple[int, int]], defaults: set[int]) -> bool:
    """Take one request off the control socket and start its command; False when the agent has gone."""
    try:
        data, ancillary, _, _ = control.recvmsg(2 + INLINE, FDS, _socket.MSG_CMSG_CLOEXEC)
    except OSError:
        return False
    if not data:
        return False
    fds = [int.from_bytes(cmsg[i:i + 4], sys.byteorder) for _, _, cmsg in ancillary for i in range(0, len(cmsg), 4)]
    stdin, separate = data[1:2] == b"1", data[:1] == b"s"
    if len(fds) != 3 + stdin + separate:
        for fd in fds:
            os.close(fd)
        return True
    answer, stdio = fds[0], fds[1:]
    try:
        req = marshal.loads(data[2:]) if not separate else read_request(stdio.pop())
        env = req["env"]
        os.chdir(req["cwd"])
        pid = os.posix_spawn(find(req["argv"][0], env.get("PATH", os.defpath)), req["argv"], env, setsid=True,
                             setsigdef=defaults, file_actions=[
                                 (os.POSIX_SPAWN_DUP2, stdio[2], 0) if stdin else
                                 (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                 (os.POSIX_SPAWN_DUP2, stdio[0], 1), (os.POSIX_SPAWN_DUP2, stdio[1], 2)])
    except (OSError, ValueError, KeyError, TypeError, EOFError, IndexError) as e:
        say(answer, b"error " + str(getattr(e, "strerror", None) or e).encode(errors="replace")[:200] + b"\n")
        os.close(answer)
        return True
    finally:
        for fd in stdio:
            os.close(fd)
    running[os.pidfd_open(pid)] = (pid, answer)  # before the reap, which only this loop does
    say(answer, b"pid %d\n" % pid)
    return True


def read_request(fd: int) -> Any:
    """A request too large for its message, from its own socket: 4 bytes of length, then the body."""
    conn = _socket.socket(fileno=fd)
    try:
        conn.settimeout(5)  # the agent writes the request at once; never wait on it for long
        return marshal.loads(read_exactly(conn, int.from_bytes(read_exactly(conn, 4), "big")))
    finally:
        conn.close()


def find(name: str, path: str) -> str:
    """The program as Popen finds it: a name with a slash as it is, else the first executable on PATH."""
    if "/" in name:
        return name
    for place in path.split(":"):
        full = os.path.join(place or ".", name)
        if os.access(full, os.X_OK) and not os.path.isdir(full):
            return full
    raise FileNotFoundError(2, "No such file or directory")


def read_exactly(conn: Any, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = conn.recv(size - len(buf))
        if not chunk:
            raise ValueError("the request ended early")
        buf += chunk
    return buf


def say(answer: int, line: bytes) -> None:
    """One line to the agent; an agent that stopped listening (its exec abandoned) is not the spawner's concern."""
    try:
        os.write(answer, line)
    except OSError:
        pass


if __name__ == "__main__":  # run by the agent: python -c "exec(marshal.loads(...))" FD CODE
    serve(int(sys.argv[1]))
