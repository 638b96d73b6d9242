"""Local sandboxes: one process tree per sandbox on this machine, under bubblewrap when it is installed.

    controller --posix_spawn, own session--> watchdog (_watchdog.py)
                                              └─ fork: join cgroups, setsid, exec
                                                   bwrap --die-with-parent ... -- COMMAND   ("bubblewrap")
                                                   COMMAND                                  ("plain process")

The watchdog, not the controller, owns each sandbox: it enforces the hard TTL, kills the whole tree
(cgroup.kill, the pid namespace, the process group) and cleans up. Nothing is tied to the controller's
life, so a crashed controller's sandboxes keep running and the next one adopts them: list_ours() finds
watchdogs by the marker in their argv (namespace, pool, member, port, expiry).

Under bubblewrap a sandbox sees a read-only /usr (with the /bin, /lib... links and a few /etc files), a
private /tmp tmpfs and its own work directory as /work (cwd and HOME); it has its own pid, ipc, uts, user
and cgroup namespaces, the host network (so 127.0.0.1:PORT is reachable), no capabilities and a cleared
environment. The controller's state directory (database, token file) is not bound, so it cannot be read.

As a plain process (no bwrap, or isolation = "none") the command runs as the controller's user on the
controller's filesystem: it CAN read the state directory, including the SQLite file and any token file
kept there. Only use it for trusted commands. Memory and pid limits still apply through cgroups; where
cgroups are not writable, memory falls back to RLIMIT_AS and pids are not limited (RLIMIT_NPROC means
nothing to root).

Modules: options (the [pools.NAME.local] table), provider (LocalProvider), host (machine facts), bwrap
(the sandbox's shape), watch (the controller's view of one watchdog), scan (/proc markers), _watchdog
(the watchdog itself: standard library only, started for every sandbox).
"""

from __future__ import annotations

from ...config import PoolConfig
from ..base import ProviderContext
from .options import LocalOptions, parse_options
from .provider import LocalProvider

__all__ = ["LocalOptions", "LocalProvider", "make", "parse_options"]


def make(pool: PoolConfig, ctx: ProviderContext) -> LocalProvider:
    return LocalProvider(pool, ctx)
