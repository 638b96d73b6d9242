"""Finding a pool's sandboxes in /proc by their markers: the watchdogs (adoption after a restart) and
processes whose watchdog is gone (orphans, killed)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..base import Sandbox
from . import _watchdog as wd
from .host import BOOT_ID


@dataclass
class Scan:
    found: list[Sandbox] = field(default_factory=list)  # adoptable sandboxes, one per live watchdog
    live: set[str] = field(default_factory=set)  # members with a watchdog running
    marked: dict[int, str] = field(default_factory=dict)  # pid -> member, every process of the pool's sandboxes


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
        if one.get("ns") != ns or one.get("pool") != pool:
            continue
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
