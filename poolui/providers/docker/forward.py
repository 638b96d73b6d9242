"""Starting the claim URL's forwarder of an isolated container (the forwarder itself is _forward.py).

The controller binds the URL's port on the host's 127.0.0.1 before the container exists (so the port is
ours, and a port conflict is a clear error before anything is made) and starts the detached forwarder with
it and one end of a socketpair (prestart), so the interpreter starts while the container does. Once the
container runs, it sends the forwarder a pidfd of the container's first process and its network namespace
over the socketpair (hand_over). The forwarder outlives the controller (claimed containers are adopted by
the next one, URL and all) and ends with the container.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

from ...errors import ProviderError

SCRIPT = Path(__file__).with_name("_forward.py")


def listen(port: int) -> socket.socket:
    """A listening socket on the host's 127.0.0.1:port; ProviderError(port_conflict) when it is taken."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        s.listen(128)
    except OSError as e:
        s.close()
        if e.errno == errno.EADDRINUSE:
            raise ProviderError(f"port conflict: 127.0.0.1:{port} is already in use", reason="port_conflict") from None
        raise
    return s


def prestart(listener: socket.socket) -> socket.socket:
    """Start the forwarder before its container, so that the interpreter's start (tens of milliseconds)
    overlaps the container's; returns the channel to hand it the container by (hand_over). The listener is
    the forwarder's from then on (closed here). Closing the channel unused ends the forwarder."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        fds = (listener.fileno(), theirs.fileno())
        url_port = listener.getsockname()[1]  # not used by the forwarder: says in `ps` which URL it is
        argv = [sys.executable, "-I", "-S", str(SCRIPT), *map(str, fds), f"url={url_port}"]
        # Through sh, which backgrounds it and exits: the forwarder is nobody's child here (no zombie when
        # it ends, nothing to wait for) and belongs to no session of the controller.
        proc = subprocess.run(["/bin/sh", "-c", '"$@" </dev/null >/dev/null 2>&1 &', "sh", *argv],
                              capture_output=True, text=True, timeout=30, pass_fds=fds, env={},
                              start_new_session=True)
        if proc.returncode != 0:
            raise ProviderError(f"could not start the claim URL's forwarder: {proc.stderr.strip() or proc.returncode}")
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
        listener.close()
    return ours


def hand_over(channel: socket.socket, pid: int, port: int) -> bool:
    """Give the forwarder the container whose first process is `pid` (its pidfd and network namespace) and
    the server's port inside; False when the container has already ended (its death is reported as any
    other; the forwarder then ends too). The channel is closed either way."""
    with channel:
        try:
            if pid <= 0:  # the engine's answer for a container that is not running
                raise ProcessLookupError(pid)
            ended = os.pidfd_open(pid)
        except ProcessLookupError:
            return False
        try:
            try:
                netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:  # it ended after the pidfd was taken (a zombie has no namespaces)
                return False
            try:
                # A pid reused between the engine's answer and the pidfd could only be a process of the
                # host's own namespace here (containers' are not): never forward into that.
                if os.stat(f"/proc/{os.getpid()}/ns/net").st_ino == os.fstat(netns).st_ino:
                    raise ProviderError(f"process {pid} is not in a network namespace of its own: container gone?")
                socket.send_fds(channel, [str(port).encode()], [ended, netns])
            finally:
                os.close(netns)
        finally:
            os.close(ended)
    return True
