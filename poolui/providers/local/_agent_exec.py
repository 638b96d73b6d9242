"""An exec request inside the sandbox: the agent's side of running one command (for _agent.py's handle),
started by the spawner (_agent_spawn.Spawned) or by the agent itself (_agent_spawn.Child), its stdin fed
and its output sent as frames while it runs, its end and status as the one that started it says them,
and a kill of its session and marker at its timeout. Standard library only.
"""

from __future__ import annotations

import os
from typing import Any

import _agent as agent

ENV = dict(os.environ)  # the agent's, set before its first exec and never after: read once, not per exec


def run(conn: Any, req: dict[str, Any], stdin: bytes, work: str) -> None:
    import subprocess
    import time

    import _agent_spawn

    argv = [str(a) for a in req["argv"]]
    marker = os.urandom(8).hex()
    env = {**ENV, **{str(k): str(v) for k, v in req.get("env", {}).items()}, agent.EXEC_MARKER: marker}
    start, cwd = time.monotonic(), os.path.join(work, req.get("cwd") or "")
    spawner = agent.SPAWNER if agent.USER is not None and agent.SPAWNER.usable() else None
    try:
        proc: Any = spawner and spawner.spawn(argv, cwd, env, bool(stdin))
        if proc is None:  # the agent starts it itself: Popen forks and execs in C, safe beside the threads
            proc = _agent_spawn.Child(subprocess.Popen(
                argv, cwd=cwd, env=env, bufsize=0, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, close_fds=True, **agent.user()))
    except OSError as e:
        agent.end(conn, exit_code=127, signal=None, error=f"{argv[0]}: {e.strerror or e}",
                  duration=time.monotonic() - start)
        return
    except _agent_spawn.SpawnLost as e:
        agent.kill_tree(None, marker)  # it may have started: whatever carries this exec's marker goes
        agent.end(conn, exit_code=None, signal=None, error=str(e), duration=time.monotonic() - start)
        return
    try:
        result = pumped(conn, proc, req, stdin, start, marker)
    finally:
        proc.close()
    agent.end(conn, duration=time.monotonic() - start, **result)
    if agent.USER is not None and spawner is None:
        agent.SPAWNER.ran_one(agent.user(), work)


def pumped(conn: Any, proc: Any, req: dict[str, Any], stdin: bytes, start: float, marker: str) -> dict[str, Any]:
    """Run the started command's exec to its end or its timeout; how it ended, as the answer says it."""
    from _agent_spawn import SpawnFailed, SpawnLost

    pump = Pump(conn, proc, stdin, int(req.get("max_output", 1 << 20)))
    result: dict[str, Any] = {"timed_out": False, "truncated": False, "exit_code": None, "signal": None}
    try:
        result["timed_out"] = not pump.run(start + float(req.get("timeout", 60)))
        if result["timed_out"]:
            agent.kill_tree(proc.kill_pid(), marker)
        status = proc.wait()
        result.update(exit_code=None, signal=-status) if status < 0 else result.update(exit_code=status)
    except SpawnFailed as e:  # as Popen raises: the agent answers exit 127
        result.update(exit_code=127, error=f"{req['argv'][0]}: {e}")
    except SpawnLost as e:
        pump.drain()  # what it wrote before the end was seen (one poll can bring the end and the last output)
        agent.kill_tree(proc.kill_pid(), marker)  # it may run on: its session and whatever carries its marker go
        result.update(error=str(e))
    except OSError:  # the controller went away (its caller stopped reading): nobody wants the rest
        agent.kill_tree(proc.kill_pid(), marker)
        try:
            proc.wait()
        except (SpawnFailed, SpawnLost):
            pass
        raise
    result["truncated"] = pump.truncated
    return result


class Pump:
    """Moves one command's stdin in and its output out, as frames, up to `cap` bytes of output, until the
    command ended (_agent_spawn's Child or Spawned says when)."""

    def __init__(self, conn: Any, proc: Any, stdin: bytes, cap: int) -> None:
        self.conn, self.proc, self.cap = conn, proc, cap
        self.streams = {proc.stdout: b"o", proc.stderr: b"e"}
        self.in_w = proc.stdin
        if self.in_w is not None:
            os.set_blocking(self.in_w, False)
        self.pending = memoryview(stdin)
        self.sent, self.truncated = 0, False

    def forward(self, fd: int, chunk: bytes) -> None:
        keep = chunk[:max(0, self.cap - self.sent)]
        self.sent += len(chunk)
        self.truncated = self.truncated or len(keep) < len(chunk)
        if keep:
            agent.frame(self.conn, self.streams[fd], keep)

    def feed(self, poller: Any) -> None:
        try:
            self.pending = self.pending[os.write(self.in_w, self.pending[:agent.READ]):]
        except BlockingIOError:
            pass
        except OSError:
            self.pending = self.pending[:0]
        if not self.pending:
            poller.unregister(self.in_w)
            self.proc.close_stdin()
            self.in_w = None

    def run(self, deadline: float) -> bool:
        """True once the command has ended, False when the deadline came first."""
        import select
        import time

        poller = select.poll()
        for fd in (*self.streams, self.conn.fileno()):
            poller.register(fd, select.POLLIN)
        if self.in_w is not None:
            poller.register(self.in_w, select.POLLOUT)
        self.proc.watch(poller)
        ended = False
        while not ended:
            now, due = time.monotonic(), self.proc.answer_by  # due: when the spawner must have said more
            if due is not None and due <= now:
                ended = self.proc.overdue(poller)
                continue
            if now >= deadline:
                return False
            for fd, _ in poller.poll(((deadline if due is None else min(deadline, due)) - now) * 1000):
                if fd == self.conn.fileno():
                    if not self.conn.recv(1):
                        raise ConnectionResetError("the controller went away")
                elif fd == self.in_w:
                    self.feed(poller)
                elif fd not in self.streams:
                    ended = self.proc.ready(fd, poller) or ended
                elif chunk := os.read(fd, agent.READ):
                    self.forward(fd, chunk)
                else:
                    del self.streams[fd]
                    poller.unregister(fd)
                    ended = not self.streams and self.proc.quiet(poller) or ended
        self.drain()
        return True

    def drain(self) -> None:
        """What is buffered is read; a background child still holding the pipes keeps nobody waiting."""
        for fd in list(self.streams):
            os.set_blocking(fd, False)
            try:
                while chunk := os.read(fd, agent.READ):
                    self.forward(fd, chunk)
            except BlockingIOError:
                pass
