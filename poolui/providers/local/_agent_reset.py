"""The agent's reset of a reused sandbox (see _agent.py): back to how it started, by construction and by
check, or an error (and the controller terminates the sandbox, never hands it out).

A sandbox's root and system directories are read-only; the places its code can write are tmpfs mounts
(the work directory, /tmp, /var/tmp, /dev/shm: bwrap.py), each capped. The reset finds them itself, in
/proc/self/mountinfo (every read-write tmpfs), so a place added later is not forgotten: it kills every
process but the agent (the server too), empties each of those places and checks that each is empty; /dev,
which holds the device nodes, must be as it was when the agent started (remember()), and so must the work
directory itself (its extended attributes, mode and times: the code owns it). SysV IPC objects
(which live in the sandbox's IPC namespace, not in a file) are removed and checked gone; POSIX message
queues cannot be made at all with the seccomp filter (it refuses mq_open), and without it they are in a
mount of their own (/dev/mqueue), emptied with the tmpfs places. Then the pool's reset command runs, as
the sandbox's user, and last the server starts again, fresh (_agent_server.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import _agent as agent
from _kill import kill_all

DEV = "/dev"
IPC = ("/proc/sysvipc/shm", "/proc/sysvipc/msg", "/proc/sysvipc/sem")
_dev: dict[str, str] = {}  # /dev as it started: name -> what it is
_work_mode: list[int] = []  # the work directory's mode as it started


def _describe(top: str) -> dict[str, str]:
    out = {}
    for e in os.scandir(top):
        kind = "link:" + os.readlink(e.path) if e.is_symlink() else "dir" if e.is_dir() else "file"
        out[e.name] = kind
    return out


def remember(work: str) -> None:
    """Note what /dev holds and the work directory's mode at the agent's start, before any claim's code has
    run."""
    global _dev
    try:
        _dev = _describe(DEV)
    except OSError:
        _dev = {}
    _work_mode[:] = [os.stat(work).st_mode & 0o7777]


def _plain(work: str) -> str:
    """The work directory itself as it started: the code owns it, so a claim could leave something for the
    next in its extended attributes (user.*, ACLs), its mode or its times, which emptying it keeps. '' or
    what could not be undone."""
    try:
        for name in os.listxattr(work, follow_symlinks=False):
            os.removexattr(work, name, follow_symlinks=False)
        os.chmod(work, _work_mode[0] if _work_mode else 0o755)
        os.utime(work)
        left = os.listxattr(work, follow_symlinks=False)
    except OSError as e:
        return f"the work directory's own attributes could not be reset: {e}"
    return f"the work directory kept extended attributes: {left[:5]}" if left else ""


def writable() -> list[str]:
    """Every read-write tmpfs of this sandbox but /dev, and its POSIX message queues' mount (bwrap.py): the
    places its code can leave something in."""
    places = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = pre.split()
            point, options = fields[4].replace("\\040", " "), fields[5].split(",")
            if post.split()[0] in ("tmpfs", "mqueue") and "rw" in options and point not in ("/", DEV):
                places.append(point)
    return places


def _empty(top: str) -> None:
    for entry in os.scandir(top):
        if entry.is_dir(follow_symlinks=False) and not os.path.ismount(entry.path):
            shutil.rmtree(entry.path, ignore_errors=True)
        elif not entry.is_dir(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def _ipc_left() -> list[str]:
    left = []
    for path in IPC:
        try:
            with open(path) as f:
                left += [f"{path.rsplit('/', 1)[1]} {line.split()[1]}" for line in f.read().splitlines()[1:]]
        except OSError:
            pass
    return left


# Run as the code's user (who made the objects): IPC_RMID (0) on each "KIND ID" argument, through libc. By
# id, as the objects' creator: ipcrm --all reads each object first, which an object whose owner the code
# set to root with mode 0 refuses (the reset then failed, and a reuse pool made a new sandbox each time).
RMID = ("import ctypes, sys; libc = ctypes.CDLL(None)\n"
        "for kind, i in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        "    {'shm': libc.shmctl, 'msg': libc.msgctl, 'sem': libc.semctl}[kind](int(i), 0, 0)")


def _clear_ipc() -> str:
    """Remove every SysV IPC object by its id (with the agent's own python3: an image need have no ipcrm);
    '' or what is left."""
    import sys

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


def reset(conn: Any, req: dict[str, Any], work: str) -> None:
    """Between two claims: kill every process but the agent, the server too (_agent_server.py), empty every
    writable place and check it held, run the pool's reset command, start the server again. Without
    bubblewrap only the work directory is the sandbox's own, and only processes carrying its marker are
    candidates."""
    mine = f"\0{agent.SANDBOX_MARKER}={os.environ.get(agent.SANDBOX_MARKER, '')}\0".encode()
    isolated = bool(req.get("isolated"))

    def others() -> list[int]:
        return [p for p in agent._procs() if p not in (1, os.getpid()) and agent._live(p)
                and (isolated or agent._has(p, mine))]

    agent.SERVER.stopping()
    left = kill_all(others, 2.0)
    agent.SPAWNER.gone()  # killed with the rest (the claim's code could reach it): the next claim's is new
    if left:
        agent.end(conn, error=f"processes {left[:5]} survived SIGKILL")
        return
    why = _clean(work, isolated)
    if why:
        agent.end(conn, error=why)
        return
    finish(conn, req, work)


def finish(conn: Any, req: dict[str, Any], work: str) -> None:
    """The reset's end (the Docker agent's too): the pool's reset command as the sandbox's user, then the
    server started again; the answer."""
    why = _plain(work)
    if why:
        agent.end(conn, error=why)
        return
    if req.get("argv"):
        r = subprocess.run(req["argv"], cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=float(req.get("timeout", 30)), start_new_session=True,
                           **agent.user())
        if r.returncode != 0:
            agent.end(conn, error=f"the reset command exited {r.returncode}: "
                                  f"{r.stderr.decode(errors='replace')[-200:]}")
            return
    why = agent.SERVER.start_again(agent.user())
    agent.end(conn, **({"error": why} if why else {"ok": True}))


def _clean(work: str, isolated: bool) -> str:
    """Empty the writable places and check; '' when all held, else what did not."""
    places = writable() if isolated else [work]
    if isolated and work not in places:
        places.append(work)
    for top in places:
        _empty(top)
    for top in places:
        if [n for n in os.listdir(top) if not os.path.ismount(os.path.join(top, n))]:
            return f"{top} could not be emptied: {sorted(os.listdir(top))[:5]}"
    if isolated:
        now = _describe(DEV) if _dev else {}
        if now != _dev:
            changed = sorted(set(now.items()) ^ set(_dev.items()))
            return f"/dev is not as it started: {changed[:5]}"
        return _clear_ipc()
    return ""
