"""A claim that tries to leave something for the next claim of a reused sandbox (standard library only).

With {"tag": T}: a file in every directory it can write to, on every mount (the walk `find / -writable`
would make, /proc and /sys aside), SysV shared memory, a message queue and a semaphore set, an attempt at
a POSIX message queue and at /etc/ld.so.preload, and a process that tries to outlive the claim. With
{"look": T}: what of all that it finds. Prints one JSON object."""

import ctypes
import json
import os
import sys

plan = json.loads(sys.stdin.read())
libc = ctypes.CDLL(None, use_errno=True)
SKIP = ("proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2")


def mounts() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.split()[0] not in SKIP:
                points.append(pre.split()[4])
    return points


def dirs() -> list[str]:
    """Every directory on every mount but /proc's and /sys's kinds, without following links."""
    seen, out = set(), []
    for top in mounts():
        if top.startswith(("/proc", "/sys")) or not os.path.isdir(top):
            continue
        for d, _, _ in os.walk(top):
            if d not in seen:
                seen.add(d)
                out.append(d)
    return out


def server() -> list[str]:
    """The sandbox's server: its pid and start time, which name one process for good."""
    for p in os.listdir("/proc"):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as fb:
                if b"http.server" in fb.read():
                    with open(f"/proc/{p}/stat") as f:
                        return [p, f.read().rsplit(")", 1)[1].split()[19]]
        except OSError:
            pass
    return []


out: dict[str, object] = {"server": server()}
if "tag" in plan:
    try:  # the server runs as this code's uid: its memory is open to it, so only a new process is clean
        os.close(os.open(f"/proc/{out['server'][0]}/mem", os.O_RDWR))  # type: ignore[index]
        out["server_mem"] = 0
    except OSError as e:
        out["server_mem"] = e.errno
    name = f".implant-{plan['tag']}"
    wrote = []
    for d in dirs():
        if os.access(d, os.W_OK):
            try:
                with open(os.path.join(d, name), "w") as f:
                    f.write("implant")
                wrote.append(d)
            except OSError:
                pass
    out["wrote"] = wrote
    try:
        with open("/etc/ld.so.preload", "w") as f:
            f.write("/work/evil.so\n")
        out["preload"] = 0
    except OSError as e:
        out["preload"] = e.errno
    ctypes.set_errno(0)
    out["shm"] = libc.shmget(0x5157, 4096, 0o1666)  # IPC_CREAT | 0666
    out["msg"] = libc.msgget(0x5158, 0o1666)
    out["sem"] = libc.semget(0x5159, 1, 0o1666)
    ctypes.set_errno(0)
    mq = libc.mq_open(b"/implant", 0o100 | 2, 0o666, None)  # O_CREAT | O_RDWR
    out["mq_open"] = ctypes.get_errno() if mq == -1 else 0
    if os.fork() == 0:  # a process that means to stay: its own session, no parent to end with
        os.setsid()
        if os.fork() == 0:
            os.execv("/bin/sh", ["sh", "-c", f"exec sleep 3600 # {name}"])
        os._exit(0)
    os.wait()
else:
    name = f".implant-{plan['look']}"
    out["found"] = [d for d in dirs() if os.path.lexists(os.path.join(d, name))]
    ipc = {}
    for kind in ("shm", "msg", "sem"):
        with open(f"/proc/sysvipc/{kind}") as f:
            ipc[kind] = len(f.read().splitlines()) - 1
    out["ipc"] = ipc
    alive = []
    for p in os.listdir("/proc"):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as fb:
                if name.encode() in fb.read() and int(p) != os.getpid():
                    alive.append(int(p))
        except (OSError, ValueError):
            pass
    out["processes"] = alive
    try:
        out["preload"] = os.path.exists("/etc/ld.so.preload")
    except OSError:
        out["preload"] = False
print(json.dumps(out))
