"""The claim URL of a sandbox with a network namespace of its own (network = "isolated" or "egress"),
served from outside the sandbox's reach.

The watchdog binds a TCP socket on the host's 127.0.0.1:PORT (the URL's port) before the sandbox starts
and keeps it: nothing inside the sandbox ever holds a descriptor of the host's network namespace. Right
after the sandbox starts, the watchdog forks the forwarder, which enters the sandbox's network namespace
(its user namespace first when the controller is not root, as setns() then demands), so that every socket
it makes from then on is a socket inside the sandbox. It listens on the host socket once the sandbox's
server answers on 127.0.0.1:PORT inside (until then a connect is refused, as without isolation, so a TCP
readiness probe keeps its meaning) and copies each accepted connection to a connection of its own to
the server. The forwarder lives in the host's pid namespace: sandbox code can neither see it in /proc
nor signal it. It has the watchdog's death as its own kill signal and the sandbox's uid as its own once
it no longer needs root. Standard library only, like the watchdog.
"""

from __future__ import annotations

import os
import signal
import time

TYPE_CHECKING = False  # typing costs milliseconds to import, and the watchdog starts on every create
if TYPE_CHECKING:
    import socket

try:
    from ._kill import end_child
except ImportError:
    from _kill import end_child  # type: ignore[no-redef]  # run as the watchdog, from its own directory

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
FIND_WAIT = 5.0  # seconds for bubblewrap to make the sandbox's network namespace
_pid = 0  # the forwarder's, for stop()


def inner_pid(pid: int, deadline: float) -> int:
    """A process of the sandbox inside its network namespace: bubblewrap's child, made with the namespace."""
    own = os.readlink("/proc/self/ns/net")
    todo = [pid]
    while time.monotonic() < deadline:
        for p in list(todo):
            try:
                if os.readlink(f"/proc/{p}/ns/net") != own:
                    return p
                with open(f"/proc/{p}/task/{p}/children") as f:
                    todo += [int(c) for c in f.read().split() if int(c) not in todo]
            except (OSError, ValueError):
                todo.remove(p)
        if not todo:
            break
        time.sleep(0.0005)
    raise OSError("the sandbox ended before its network namespace could be found")


def start(pid: int, url_fd: int, ids: tuple[int, int] | None) -> int:
    """Fork the forwarder for the sandbox `pid`; its pid. `url_fd` is the host socket (bound, not
    listening); `ids` the uid and gid it runs as once inside (None: stay as it is)."""
    global _pid
    parent = os.getpid()
    child = os.fork()
    if child:
        _pid = child
        return child
    code = 1
    try:
        _only(url_fd)
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: it goes when its watchdog goes
        if os.getppid() != parent:
            os._exit(1)
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        inner = inner_pid(pid, time.monotonic() + FIND_WAIT)
        _enter(libc, inner, ids)
        import socket  # here, in the forked child: the watchdog itself never pays for it

        code = serve(socket.socket(fileno=url_fd))
    except BaseException:
        pass
    os._exit(code)


def _only(keep: int) -> None:
    """Hold nothing of the watchdog's but the URL's socket: not its pipe to the controller (whose end of
    file says the watchdog is gone), not the sandbox's output."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, keep)
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))


def _enter(libc: object, inner: int, ids: tuple[int, int] | None) -> None:
    """Join the sandbox's network namespace; drop to `ids` after (the parent-death signal is set again:
    a change of credentials clears it)."""
    setns = libc.setns  # type: ignore[attr-defined]
    if os.geteuid() != 0:  # the sandbox's user namespace is ours: entering it gives the right to join
        fd = os.open(f"/proc/{inner}/ns/user", os.O_RDONLY)
        if setns(fd, CLONE_NEWUSER) != 0:
            raise OSError("setns(user) failed")
        os.close(fd)
    fd = os.open(f"/proc/{inner}/ns/net", os.O_RDONLY)
    if setns(fd, CLONE_NEWNET) != 0:
        raise OSError("setns(net) failed")
    os.close(fd)
    if ids is not None:
        os.setgroups([])
        os.setresgid(ids[1], ids[1], ids[1])
        os.setresuid(ids[0], ids[0], ids[0])
        libc.prctl(1, signal.SIGKILL)  # type: ignore[attr-defined]


def serve(url: socket.socket) -> int:
    """Listen on the URL's socket once the server answers, and relay every connection to it."""
    import threading

    port = url.getsockname()[1]
    delay = 0.001
    while not _answers(port):
        time.sleep(delay)  # the server is starting: nothing to wait on but its port
        delay = min(delay * 2, 0.02)
    url.listen(128)
    while True:
        try:
            client, _ = url.accept()
        except OSError:
            time.sleep(0.01)  # out of descriptors: wait for a connection to end
            continue
        try:
            threading.Thread(target=_relay, args=(client, port), daemon=True).start()
        except RuntimeError:  # out of threads: this connection is refused, the next may pass
            client.close()


def _answers(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _relay(client: socket.socket, port: int) -> None:
    import socket

    try:
        server = socket.create_connection(("127.0.0.1", port))
    except OSError:
        client.close()
        return
    import threading

    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_copy, args=(server, client), daemon=True)
    try:
        back.start()
    except RuntimeError:  # out of threads
        client.close()
        server.close()
        return
    _copy(client, server)
    back.join()
    client.close()
    server.close()


def _copy(src: socket.socket, dst: socket.socket) -> None:
    import socket

    buf = bytearray(65536)
    view = memoryview(buf)
    try:
        while n := src.recv_into(buf):
            dst.sendall(view[:n])
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def stop() -> None:
    """Kill the forwarder, if this watchdog started one, and reap it."""
    global _pid
    end_child(_pid)
    _pid = 0
