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

The agent sends it its code (marshalled: the sandbox's uid cannot read the agent's zip) and fd, a Unix
SOCK_SEQPACKET socket. Each request on it is one byte with four descriptors: a stream socket for this
command alone, and the command's stdin, stdout and stderr. On the stream socket come a 4-byte length and
a JSON object (argv, cwd, env); back go {"pid": N} with the command's pidfd (or {"error": ...}), then
{"status": S} when it ended, S as Popen's returncode. Standard library only.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def serve(fd: int) -> None:
    """Start what the agent sends until the agent goes; each command's status goes back when it ends."""
    control = socket.socket(fileno=fd)
    control.send(b"r")  # ready: the agent sends nothing before it hears this
    running: dict[int, tuple[subprocess.Popen[bytes], socket.socket]] = {}
    while True:
        watched: list[Any] = [control, *running]
        ready, _, _ = select.select(watched, [], [])
        for one in ready:
            if one is control:
                if not start(control, running):
                    return  # the agent went: the sandbox is ending, or a reset
            else:
                pidfd: int = one  # one of running's keys
                proc, reply = running.pop(pidfd)
                answer(reply, {"status": proc.wait()})
                os.close(pidfd)
                reply.close()


def start(control: socket.socket, running: dict[int, Any]) -> bool:
    """Take one request off the control socket and start its command; False when the agent has gone."""
    try:
        data, fds, _, _ = socket.recv_fds(control, 1, 4)
    except OSError:
        return False
    if not data:
        return False
    if len(fds) != 4:
        for fd in fds:
            os.close(fd)
        return True
    reply, stdio = socket.socket(fileno=fds[0]), fds[1:]
    try:
        reply.settimeout(5)  # the agent writes the request at once; never wait on it for long
        req = json.loads(read_exactly(reply, int.from_bytes(read_exactly(reply, 4), "big")))
        proc = subprocess.Popen([str(a) for a in req["argv"]], cwd=req["cwd"], env=req["env"], stdin=stdio[0],
                                stdout=stdio[1], stderr=stdio[2], start_new_session=True, close_fds=True)
    except (OSError, ValueError, KeyError, TypeError) as e:
        answer(reply, {"error": f"{getattr(e, 'strerror', None) or e}"})
        reply.close()
        return True
    finally:
        for fd in stdio:
            os.close(fd)
    pidfd = os.pidfd_open(proc.pid)
    answer(reply, {"pid": proc.pid}, [pidfd])
    running[pidfd] = (proc, reply)
    return True


def read_exactly(conn: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = conn.recv(size - len(buf))
        if not chunk:
            raise ValueError("the request ended early")
        buf += chunk
    return buf


def answer(reply: socket.socket, msg: dict[str, Any], fds: list[int] | None = None) -> None:
    """One JSON line to the agent; a gone agent (its exec abandoned) is not the spawner's concern."""
    try:
        socket.send_fds(reply, [json.dumps(msg).encode() + b"\n"], fds or [])
    except OSError:
        pass


if __name__ == "__main__":  # run by the agent: python -c "exec(marshal.loads(...))" FD CODE
    serve(int(sys.argv[1]))
