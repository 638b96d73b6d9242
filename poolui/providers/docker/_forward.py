"""The claim URL of an isolated container (network_mode "none"), forwarded from the host's side.

Run by the controller, detached (its own session), as `python -I -S _forward.py LISTENER CHANNEL
url=URL_PORT`, standard library only, before the container starts; LISTENER and CHANNEL are descriptors it
inherits (the last argument only says in `ps` which claim URL this is):
  LISTENER  a TCP socket bound and listening on the host's 127.0.0.1 (the claim URL's port);
  CHANNEL   a Unix socket on which the controller sends, once the container runs, the server's port inside
            with two descriptors: a pidfd of the container's first process (readable once the container
            has ended, and then so is the forwarder) and the container's network namespace. An end of the
            channel without them (the container did not start) ends the forwarder.
It enters the container's network namespace with setns, so that every socket it makes from then on (the
connection to the server on the container's 127.0.0.1:PORT) is inside, while the listening socket, made
before, stays in the host's. Nothing inside the container holds a socket of the host's namespace, and
this process is out of the tenant's reach: another pid namespace, root on the host, no shared memory.
Per accepted connection: connect inside, then copy both ways; when nothing listens inside yet, the
client's connection is reset at once, as docker-proxy does, so readiness probes keep their meaning.
"""

import ctypes
import os
import select
import socket
import struct
import sys
import threading

CLONE_NEWNET = 0x40000000
MAX_CONNECTIONS = 512  # beyond this many at once, a new connection is reset (threads are bounded)
CHUNK = 1 << 16


def pump(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until both sides have ended; an end on one side is passed on as a half-close."""
    other = {a.fileno(): (a, b), b.fileno(): (b, a)}
    poll = select.poll()
    for fd in other:
        poll.register(fd, select.POLLIN)
    while other:
        for fd, _ in poll.poll():
            src, dst = other[fd]
            data = src.recv(CHUNK)
            if data:
                dst.sendall(data)
                continue
            poll.unregister(fd)
            del other[fd]
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def relay(client: socket.socket, port: int, slots: threading.BoundedSemaphore) -> None:
    """One connection of the claim URL to the server inside."""
    try:
        try:
            inner = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            # Nothing listens inside (yet): reset, so a probe sees a refusal and not an open port.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        with inner:
            inner.settimeout(None)
            client.settimeout(None)
            pump(client, inner)
    except OSError:
        pass  # a side went away: nothing to report to anyone
    finally:
        client.close()
        slots.release()


def main() -> None:
    listen_fd, channel_fd = map(int, sys.argv[1:3])
    with socket.socket(fileno=channel_fd) as channel:
        data, fds, _, _ = socket.recv_fds(channel, 16, 2)
    if len(fds) != 2 or not data.isdigit():
        sys.exit(0)  # the container did not start: nothing to forward to
    port, (ended, netns) = int(data), fds
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(netns, CLONE_NEWNET) != 0:
        sys.exit(f"setns: {os.strerror(ctypes.get_errno())}")
    os.close(netns)
    listener = socket.socket(fileno=listen_fd)
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    while True:
        ready, _, _ = select.select([listener.fileno(), ended], [], [])
        if ended in ready:
            os._exit(0)  # the container has ended: so has its URL
        try:
            client, _ = listener.accept()
        except OSError:
            continue
        if not slots.acquire(blocking=False):
            client.close()
            continue
        try:
            threading.Thread(target=relay, args=(client, port, slots), daemon=True).start()
        except RuntimeError:  # no thread to be had now: this connection is refused, the next may not be
            client.close()
            slots.release()


if __name__ == "__main__":
    main()
