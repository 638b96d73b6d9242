"""What a hostile container tries against the agent that runs its commands (standard library only): its
memory, descriptors and environment, ptrace, a signal, its socket and the directory it lives in, a socket of
its own in the agent's place. Prints one JSON object: for each attempt, the errno (0: it worked)."""

import ctypes
import errno
import json
import os
import signal
import socket
from collections.abc import Callable

libc = ctypes.CDLL(None, use_errno=True)
RUN = "/.poolui/run"


def agent() -> int:
    """The container's root python3: the agent (its command line says _agent_boot too)."""
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/comm") as f:
                comm = f.read().strip()
            if comm.startswith("python3") and os.stat(f"/proc/{name}").st_uid == 0:
                return int(name)
        except OSError:
            continue
    return 0


def read(path: str) -> None:
    with open(path, "rb") as f:
        f.read(1)


def syscall(*args: int) -> None:
    ctypes.set_errno(0)
    if libc.syscall(*args) < 0:
        raise OSError(ctypes.get_errno(), "syscall")


def connect() -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(f"{RUN}/agent.sock")


def impostor() -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(f"{RUN}/other.sock")


pid = agent()
tries: dict[str, Callable[[], object]] = {
    "mem": lambda: os.close(os.open(f"/proc/{pid}/mem", os.O_RDWR)),
    "mem_read": lambda: read(f"/proc/{pid}/mem"),
    "fd": lambda: os.listdir(f"/proc/{pid}/fd"),
    "environ": lambda: read(f"/proc/{pid}/environ"),
    "cwd": lambda: os.readlink(f"/proc/{pid}/cwd"),
    "pidfd_getfd": lambda: syscall(438, os.pidfd_open(pid), 3, 0),  # its listener, fd 3
    "ptrace": lambda: syscall(101, 16, pid, 0, 0),  # PTRACE_ATTACH
    "connect": connect,
    "list_run": lambda: os.listdir(RUN),
    "impostor": impostor,
    "stop": lambda: os.kill(pid, signal.SIGSTOP),
    "kill": lambda: os.kill(pid, signal.SIGKILL),
}
out: dict[str, object] = {"agent": pid}
for what, fn in tries.items():
    try:
        fn()
        out[what] = 0  # it worked
    except OSError as e:
        out[what] = e.errno or -1
with open("/proc/self/status") as f:
    status = {k: v.strip() for k, v in (line.split(":", 1) for line in f if ":" in line)}
out["caps"] = {k: v for k, v in status.items() if k.startswith("Cap")}
out["no_new_privs"] = status.get("NoNewPrivs")
out["uid"] = os.getuid()
out["names"] = {k: errno.errorcode.get(v, str(v)) for k, v in out.items() if k != "agent" and isinstance(v, int)}
print(json.dumps(out))
