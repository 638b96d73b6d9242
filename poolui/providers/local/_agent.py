"""The agent: a process inside every local sandbox beside the sandbox's own command (its server). It runs
the controller's exec, file and reset requests inside the sandbox (its namespaces, cgroups, limits, root).

    sh -c '... "$@" 3>&- & exec "$PY" -I -S -c "$CODE" "$!" WORKDIR UID GID "$@"' ... ARGV...

The shell starts the server in the background and becomes the agent (exec), so the two start at once:
waiting for the agent's interpreter before the server's cost about 50 ms of every cold start here. The
server is the agent's child, so a reset can start it again fresh (_agent_server.py). fd 3 is a listening
Unix socket that the watchdog bound outside the sandbox, in the controller's private directory, which the
sandbox cannot see: only the controller can connect, and the server does not get the fd. The agent ends
when the server ends by itself, and the sandbox with it.

The sandbox's code must not reach the agent: it could answer the controller in the agent's place. So the
agent makes itself non-dumpable first (no /proc/PID/mem, fd or environ for anyone without
CAP_SYS_PTRACE), and when the controller is root (_userns.py) it is the user namespace's root while the
server and every command it runs are UID:GID, which can neither signal it nor touch what it owns.

One connection is one request: a JSON line, then (put, exec with stdin) `size` raw bytes. The answer is
frames of one kind byte and a 4-byte big-endian length: b"o" stdout, b"e" stderr, b"d" file data, and
one b"x" last, a JSON object saying how it ended ({"error": ...} for a request that could not be done).

Standard library only, and imports what a request needs when it comes.
"""

from __future__ import annotations

import os
import sys
from typing import Any

LISTEN_FD = 3
EXEC_MARKER = "POOLUI_EXEC"
SANDBOX_MARKER = "POOLUI_SANDBOX"  # the watchdog's, on every process of this sandbox
READ = 65536
MAX_REQUESTS = 64  # at once; beyond, a request is refused at once rather than costing a thread
SERVER: Any = None  # the sandbox's own command (_agent_server.Server)
USER: tuple[int, int] | None = None  # who the sandbox's code runs as, when not the agent's own uid
SPAWNER: Any = None  # _agent_spawn.Spawner: starts commands as USER, cheaper than the agent can


def main() -> None:
    import ctypes

    global USER, SERVER, SPAWNER
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(4, 0)  # PR_SET_DUMPABLE 0, before anything else: see above
    _no_inheritable(libc)
    work = sys.argv[2]
    if sys.argv[3]:
        USER = (int(sys.argv[3]), int(sys.argv[4]))
    import _agent_reset
    import _agent_server
    import _agent_spawn

    SPAWNER = _agent_spawn.Spawner()
    SERVER = _agent_server.Server(int(sys.argv[1]), sys.argv[5:], work)
    _agent_reset.remember(work)  # the sandbox as it starts, before any claim's code runs
    os.set_inheritable(LISTEN_FD, False)  # the commands it runs never get the socket
    sys.exit(serve(work))


def _no_inheritable(libc: Any) -> None:
    """Clear the agent's inheritable (and so ambient) capabilities, which bubblewrap's --cap-add sets: the
    commands it starts must carry none of them, not even unused."""
    import ctypes

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    head, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words
    if libc.capget(ctypes.byref(head), data) == 0:
        data[0].inheritable = data[1].inheritable = 0
        libc.capset(ctypes.byref(head), data)


def as_user() -> None:
    """File requests act as the sandbox's user, in this thread only (glibc does not spread setfsuid to the
    other threads): what they make is its own, and they can do nothing it could not."""
    if USER is not None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.setfsgid(USER[1])
        libc.setfsuid(USER[0])


# ---------------------------------------------------------------- after the fork


def serve(work: str) -> int:
    import select
    import signal
    import socket
    import threading

    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    listener = socket.socket(fileno=LISTEN_FD)
    slots = threading.BoundedSemaphore(MAX_REQUESTS)
    while True:
        SERVER.tidy()
        pidfd = SERVER.fd
        ready, _, _ = select.select([listener.fileno(), pidfd], [], [], 0.05 if SERVER.restarting else None)
        if pidfd in ready:
            if SERVER.ended_by_itself(pidfd):  # the sandbox's command ended, and with it the sandbox
                return SERVER.end_as_it_did()
            continue  # a reset killed it, and starts it again
        if listener.fileno() not in ready:
            continue
        try:
            conn, _ = listener.accept()
        except OSError:
            continue
        if not slots.acquire(blocking=False):
            busy(conn, f"the sandbox's agent is running {MAX_REQUESTS} requests at once")
            continue
        try:
            threading.Thread(target=handle, args=(conn, work, slots), daemon=True).start()
        except RuntimeError:  # no thread to be had (the sandbox's pids limit): refuse, and live on
            slots.release()
            busy(conn, "the sandbox has no thread left for its agent (its process limit)")


def busy(conn: Any, why: str) -> None:
    """Refuse a request at once, without reading it: the controller says 429."""
    try:
        conn.settimeout(1)
        end(conn, error=why, busy=True)
    except OSError:
        pass
    conn.close()


def frame(conn: Any, kind: bytes, data: bytes) -> None:
    conn.sendall(kind + len(data).to_bytes(4, "big") + data)


def end(conn: Any, **result: Any) -> None:
    import json

    frame(conn, b"x", json.dumps(result).encode())


def read_request(conn: Any) -> tuple[dict[str, Any], bytes]:
    import json

    buf = b""
    while b"\n" not in buf:
        chunk = conn.recv(READ)
        if not chunk:
            raise ValueError("the request ended before its header")
        buf += chunk
        if len(buf) > (1 << 22):
            raise ValueError("request header too long")
    head, _, rest = buf.partition(b"\n")
    req = json.loads(head)
    size = int(req.get("size", 0))
    while len(rest) < size:
        chunk = conn.recv(min(READ, size - len(rest)))
        if not chunk:
            raise ValueError("the request ended before its data")
        rest += chunk
    return req, rest[:size]


def handle(conn: Any, work: str, slots: Any) -> None:
    try:
        req, data = read_request(conn)
        op = req.get("op")
        if op == "exec":
            import _agent_exec

            _agent_exec.run(conn, req, data, work)
        elif op in ("put", "get", "list"):
            import _agent_files

            as_user()
            if op == "put":
                _agent_files.put(conn, req, data, work)
            elif op == "get":
                _agent_files.get(conn, req, work)
            else:
                _agent_files.listing(conn, req, work)
        elif op == "ping":  # the health probe's: the agent accepts, has a thread, and answers
            end(conn, ok=True)
        elif op == "reset":
            import _agent_reset

            _agent_reset.reset(conn, req, work)
        else:
            end(conn, error=f"unknown op {op!r}")
    except OSError:
        pass  # the controller went away mid-answer
    except Exception as e:
        try:
            end(conn, error=f"{type(e).__name__}: {e}")
        except OSError:
            pass
    finally:
        conn.close()
        slots.release()


# ---------------------------------------------------------------- exec


def user() -> dict[str, Any]:
    """Popen's arguments that start a command as the sandbox's user, with no capability left."""
    return {} if USER is None else {"user": USER[0], "group": USER[1], "extra_groups": []}


def kill_tree(pid: int | None, marker: str) -> None:
    """SIGKILL the command and everything it started: its session, and whatever still carries its marker
    (a child that left the session); never the sandbox's own server. `pid` may come from the spawner, which
    the code can speak for: with two uids only the code's processes are candidates (a session the spawner
    named could be the agent's own, with the container's init and the TTL's timeout in it)."""
    from _kill import kill_all

    needle = f"\0{EXEC_MARKER}={marker}\0".encode()
    kill_all(lambda: [p for p in _procs() if p != os.getpid() and _live(p) and (_session(p) == pid or _has(p, needle))
                      and (USER is None or USER[0] in _uids(p))], 0.5)


def _uids(pid: int) -> list[int]:
    """The process's real, effective, saved and filesystem uids, from its status (which tells them whatever
    the process did: the owner of its /proc files is root once it makes itself non-dumpable)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return [int(u) for u in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


def _procs() -> list[int]:
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def _stat(pid: int, task: str = "") -> list[bytes]:
    try:
        with open(f"/proc/{pid}/task/{task}/stat" if task else f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return []
    return data[data.rfind(b")") + 2:].split()


def _live(pid: int) -> bool:
    """Not dead yet. A zombie is dead already (its parent reaps it), unless it is a leader that ended alone
    (the exit syscall, not exit_group): it shows as a zombie while its other threads run on, so a process
    that hides so is alive, and SIGKILL to its pid ends them."""
    st = _stat(pid)
    if not st or st[0] not in (b"Z", b"X"):
        return bool(st)
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    return any((t := _stat(pid, task)) and t[0] not in (b"Z", b"X") for task in tasks if task != str(pid))


def _session(pid: int) -> int:
    st = _stat(pid)
    return int(st[3]) if len(st) > 3 else -1


def _has(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in b"\0" + f.read()
    except OSError:
        return False
