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

import _socket
import _thread
import os
import time
from errno import ECONNREFUSED

# The C modules beneath socket, threading and signal: the Python ones cost the forwarder ~15 ms of CPU
# to import (enum, collections), CPU the sandbox's own start competes for on a small host.
TYPE_CHECKING = False  # typing costs milliseconds to import, and the watchdog starts on every create
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal

try:
    from . import _libc as libc
    from ._kill import end_child
except ImportError:
    import _libc as libc  # type: ignore[no-redef]  # run as the watchdog, from its own directory
    from _kill import end_child  # type: ignore[no-redef]

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
FIND_WAIT = 5.0  # seconds for bubblewrap to make the sandbox's network namespace
# The server's port is probed every elapsed/POLL_SHARE seconds, within these bounds: a start is seen at
# most 1/40 of its own length late (a 100 ms start: 2.5 ms, 1.25 on average; the old doubling up to
# 20 ms made it 10 on average), for about 80 probes of ~30 us of CPU each.
POLL_MIN, POLL_MAX, POLL_SHARE = 0.001, 0.02, 40
PROBE_WAIT = 0.02  # seconds for a probe's connect on the loopback; a refusal comes at once
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
    libc.load("prctl", "setns")
    child = os.fork()
    if child:
        _pid = child
        return child
    code = 1
    try:
        _only(url_fd)
        libc.die_with_parent(signal.SIGKILL)  # it goes when its watchdog goes
        if os.getppid() != parent:
            os._exit(1)
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        inner = inner_pid(pid, time.monotonic() + FIND_WAIT)
        _enter(inner, ids)
        code = serve(_socket.socket(fileno=url_fd))
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


def _enter(inner: int, ids: tuple[int, int] | None) -> None:
    """Join the sandbox's network namespace; drop to `ids` after (the parent-death signal is set again:
    a change of credentials clears it)."""
    if os.geteuid() != 0:  # the sandbox's user namespace is ours: entering it gives the right to join
        fd = os.open(f"/proc/{inner}/ns/user", os.O_RDONLY)
        libc.setns(fd, CLONE_NEWUSER)
        os.close(fd)
    fd = os.open(f"/proc/{inner}/ns/net", os.O_RDONLY)
    libc.setns(fd, CLONE_NEWNET)
    os.close(fd)
    if ids is not None:
        os.setgroups([])
        os.setresgid(ids[1], ids[1], ids[1])
        os.setresuid(ids[0], ids[0], ids[0])
        libc.die_with_parent(signal.SIGKILL)


def serve(url: _socket.socket) -> int:
    """Listen on the URL's socket once the server answers, and relay every connection to it."""
    port = url.getsockname()[1]
    wait_for_server(port, time.monotonic())
    url.listen(128)
    while True:
        try:
            fd, _ = url._accept()  # type: ignore[attr-defined]  # the C socket's accept: a descriptor
        except OSError:
            time.sleep(0.01)  # out of descriptors: wait for a connection to end
            continue
        client = _socket.socket(fileno=fd)
        try:
            _thread.start_new_thread(_relay, (client, port))
        except RuntimeError:  # out of threads: this connection is refused, the next may pass
            client.close()


def wait_for_server(port: int, since: float) -> None:
    """Return once something listens on 127.0.0.1:`port` in this namespace. Nothing tells when a server
    starts listening but a connect: the probe is one connect on a socket used again after each refusal
    (about 25 us of CPU), made more often early on, when a start is likeliest to end. A connect that is
    not refused at once is given up after PROBE_WAIT on a new socket: while bubblewrap sets the loopback
    up, its address can be there before the link, and a SYN sent then is dropped (the kernel would
    retry it only after a second)."""
    probe = None
    try:
        while True:
            if probe is None:
                probe = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
                probe.settimeout(PROBE_WAIT)
            err = probe.connect_ex(("127.0.0.1", port))
            if err == 0:
                return
            if err != ECONNREFUSED:
                probe.close()
                probe = None
            time.sleep(min(POLL_MAX, max(POLL_MIN, (time.monotonic() - since) / POLL_SHARE)))
    finally:
        if probe is not None:
            probe.close()


def _connect(port: int) -> _socket.socket:
    server = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    try:
        server.connect(("127.0.0.1", port))
    except OSError:
        server.close()
        raise
    return server


def _relay(client: _socket.socket, port: int) -> None:
    try:
        server = _connect(port)
    except OSError:
        client.close()
        return
    for s in (client, server):
        s.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
    back = _thread.allocate_lock()
    back.acquire()  # released when the copy back to the client ends

    def copy_back() -> None:
        try:
            _copy(server, client)
        finally:
            back.release()

    try:
        _thread.start_new_thread(copy_back, ())
    except RuntimeError:  # out of threads
        client.close()
        server.close()
        return
    _copy(client, server)
    back.acquire()
    client.close()
    server.close()


def _copy(src: _socket.socket, dst: _socket.socket) -> None:
    buf = bytearray(65536)
    view = memoryview(buf)
    try:
        while n := src.recv_into(buf):
            dst.sendall(view[:n])
    except OSError:
        pass
    try:
        dst.shutdown(_socket.SHUT_WR)
    except OSError:
        pass


def stop() -> None:
    """Kill the forwarder, if this watchdog started one, and reap it."""
    global _pid
    end_child(_pid)
    _pid = 0
