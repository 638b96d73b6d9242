"""The descriptors the watchdog opens before the sandbox starts, each made outside the sandbox where the
sandbox cannot reach: fd 3 the agent's Unix socket, fd 5 the seccomp filter that bubblewrap loads, fd 6
the agent's code (a zip) that bubblewrap copies in; and fd 4, the claim URL's TCP socket on the host's
loopback (network isolated), which the sandbox never gets: the watchdog's forwarder serves it
(_forward.py). Standard library only, like the watchdog."""

from __future__ import annotations

import os

AGENT_FD, URL_FD, SECCOMP_FD, AGENT_CODE_FD = 3, 4, 5, 6
BLOCK_FD, INFO_FD = 7, 8  # _userns.py's: bubblewrap's ends of the user namespace's two pipes


def _place(fd: int, at: int) -> None:
    if fd != at:
        os.dup2(fd, at)
        os.close(fd)
    os.set_inheritable(at, True)


def listen_agent(mdir: str) -> None:
    """The agent's listening socket, bound in the member's directory, which the sandbox cannot see: only
    the controller can connect."""
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    os.chdir(mdir)  # a relative name: the full path may be longer than a socket address allows
    sock.bind("agent.sock")
    sock.listen(64)
    _place(sock.detach(), AGENT_FD)


def bind_url(port: int) -> None:
    """The claim URL's socket on the host's 127.0.0.1, bound but not listening: the forwarder listens once
    the server answers inside, so until then a connect is refused, as it would be without isolation. Not
    inheritable: no process of the sandbox may hold a socket of the host's network namespace."""
    import _socket

    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    _place(sock.detach(), URL_FD)
    os.set_inheritable(URL_FD, False)


def open_for_bwrap(path: str, at: int) -> None:
    """A file bubblewrap reads (the seccomp program, the agent's code), opened here, where it can be read."""
    _place(os.open(path, os.O_RDONLY), at)


def handed_over(opts: dict[str, list[str]]) -> None:
    """Close, in the watchdog, what the sandbox holds now: a connect after the sandbox is gone must fail."""
    for key, fd in (("agent", AGENT_FD), ("seccomp", SECCOMP_FD), ("agentzip", AGENT_CODE_FD),
                    ("userns", BLOCK_FD), ("userns", INFO_FD)):
        if opts.get(key, [""])[0] not in ("", "0"):
            try:
                os.close(fd)
            except OSError:
                pass


def prepare(opts: dict[str, list[str]]) -> None:
    """Open every descriptor the watchdog's options ask to hand in, at its fixed number."""
    def one(key: str) -> str:
        return opts.get(key, [""])[0]

    if one("agent") == "1":
        listen_agent(one("dir"))
    if one("fwd") == "1":
        bind_url(int(one("port")))
    if one("seccomp"):
        open_for_bwrap(one("seccomp"), SECCOMP_FD)
    if one("agentzip"):
        open_for_bwrap(one("agentzip"), AGENT_CODE_FD)
