"""An egress sandbox's own firewall: nothing to this machine's addresses, nothing to link-local ones.

pasta makes each outbound connection of an egress sandbox again from the host, as an ordinary socket, so
whatever the host reaches, the sandbox reaches: the internet, but also this machine's own services on its
other addresses (docker0's, a bridge's, a second interface's) and link-local addresses, where a cloud
machine's metadata service answers with the machine's credentials (169.254.169.254). pasta has no filter
by destination, so the watchdog puts one in the sandbox's own network namespace, before the sandbox is
reported started: its OUTPUT chain lets through what is local inside (loopback, and the address pasta
copies from the host's outward interface, which inside is the sandbox's own) and refuses (a port
unreachable, so a connect fails at once with ECONNREFUSED) link-local addresses and every address this
machine has had since the sandbox started. Nothing in the sandbox may change it: the code has no capability
in its namespace, and the agent, which has a few, has no CAP_NET_ADMIN.

An address this machine gains while the sandbox runs (a new interface, a Docker network made since) is
refused as it comes: the watchdog holds a netlink socket of the kernel's address changes, opened before the
addresses are first read so none falls in between, and on each change loads the ruleset again with every
address seen so far (iptables-restore replaces the table in one step), into the namespace by a descriptor
held from the start (a pid could be another process's by then). If that load fails the sandbox ends: one
that could reach this machine is not left running.

The rules go in through iptables-restore run in the namespace by nsenter (both from the host), for IPv4
and IPv6 at once and while pasta starts, so they add little to a cold start. Standard library only, like
the watchdog.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # typing costs milliseconds, on every sandbox's start
if TYPE_CHECKING:
    from typing import Any

LINK_LOCAL = {"4": "169.254.0.0/16", "6": "fe80::/10"}
TOOLS = {"4": "iptables-restore", "6": "ip6tables-restore"}
NEEDED = ("nsenter", *TOOLS.values())  # what egress needs besides pasta (shield.py checks at the pool's start)
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
WAIT = 10.0  # seconds for both to finish
# RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR: the kernel's address changes, and its route
# changes because it tells of a new IPv4 address before the local route that host_addresses() reads exists
WATCHED_GROUPS = 0x10 | 0x40 | 0x100
_applied: dict[str, list[str]] = {}  # the addresses the sandbox's firewall refuses now, by IP version
_watch: Any = None  # the netlink socket of address changes (watch())


def which(name: str) -> str | None:
    """The program `name` on PATH above (the watchdog runs with a minimal environment of its own)."""
    for place in PATH.split(":"):
        full = os.path.join(place, name)
        if os.access(full, os.X_OK):
            return full
    return None


def host_addresses() -> dict[str, list[str]]:
    """This machine's own addresses now, by IP version, loopback's aside (those are the sandbox's own
    inside): IPv4 from the kernel's local routing table, IPv6 from its interface list."""
    v4: set[str] = set()
    with open("/proc/net/fib_trie") as f:
        last = ""
        for line in f:
            words = line.split()
            if words[:1] == ["|--"]:
                last = words[1]
            elif words[:3] == ["/32", "host", "LOCAL"] and not last.startswith("127."):
                v4.add(last)
    v6: set[str] = set()
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                hexa, *_, name = line.split()
                if name != "lo" and not hexa.startswith("fe80"):  # link-local ones are refused as a whole
                    v6.add(":".join(hexa[i:i + 4] for i in range(0, 32, 4)))
    except FileNotFoundError:  # no IPv6 on this machine
        pass
    return {"4": sorted(v4), "6": sorted(v6)}


def ruleset(version: str, addresses: list[str]) -> bytes:
    """The iptables-restore input for one IP version: the OUTPUT chain of the sandbox's namespace."""
    width = "32" if version == "4" else "128"
    lines = ["*filter", ":OUTPUT ACCEPT [0:0]", "-A OUTPUT -m addrtype --dst-type LOCAL -j ACCEPT"]
    if version == "6":  # neighbour discovery speaks to link-local addresses: IPv6 needs it to work at all
        lines.append("-A OUTPUT -p ipv6-icmp -j ACCEPT")
    lines.append(f"-A OUTPUT -d {LINK_LOCAL[version]} -j REJECT")
    lines += [f"-A OUTPUT -d {a}/{width} -j REJECT" for a in addresses]
    return ("\n".join([*lines, "COMMIT", ""])).encode()


def watch() -> None:
    """From now on, be told of every change to this machine's addresses (changed() reads them): called
    before start() reads them, so an address added in between is not missed."""
    global _watch
    import _socket  # not socket: its enums cost a watchdog's start milliseconds, and only egress needs it

    _watch = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC | _socket.SOCK_NONBLOCK, 0)
    _watch.bind((0, WATCHED_GROUPS))


def watching() -> int:
    """The descriptor that becomes readable when this machine's addresses change; -1 without watch()."""
    return -1 if _watch is None else int(_watch.fileno())


def changed(netns: int) -> bool:
    """This machine's addresses changed: if it has one the firewall of the namespace `netns` (a descriptor)
    does not refuse yet, load the ruleset again with it and every one before (True). OSError when that load
    fails."""
    global _applied
    try:
        while _watch.recv(65536):  # only a wake-up: the addresses are read afresh below
            pass
    except OSError:  # drained (EAGAIN), or ENOBUFS: changes were lost, and the read below covers them
        pass
    now = host_addresses()
    grown = {v: sorted(set(_applied.get(v, ())) | set(now[v])) for v in now}
    if grown == _applied:
        return False
    finish(start(netns, grown))
    return True


def stop() -> None:
    """Stop watching (the sandbox ended)."""
    global _watch
    if _watch is not None:
        _watch.close()
        _watch = None


def start(netns: int, addresses: dict[str, list[str]] | None = None) -> list[tuple[int, int]]:
    """Begin loading both rulesets into the network namespace `netns` (a descriptor of the sandbox's, held
    from its start: never a pid's, which a later process may have by the time of a reload), refusing
    `addresses` (by IP version; this machine's now when None); returns what `finish` waits for: (pid, the
    read end of its stderr) per version."""
    global _applied
    nsenter, tools = which("nsenter"), {v: which(t) for v, t in TOOLS.items()}
    if nsenter is None or None in tools.values():
        raise OSError(f"egress needs {', '.join(NEEDED)} (apt-get install -y util-linux iptables)")
    _applied = host_addresses() if addresses is None else addresses
    running = []
    for version, refused in _applied.items():
        rules_r, rules_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            held = f"--net=/proc/{os.getpid()}/fd/{netns}"  # nsenter, our child, opens our descriptor
            child = os.posix_spawn(nsenter, [nsenter, held, str(tools[version]), "-w", "5"], {"PATH": PATH},
                                   file_actions=[(os.POSIX_SPAWN_DUP2, rules_r, 0), (os.POSIX_SPAWN_DUP2, err_w, 2)])
        finally:
            os.close(rules_r)
            os.close(err_w)
        try:
            with os.fdopen(rules_w, "wb") as w:  # a few hundred bytes: the pipe holds them all at once
                w.write(ruleset(version, refused))
        except BrokenPipeError:
            pass  # the tool ended before reading (nsenter could not enter): finish() says what it said
        running.append((child, err_r))
    return running


def finish(running: list[tuple[int, int]]) -> None:
    """Wait for both loads; OSError, naming what the tool said, when one failed or took over WAIT seconds
    (the sandbox then never starts: an egress sandbox without its firewall is not handed out)."""
    deadline = time.monotonic() + WAIT
    failed = []
    for child, err in running:
        while (done := os.waitpid(child, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.0005)
        if done[0] == 0:
            os.kill(child, 9)
            os.waitpid(child, 0)
            failed.append("did not finish in time")
        elif done[1] != 0:
            with os.fdopen(err, "rb") as f:
                failed.append(f.read(500).decode(errors="replace").strip() or f"exit status {done[1]}")
            continue
        os.close(err)
    if failed:
        raise OSError(f"egress: the sandbox's firewall could not be set: {'; '.join(failed)}")
