"""The command line that starts one local sandbox: the watchdog's orders, then bubblewrap's arguments
(with the shield's parts: network, uid, seccomp, the work directory's tmpfs), then the sandbox's argv."""

from __future__ import annotations

from pathlib import Path

from ...config import PoolConfig
from ..common import fill
from . import _userns as userns
from . import _watch_fds as fds
from . import _watchdog as wd
from . import agent_zip
from .host import PYTHON, SANDBOX_PATH
from .shield import Shield
from .use import agent_argv

# Imported rather than run as a script, so its cached bytecode is used (compiling it costs ~2 ms a start).
# _cgroups starts first: its thread makes the cgroups and waits out the kernel's grace period for the
# sandbox's move into them while the interpreter imports the rest (_cgroups.start_early).
WATCHDOG_CODE = (f"import sys; sys.path[:0] = [{str(Path(__file__).parent)!r}]; import _cgroups; "
                 "_cgroups.start_early(sys.argv); import _watchdog; _watchdog.run()")


def sandbox_env(pool: PoolConfig, env: tuple[tuple[str, str], ...], port: int, work: Path,
                bwrap: bool) -> dict[str, str]:
    """The sandbox's whole environment (bubblewrap clears the rest)."""
    return {"PATH": SANDBOX_PATH, "HOME": "/work" if bwrap else str(work), "PORT": str(port), **dict(env)}


def watchdog_argv(pool: PoolConfig, *, program: str, member_id: str, port: int, expires: float, mdir: Path,
                  work: Path, ns: str, cgroups: list[str], env: dict[str, str], bwrap: str | None,
                  static: list[str], agent: Path | None, shield: Shield | None) -> list[str]:
    """The watchdog's command line: its marker and orders, then the sandbox's own argv. `agent` is the zip
    of the agent's code (agent_zip.py), or None for a sandbox without an agent."""
    marker = f"{ns}/{pool.name}/{member_id}"
    cmd = [program, *fill(pool.command[1:], port=port)]
    two = shield is not None and shield.agent_uid is not None and bool(bwrap)  # _userns.py
    if agent:
        drop = (shield.uid or 0, shield.gid or 0) if two and shield else None
        cmd = agent_argv(cmd, "/work" if bwrap else str(work), bool(bwrap), drop)
    orders: list[str] = []
    if bwrap:
        setenv = [x for k, v in {**env, wd.ENV_MARKER: marker}.items() for x in ("--setenv", k, v)]
        shown = ["--ro-bind-data", str(fds.AGENT_CODE_FD), agent_zip.MOUNT] if agent else []
        if agent:
            orders.append(f"agentzip={agent}")
        if shield is not None and shield.network != "host":
            static = [a for a in static if a != "--share-net"]
            orders.append("fwd=1")
            if shield.pasta:
                orders.append(f"pasta={shield.pasta}")
        if shield is not None and shield.disk:
            home = ["--size", str(shield.disk), "--tmpfs", "/work"]
        else:
            home = ["--bind", str(work), "/work"]
        if shield is not None and shield.seccomp is not None:
            home += ["--seccomp", str(fds.SECCOMP_FD)]
            orders.append(f"seccomp={shield.seccomp}")
        if two and shield is not None:
            orders.append(f"userns={shield.agent_uid}:{shield.agent_gid}:{shield.uid}:{shield.gid}")
            home += userns.bwrap_args()
        elif shield is not None and shield.uid is not None:
            orders += [f"uid={shield.uid}", f"gid={shield.gid}"]
        cmd = [bwrap, *static, *shown, *home, "--remount-ro", "/", "--chdir", "/work", *setenv, "--", *cmd]
    # Under bubblewrap the watchdog's child starts in "/": an unprivileged uid may not enter the state
    # directory, and the sandbox's own work directory is made by bubblewrap.
    start_in = "/" if bwrap and shield is not None and shield.disk else str(work)
    limits = pool.limits
    return [
        PYTHON, "-I", "-S", "-c", WATCHDOG_CODE, wd.MARKER, f"ns={ns}", f"pool={pool.name}",
        f"member={member_id}", f"port={port}", f"expires={expires:.3f}", f"dir={mdir}", f"work={start_in}",
        f"mode={'bwrap' if bwrap else 'plain'}", f"marker={marker}", *(f"cg={d}" for d in cgroups),
        f"mem={limits.memory or 0}", f"pids={limits.pids or 0}", f"agent={int(agent is not None)}", *orders, "--", *cmd,
    ]
