"""The claim URL of a sandbox with a network namespace of its own (network = "isolated" or "egress").

fd 4 is a TCP socket the watchdog bound on the host's 127.0.0.1:PORT before the sandbox started, so it
belongs to the host's network namespace, whoever holds it. Inside, the sandbox's server listens on
127.0.0.1:PORT of its own namespace. The agent listens on fd 4 once that server answers (until then a
connect to the URL is refused, as without isolation, so a TCP readiness probe keeps its meaning) and
copies every accepted connection to a connection of its own to the server. A socket is all the sandbox
gets of the host's network: one that can only accept, on the one port its URL names; everything it makes
itself is in its own namespace, which has nothing but a loopback. The copying runs in the sandbox, on
its own limits.
"""

from __future__ import annotations

import os
import socket
import threading
import time

URL_FD = 4


def start() -> None:
    """Serve the URL from a thread, if fd 4 is its socket (else the sandbox shares the host's network)."""
    try:
        url = socket.socket(fileno=URL_FD)
    except OSError:
        return
    os.set_inheritable(URL_FD, False)  # the commands the agent runs never get it
    threading.Thread(target=_serve, args=(url,), daemon=True).start()


def _serve(url: socket.socket) -> None:
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
            time.sleep(0.01)  # out of descriptors or threads: the sandbox's own limits
            continue
        threading.Thread(target=_relay, args=(client, port), daemon=True).start()


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _relay(client: socket.socket, port: int) -> None:
    try:
        server = socket.create_connection(("127.0.0.1", port))
    except OSError:
        client.close()
        return
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_copy, args=(server, client), daemon=True)
    back.start()
    _copy(client, server)
    back.join()
    client.close()
    server.close()


def _copy(src: socket.socket, dst: socket.socket) -> None:
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
