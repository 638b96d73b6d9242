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
SOCK_SEQPACKET socket. Each request on it is one message with four descriptors: a stream socket for this
command alone, and the command's stdin, stdout and stderr. The message is `m` and the marshalled
{argv, cwd, env} (from the agent: the only direction marshal is trusted in), all in one, so the spawner
never waits between the descriptors and the request; a request too large for one message is `s`, and its
4-byte length and body follow on the stream socket. Back on the stream socket go text lines: `pid N` with
the command's pidfd (or `error WHY`), then `status S` when it ended, S as Popen's returncode.
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

FDS = _socket.CMSG_SPACE(4 * 4)
INLINE = 48 * 1024  # the largest request sent in its control message (_agent_spawn.py sends no more)


def serve(fd: int) -> None:
    """Start what the agent sends until the agent goes; each command's status goes back when it ends."""
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):  # the interpreter ignores them; commands get the default
        _signal.signal(sig, _signal.SIG_DFL)
    os.set_inheritable(fd, False)
    control = _socket.socket(fileno=fd)
    control.send(b"r", _socket.MSG_NOSIGNAL)  # ready: the agent sends nothing before it hears this
    running: dict[int, tuple[int, Any]] = {}  # pidfd: (pid, the reply socket)
    while True:
        watched: list[Any] = [control, *running]
        for one in select.select(watched, [], [])[0]:
            if one is control:
                if not start(control, running):
                    return  # the agent went: the sandbox is ending, or a reset
            else:
                pidfd: int = one  # one of running's keys
                pid, reply = running.pop(pidfd)
                _, status = os.waitpid(pid, 0)
                answer(reply, b"status %d" % os.waitstatus_to_exitcode(status))
                os.close(pidfd)
                reply.close()


def start(control: Any, running: dict[int, tuple[int, Any]]) -> bool:
    """Take one request off the control socket and start its command; False when the agent has gone."""
    try:
        data, ancillary, _, _ = control.recvmsg(1 + INLINE, FDS, _socket.MSG_CMSG_CLOEXEC)
    except OSError:
        return False
    if not data:
        return False
    fds = [int.from_bytes(cmsg[i:i + 4], sys.byteorder) for _, _, cmsg in ancillary for i in range(0, len(cmsg), 4)]
    if len(fds) != 4:
        for fd in fds:
            os.close(fd)
        return True
    reply, stdio = _socket.socket(fileno=fds[0]), fds[1:]
    try:
        if data[:1] == b"m":
            req = marshal.loads(data[1:])
        else:
            reply.settimeout(5)  # the agent writes the request at once; never wait on it for long
            req = marshal.loads(read_exactly(reply, int.from_bytes(read_exactly(reply, 4), "big")))
        env = req["env"]
        os.chdir(req["cwd"])
        pid = os.posix_spawn(find(req["argv"][0], env.get("PATH", os.defpath)), req["argv"], env, setsid=True,
                             file_actions=[(os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate(stdio)])
    except (OSError, ValueError, KeyError, TypeError, EOFError) as e:
        answer(reply, b"error " + str(getattr(e, "strerror", None) or e).encode(errors="replace"))
        reply.close()
        return True
    finally:
        for fd in stdio:
            os.close(fd)
    pidfd = os.pidfd_open(pid)
    answer(reply, b"pid %d" % pid, pidfd)
    running[pidfd] = (pid, reply)
    return True


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


def answer(reply: Any, line: bytes, fd: int | None = None) -> None:
    """One line to the agent; a gone agent (its exec abandoned) is not the spawner's concern."""
    rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))] if fd is not None else []
    try:
        reply.sendmsg([line + b"\n"], rights, _socket.MSG_NOSIGNAL)
    except OSError:
        pass


if __name__ == "__main__":  # run by the agent: python -c "exec(marshal.loads(...))" FD CODE
    serve(int(sys.argv[1]))
