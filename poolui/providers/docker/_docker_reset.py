"""The agent's reset inside a Docker container (the agent's "reset" request; _agent_boot.py puts this module
in the local one's place, so the protocol and the controller's client stay one).

The local reset (local/_agent_reset.py) kills every process but the agent; in a container that would take
the `timeout` that enforces the TTL, which is the agent's parent or child. So here the reset kills every
process with a uid other than root's (any of its four, from its status, not the owner of its /proc files,
which is root once it makes itself non-dumpable), a leader that ended alone while its threads run on too
(_agent._live): the code can make no other (it has no capability and no_new_privs), and the container's
init, the TTL's timeout and the agent are root. The server is the code's uid too, so it goes
with the rest and starts again fresh (_agent_server.py): nothing a claim wrote into its memory reaches the
next claim. Then the work directory, /tmp, /var/tmp, /dev/shm and /dev/mqueue (the POSIX message queues:
the engine's seccomp profile lets the code make them, and the engine mounts them there) are emptied and
checked, SysV IPC objects are removed (as the code's user, who made them) and checked gone, the pool's reset
command runs as the code's user, and the server starts again. Standard library only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import _agent as agent
from _agent_reset import _empty, _ipc_left, finish
from _kill import kill_all

PLACES = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue")


def reset(conn: Any, req: dict[str, Any], work: str) -> None:
    """Between two claims: the code's processes killed (the server too), its places emptied and checked, the
    pool's reset command run as the code's user, the server started again."""
    agent.SERVER.stopping()
    left = kill_all(lambda: [p for p in agent._procs() if agent._live(p) and any(agent._uids(p))], 2.0)
    agent.SPAWNER.gone()  # killed with the rest: the next claim's is new
    if left:
        agent.end(conn, error=f"processes {left[:5]} survived SIGKILL")
        return
    for top in (work, *PLACES):
        if os.path.isdir(top):
            _empty(top)
            if [n for n in os.listdir(top) if not os.path.ismount(os.path.join(top, n))]:
                agent.end(conn, error=f"{top} could not be emptied: {sorted(os.listdir(top))[:5]}")
                return
    why = _clear_ipc()
    if why:
        agent.end(conn, error=why)
        return
    finish(conn, req, work)


# Run as the code's user (who made the objects): IPC_RMID (0) on each "KIND ID" argument, through libc.
RMID = ("import ctypes, sys; libc = ctypes.CDLL(None)\n"
        "for kind, i in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        "    {'shm': libc.shmctl, 'msg': libc.msgctl, 'sem': libc.semctl}[kind](int(i), 0, 0)")


def _clear_ipc() -> str:
    """Remove every SysV IPC object by its id (with the image's python3: it need have no ipcrm); '' or
    what is left."""
    left = _ipc_left()  # "shm ID", "msg ID", "sem ID"
    if not left:
        return ""
    argv = [sys.executable, "-I", "-S", "-c", RMID] + [x for kind_id in left for x in kind_id.split()]
    try:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=10, **agent.user())
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"removing SysV IPC objects: {e}"
    left = _ipc_left()
    return f"SysV IPC objects survived: {left[:5]}" if left else ""
