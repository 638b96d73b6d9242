"""Outbound network for a sandbox with network = "egress": pasta attached to the sandbox's own network
namespace, started by the watchdog right after the sandbox, and killed with it.

pasta gives the namespace one interface and a default route and makes each outbound connection again from
the host, as an ordinary socket. It is told to forward nothing from the host's loopback into the sandbox
(`-T none -U none`), nothing inward (`-t none -u none`), and not to map the gateway's address to the host
(`--no-map-gw`): so the host's 127.0.0.1 (the API, the other sandboxes' claim URLs) stays out of reach.

The namespace is handed to pasta as an inherited descriptor (`/proc/self/fd/N`): pasta may not open
another process's `/proc/PID/ns/net` once it has dropped its capabilities. As root it must keep uid 0
(`--runas 0`, it fails to re-enter its own namespaces as nobody); it still shuts itself into empty
namespaces and a seccomp filter of its own. The parent-death signal ties it to the watchdog, so it cannot
outlive the sandbox even if the watchdog is killed. Standard library only, like the watchdog.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # typing and collections.abc cost milliseconds, on every sandbox's start
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
else:
    import _signal as signal  # signal's enums cost ~8 ms to import

try:
    from . import _egress_rules as rules
    from ._forward import inner_pid
    from ._kill import end_child
except ImportError:
    import _egress_rules as rules  # type: ignore[no-redef]  # run as the watchdog, from its own directory
    from _forward import inner_pid  # type: ignore[no-redef]
    from _kill import end_child  # type: ignore[no-redef]

READY_WAIT = 5.0  # seconds for pasta to configure the namespace
_pasta = 0  # pasta's pid, for stop()
_netns = -1  # the sandbox's network namespace, held open for changed() (a pid could be another's by then)


def argv(pasta: str, netns_fd: int) -> list[str]:
    """pasta's command line: outbound only, nothing of the host's loopback, in the foreground."""
    return [pasta, "--runas", "0", "-q", "-f", "-T", "none", "-U", "none", "-t", "none", "-u", "none",
            "--no-map-gw", "--config-net", "--netns", f"/proc/self/fd/{netns_fd}"]


def _routed(pid: int) -> bool:
    with open(f"/proc/{pid}/net/route") as f:
        return any(line.split()[1] == "00000000" for line in f.read().splitlines()[1:])


def start(pid: int, pasta: str, mdir: str, spawn: Callable[..., int]) -> None:
    """Attach pasta to the namespace of the sandbox `pid` and wait until it has a default route, so the
    sandbox is not reported started before it can reach out. `spawn` is the watchdog's own."""
    global _pasta, _netns
    deadline = time.monotonic() + READY_WAIT
    inner = inner_pid(pid, deadline)
    ns = _netns = os.open(f"/proc/{inner}/ns/net", os.O_RDONLY | os.O_CLOEXEC)  # any free number will do
    os.set_inheritable(ns, True)
    log = os.path.join(mdir, "pasta.log")  # read when pasta fails; goes with the member's directory
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _pasta = spawn(argv(pasta, ns), [], "/", out, dict(os.environ), 0, pdeath=True)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
        os.close(out)
        os.set_inheritable(ns, False)  # pasta's now too; kept open for the firewall's loads (changed())
    rules.watch()  # before the addresses are read: one the machine gains from then on is seen (changed())
    firewall = rules.start(ns)  # the sandbox's own firewall (_egress_rules.py), loaded while pasta starts
    try:
        while not _routed(inner):
            done, _ = os.waitpid(_pasta, os.WNOHANG)
            if done or time.monotonic() > deadline:
                if done:
                    _pasta = 0
                with open(log, "rb") as f:
                    text = f.read().decode(errors="replace")
                why = " ".join(line for line in text.splitlines() if "syslog" not in line)
                raise OSError(f"egress: pasta {'failed' if done else 'did not configure the network'}: "
                              f"{why[-300:] or 'no message'}")
            time.sleep(0.0005)
    finally:
        rules.finish(firewall)  # in place before the sandbox is reported started, or the start fails


def watching() -> int:
    """A descriptor that is readable when this machine's addresses change (-1: not an egress sandbox)."""
    return rules.watching()


def changed() -> None:
    """This machine's addresses changed: the sandbox's firewall refuses any new one before the watchdog
    waits again. OSError when it cannot: the watchdog then ends the sandbox."""
    rules.changed(_netns)


def stop() -> None:
    """Kill pasta, if this watchdog started one, and reap it; stop watching the addresses."""
    global _pasta, _netns
    end_child(_pasta)
    _pasta = 0
    rules.stop()
    if _netns >= 0:
        os.close(_netns)
        _netns = -1
