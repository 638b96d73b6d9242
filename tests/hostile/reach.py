"""What a hostile sandbox tries against the agent that runs its commands (standard library only): its
memory, its descriptors, its environment, a signal. Prints one JSON object: for each attempt, the errno
(0: it worked)."""

import ctypes
import errno
import json
import os
import signal
from collections.abc import Callable

libc = ctypes.CDLL(None, use_errno=True)


def agent() -> int:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if b"_agent.main()" in f.read():
                        return int(name)
            except OSError:
                pass
    return 0


def attempt(fn: Callable[[], object]) -> int:
    try:
        fn()
        return 0
    except OSError as e:
        return e.errno or -1


pid = agent()
out: dict[str, object] = {"agent": pid}
out["mem"] = attempt(lambda: os.close(os.open(f"/proc/{pid}/mem", os.O_RDWR)))
out["mem_read"] = attempt(lambda: os.close(os.open(f"/proc/{pid}/mem", os.O_RDONLY)))
out["fd"] = attempt(lambda: os.listdir(f"/proc/{pid}/fd"))
def environ() -> None:
    with open(f"/proc/{pid}/environ", "rb") as f:
        f.read()


out["environ"] = attempt(environ)
out["cwd"] = attempt(lambda: os.readlink(f"/proc/{pid}/cwd"))


def steal() -> None:
    pidfd = os.pidfd_open(pid)
    ctypes.set_errno(0)
    fd = libc.syscall(438, pidfd, 3, 0)  # pidfd_getfd of its listener
    if fd < 0:
        raise OSError(ctypes.get_errno(), "pidfd_getfd")


out["pidfd_getfd"] = attempt(steal)
out["stop"] = attempt(lambda: os.kill(pid, signal.SIGSTOP))
out["kill"] = attempt(lambda: os.kill(pid, signal.SIGKILL))
with open("/proc/self/status") as f:
    out["caps"] = {k: v.strip() for k, v in (line.split(":", 1) for line in f if line.startswith("Cap"))}
out["names"] = {k: errno.errorcode.get(v, str(v)) for k, v in out.items() if k != "agent" and isinstance(v, int)}
print(json.dumps(out))
