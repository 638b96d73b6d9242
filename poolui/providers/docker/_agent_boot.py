"""The start of the agent inside a Docker container (see agent.py): the local provider's agent (_agent.py),
the same code and protocol, started here as the container's own command under docker-init:

    timeout -s KILL TTL python3 -I -S -c CODE WORK USER SOCKDIR SERVER-ARGV...

It runs as the container's root, with the few capabilities the container was given for it; it makes
itself non-dumpable and no_new_privs first, drops its inheritable capabilities, binds its listening socket
in SOCKDIR (a directory of the controller's, mode 0700, bound into the container: nothing else in the
container can enter it), then starts the server (SERVER-ARGV) as USER, its child, and serves. Every command
it runs is USER too, so the container's code can neither signal the agent nor open its /proc files, nor
reach its socket. The container ends when its server does (the agent ends with the server's status).

Runs on the container's python3 (3.9 or newer), standard library only; its modules come as sources in a
zip (agent.py), so any version compiles them.
"""

from __future__ import annotations

import os
import sys

SOCKET = "agent.sock"
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 4, 38


def main() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_DUMPABLE, 0)  # before anything else: no /proc/PID/mem, fd, environ for the code
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # and so for every command: no setuid binary raises them
    import _agent

    _agent._no_inheritable(libc)
    work, who, sockdir, argv = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    try:
        uid, gid, home = resolve(who)
    except (KeyError, ValueError) as e:
        sys.exit(f"poolui agent: docker.user {who!r}: {e}")
    if uid == 0:
        sys.exit("poolui agent: the container's code may not run as root beside the agent (docker.user)")
    os.environ["HOME"] = home
    try:
        os.chown(work, uid, gid)  # the work directory is the code's, as the local agent's shell makes it
    except OSError as e:
        sys.exit(f"poolui agent: cannot give {work} to {uid}:{gid}: {e}")
    import _agent_reset

    _agent_reset.remember(work)  # the work directory as it starts, which a reset puts back
    listen(os.path.join(sockdir, SOCKET))
    _agent.USER = (uid, gid)
    start(_agent, argv, work)
    sys.exit(_agent.serve(work))


def resolve(who: str) -> tuple[int, int, str]:
    """USER as "name", "uid" or "uid:gid" (names looked up in the image's own files); uid, gid, home."""
    import pwd

    name, _, group = who.partition(":")
    try:
        pw = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
        uid, gid, home = pw.pw_uid, pw.pw_gid, pw.pw_dir
    except KeyError:
        if not name.isdigit():
            raise
        uid, gid, home = int(name), int(name), "/"
    if group:
        import grp

        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    return uid, gid, home


def listen(path: str) -> None:
    """Bind and listen on `path`, mode 0600, as the agent's listening fd (_agent.LISTEN_FD)."""
    import socket

    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    if sock.fileno() != 3:
        os.dup2(sock.fileno(), 3, inheritable=False)
        sock.close()
    else:
        sock.detach()


def start(agent: object, argv: list[str], work: str) -> None:
    """The server, as the container's user with no capability, the agent's child in the container's first
    session (a reset through the engine keeps that session's processes)."""
    import subprocess

    import _agent_server
    import _agent_spawn

    user = agent.user()  # type: ignore[attr-defined]
    try:
        proc = subprocess.Popen(argv, cwd=work, stdin=subprocess.DEVNULL, close_fds=True, **user)
    except OSError as e:  # the container ends as a shell's would: 127, not found or not runnable
        print(f"poolui agent: {argv[0] if argv else '(no command)'}: {e.strerror or e}", file=sys.stderr)
        sys.exit(127)
    server = _agent_server.Server(proc.pid, argv, work)
    server.proc = proc  # held, so Popen never reaps it behind the Server's back
    agent.SERVER = server  # type: ignore[attr-defined]
    import _docker_reset

    sys.modules["_agent_reset"] = _docker_reset  # the "reset" request's module (_agent.handle imports it then)
    agent.SPAWNER = _agent_spawn.Spawner()  # type: ignore[attr-defined]
