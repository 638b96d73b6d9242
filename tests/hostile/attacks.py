"""What a hostile sandbox tries, as one Python program run inside it (standard library only). It prints
one JSON object: for every attempt, what happened. Standard input is a JSON object of what to try (not
an argument: what it looks for in /proc must not be in its own command line)."""

import ctypes
import errno
import json
import os
import socket
import sys
from typing import Any

plan = json.loads(sys.stdin.read())
out: dict[str, object] = {}
libc = ctypes.CDLL(None, use_errno=True)


def call(fn: Any, *args: Any) -> tuple[int, int]:  # (return value, errno)
    ctypes.set_errno(0)
    r = fn(*args)
    return r, ctypes.get_errno()


def connect(host: str, port: int) -> int:
    s = socket.socket()
    s.settimeout(2)
    try:
        return s.connect_ex((host, port))
    finally:
        s.close()


# Every port on every address asked for: the host's loopback, and (egress) this machine's other addresses.
out["connect"] = {f"{h}:{p}": connect(h, p) for h in plan.get("hosts", ["127.0.0.1"]) for p in plan.get("ports", [])}
out["interfaces"] = [name for _, name in socket.if_nameindex()]
with open("/proc/net/route") as f:
    out["routes"] = len(f.read().splitlines()) - 1
reads: dict[str, str] = {}
for path in plan.get("paths", []):
    try:
        with open(path, "rb") as fb:
            fb.read(1)
        reads[path] = "read"
    except OSError as e:
        reads[path] = errno.errorcode.get(e.errno or 0, str(e.errno))
out["read"] = reads
seen = b""
for pid in [p for p in os.listdir("/proc") if p.isdigit()] + ["self"]:
    try:
        seen += os.readlink(f"/proc/{pid}/cwd").encode()
    except OSError:
        pass
    for name in ("cmdline", "environ", "mountinfo", "cgroup"):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as fb:
                seen += fb.read()
        except OSError:
            pass
out["proc_shows"] = [s for s in plan.get("secrets", []) if s.encode() in seen]
if plan.get("syscalls"):
    child = os.fork()
    if child == 0:
        os.pause() if hasattr(os, "pause") else None
        os._exit(0)
    out["ptrace"] = call(libc.ptrace, 16, child, 0, 0)[1]  # PTRACE_ATTACH of its own child
    os.kill(child, 9)
    os.waitpid(child, 0)
    out["mount"] = call(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None)[1]
    out["unshare"] = call(libc.unshare, 0x10000000)[1]  # CLONE_NEWUSER
    out["add_key"] = call(libc.syscall, 248, b"user", b"k", b"v", 1, -2)[1]  # add_key to the session keyring
    out["vsock"] = call(libc.socket, 40, 1, 0)[1]  # AF_VSOCK, SOCK_STREAM: no network namespace holds it
    ts = (ctypes.c_long * 2)(0, 0)
    out["clock_settime"] = call(libc.clock_settime, 0, ts)[1]
out["uid"] = os.getuid()
print(json.dumps(out))
