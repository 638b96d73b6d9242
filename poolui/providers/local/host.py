"""Facts about this machine that local sandboxes depend on: the boot id, the controller's own cgroups,
where programs are, and what a bubblewrap sandbox can see."""

from __future__ import annotations

import os
import re
import shutil
import sys
from typing import Any

from . import _watchdog as wd

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
ETC_FILES = (
    "/etc/alternatives", "/etc/ssl", "/etc/ca-certificates", "/etc/resolv.conf", "/etc/hosts",
    "/etc/host.conf", "/etc/gai.conf", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group",
    "/etc/localtime", "/etc/mime.types", "/etc/protocols", "/etc/services", "/etc/ld.so.cache",
    "/etc/ld.so.conf", "/etc/ld.so.conf.d",
)
# The system interpreter starts in ~10 ms; a pyenv shim on PATH would add ~50 ms to every start.
PYTHON = next((p for p in ("/usr/bin/python3", "/bin/python3") if os.access(p, os.X_OK)), sys.executable)
SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_PYTHON_NAME = re.compile(r"python(3(\.\d+)?)?")


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


BOOT_ID = _boot_id()  # with pid + start time, names one process for good (start times restart at boot)


def ref_alive(ref: dict[str, Any], pid_key: str, start_key: str) -> bool:
    """The process a stored ref names is the very one still running (not a recycled pid, not a zombie)."""
    pid, start = ref.get(pid_key), ref.get(start_key)
    return (ref.get("boot_id") == BOOT_ID and isinstance(pid, int) and isinstance(start, int)
            and wd.is_alive(pid, start))


def cgroup_mounts() -> dict[str, tuple[str, str]]:
    """Mount point and root of the cgroup hierarchies a sandbox uses: v1 memory and pids, v2 ("")."""
    mounts: dict[str, tuple[str, str]] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            root, point = pre.split()[3:5]
            fstype, _, opts = post.split()[:3]
            if fstype == "cgroup2":
                mounts.setdefault("", (point, root))
            elif fstype == "cgroup":
                for c in ("memory", "pids"):
                    if c in opts.split(","):
                        mounts.setdefault(c, (point, root))
    return mounts


def cgroup_bases() -> list[str]:
    """This process's own cgroup in the hierarchies a sandbox uses (v1 memory and pids, and v2 for
    cgroup.kill), where writable. Sandboxes nest under it, so limits set above still apply."""
    try:
        mounts = cgroup_mounts()
        with open("/proc/self/cgroup") as f:
            own = [line.rstrip("\n").split(":", 2) for line in f]
    except (OSError, ValueError):
        return []
    bases = []
    for _, controllers, path in own:
        for key in controllers.split(",") if controllers else [""]:
            if key in mounts:
                point, root = mounts.pop(key)
                rel = path[len(root):] if root != "/" and path.startswith(root) else path
                base = os.path.normpath(point + "/" + rel)
                if os.access(base, os.W_OK):
                    bases.append(base)
    return bases


def resolve(name: str, sandboxed: bool) -> str | None:
    """An absolute path for argv[0]: never a shim on the controller's PATH for python, and under bubblewrap
    only what the sandbox can see."""
    if "/" in name:
        return name if os.path.isabs(name) and os.access(name, os.X_OK) else None
    if _PYTHON_NAME.fullmatch(name):
        for p in (f"/usr/bin/{name}", f"/bin/{name}") + (("/usr/bin/python3",) if name == "python" else ()):
            if os.access(p, os.X_OK):
                return p
    return shutil.which(name, path=SANDBOX_PATH if sandboxed else None)


def under(path: str, roots: list[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == r or real.startswith(r.rstrip("/") + "/") for r in map(os.path.realpath, roots))
