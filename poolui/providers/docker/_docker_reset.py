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
from typing import Any

import _agent as agent
from _agent_reset import _clear_ipc, _empty, finish
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
