"""The forwarder's hand-over of a container's network namespace, on real processes: a container whose first
process ends between the engine's answer and the hand-over is reported as ended, not as an engine fault."""

from __future__ import annotations

import os
import socket

from poolui.providers.docker.forward import hand_over


def _zombie() -> int:
    """A child that has exited and is not yet reaped: a pidfd can still be taken, its namespaces are gone."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # until it has ended, leaving it unreaped
    return pid


def test_a_process_that_ended_before_its_namespace_is_opened_is_an_ended_container() -> None:
    pid = _zombie()
    try:
        assert not os.path.exists(f"/proc/{pid}/ns/net") and os.path.exists(f"/proc/{pid}")
        ours, theirs = socket.socketpair()
        with ours:
            assert hand_over(theirs, pid, 8000) is False
            assert theirs.fileno() == -1  # the channel is closed either way
    finally:
        os.waitpid(pid, 0)


def test_a_pid_the_engine_says_is_not_running_is_an_ended_container() -> None:
    ours, theirs = socket.socketpair()
    with ours:
        assert hand_over(theirs, 0, 8000) is False
