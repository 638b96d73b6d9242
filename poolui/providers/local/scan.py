"""Finding a pool's sandboxes in /proc by their markers: the watchdogs (adoption after a restart) and
processes whose watchdog is gone (orphans, killed).

A command line is what its process says it is, and a sandbox's code can say anything: exec itself as
"_watchdog poolui-watchdog ns=... pool=... member=... cg=/proc/1/root/work/..." to be taken for a
watchdog, adopted, swept as a stray, its "cgroups" killed by root. So a watchdog is believed only when
the kernel vouches for it: it runs as the controller's own uid, in the controller's own pid namespace
(every bubblewrap sandbox has one of its own), and its parent is not a watchdog (the forwarder it forks
keeps its command line). What a believed watchdog's command line says is still checked by its user: the
provider takes cgroups only under the machine's cgroup mounts, with the member's own path
(provider.trusted_cgroups).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..base import Sandbox
from . import _watchdog as wd
from .host import BOOT_ID, cgroup_mounts


@dataclass
class Scan:
    found: list[Sandbox] = field(default_factory=list)  # adoptable sandboxes, one per live watchdog
    live: set[str] = field(default_factory=set)  # members with a watchdog running
    marked: dict[int, str] = field(default_factory=dict)  # pid -> member, every process of the pool's sandboxes


def _pidns(pid: int | str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return ""


def vouched(pid: int, raw: bytes) -> bool:
    """The kernel says `pid` may be one of this controller's watchdogs: its real uid is the controller's,
    its pid namespace the controller's, and its parent does not have its command line (a forwarder)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
    except (OSError, StopIteration, ValueError):
        return False
    if uid != os.geteuid() or _pidns(pid) != _pidns("self"):
        return False
    st = wd.proc_stat(pid)
    try:
        with open(f"/proc/{st[1] if st else 0}/cmdline", "rb") as f:
            return f.read() != raw
    except OSError:
        return True


def scan(ns: str, pool: str) -> Scan:
    """One pass over /proc for the sandboxes of namespace `ns` and pool `pool`."""
    out = Scan()
    prefix = f"{ns}/{pool}/"
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        member = marked_member(int(name), raw, prefix)
        if member:
            out.marked[int(name)] = member
        if wd.MARKER.encode() not in raw:
            continue
        args = [a.decode(errors="surrogateescape") for a in raw.split(b"\0")]
        i = args.index(wd.MARKER) if wd.MARKER in args else 0
        if i == 0 or "_watchdog" not in args[i - 1]:
            continue
        opts, _ = wd.parse(args[i + 1:])
        one = {k: v[0] for k, v in opts.items()}
        if one.get("ns") != ns or one.get("pool") != pool or not vouched(int(name), raw):
            continue
        if one.get("member", "") in out.live:
            continue  # one watchdog per member: a second is not believed
        out.live.add(one.get("member", ""))
        sb = adoptable(int(name), one, opts.get("cg", []))
        if sb is not None:
            out.found.append(sb)
    return out


def adoptable(pid: int, one: dict[str, str], cgroups: list[str]) -> Sandbox | None:
    """The sandbox of a live watchdog, as a later controller adopts it; None while it is ending."""
    st = wd.proc_stat(pid)
    child = first_child(pid)
    cst = wd.proc_stat(child) if child else None
    if st is None or st[0] in ("Z", "X") or cst is None or cst[0] in ("Z", "X"):
        return None  # between the sandbox's exit and the watchdog's
    try:
        port, expires = int(one["port"]), float(one["expires"])
    except (KeyError, ValueError):
        return None
    ref = {"pid": child, "start": cst[2], "watchdog_pid": pid, "watchdog_start": st[2], "boot_id": BOOT_ID,
           "port": port, "cgroups": [c for c in cgroups if os.path.isdir(c)],
           "isolation": "bubblewrap" if one.get("mode") == "bwrap" else "plain process"}
    return Sandbox(one.get("member", ""), f"http://127.0.0.1:{port}", ref, expires)


def marked_member(pid: int, cmdline: bytes, prefix: str) -> str:
    """The member id a process belongs to by the sandbox marker: on bwrap's command line
    (--setenv POOLUI_SANDBOX ns/pool/member) or in a plain sandbox's environment."""
    key = f"{wd.ENV_MARKER}\0{prefix}".encode()
    at = cmdline.find(key)
    if at >= 0:
        return cmdline[at + len(key):].split(b"\0", 1)[0].decode(errors="replace")
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = b"\0" + f.read()
    except OSError:
        return ""
    key = f"\0{wd.ENV_MARKER}={prefix}".encode()
    at = env.find(key)
    return env[at + len(key):].split(b"\0", 1)[0].decode(errors="replace") if at >= 0 else ""


def first_child(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
        return int(kids[0]) if kids else 0
    except (OSError, ValueError):
        pass
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = wd.proc_stat(int(name))
            if st is not None and st[1] == pid:
                return int(name)
    return 0


def trusted_cgroups(ns: str, pool: str, member_id: str, paths: Any) -> list[str]:
    """The cgroups of `paths` that can be the member's own: under this machine's cgroup mounts (no
    /proc/PID/root detour into a sandbox), ending in the member's path. A stored or scanned ref is never
    trusted further: root kills what these cgroups hold."""
    if not isinstance(paths, list):
        return []
    suffix = f"/poolui/{ns}/{pool}/{member_id}"
    mounts = [point.rstrip("/") + "/" for point, _ in cgroup_mounts().values()]
    return [c for c in paths if isinstance(c, str) and c.endswith(suffix) and os.path.realpath(c) == c
            and any(c.startswith(m) for m in mounts)]
