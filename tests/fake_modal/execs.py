"""Exec on the fake: the task command router's exec calls, running the command as a real process whose
root for relative paths is a temporary directory of its sandbox (the sandbox's "filesystem": absolute
workdirs are mapped under it). Output is kept whole and read by offset, as the real router serves it;
the exec's own timeout and the sandbox's end SIGKILL the command's whole process group."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from typing import Any

from grpclib import GRPCError, Status
from grpclib.server import Stream
from modal_proto import task_command_router_pb2 as sr_pb2

from .state import FakeSandbox, World

FDS = {sr_pb2.TASK_EXEC_STDIO_FILE_DESCRIPTOR_STDOUT: 1, sr_pb2.TASK_EXEC_STDIO_FILE_DESCRIPTOR_STDERR: 2}


@dataclass
class FakeExec:
    proc: asyncio.subprocess.Process | None
    sandbox_id: str
    out: dict[int, bytearray] = field(default_factory=lambda: {1: bytearray(), 2: bytearray()})
    closed: set[int] = field(default_factory=set)
    stdin_at: int = 0
    returncode: int | None = None
    timer: asyncio.TimerHandle | None = None

    def kill(self) -> None:
        if self.proc is not None and self.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _more(ex: FakeExec, fd: int, offset: int) -> bool:
    return len(ex.out[fd]) > offset or fd in ex.closed


class Execs:
    """Every exec of the fake, by exec id."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.execs: dict[str, FakeExec] = {}
        self.roots: dict[str, str] = {}  # sandbox id -> its temporary root
        self.tasks: set[asyncio.Task[None]] = set()

    def root(self, sb: FakeSandbox) -> str:
        if sb.sandbox_id not in self.roots:
            self.roots[sb.sandbox_id] = tempfile.mkdtemp(prefix="poolui-fake-modal-")
        return self.roots[sb.sandbox_id]

    def sandbox_ended(self, sandbox_id: str) -> None:
        for e in self.execs.values():
            if e.sandbox_id == sandbox_id:
                e.kill()
        root = self.roots.pop(sandbox_id, None)
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    def close(self) -> None:
        for sid in list(self.roots):
            self.sandbox_ended(sid)

    async def start(self, sb: FakeSandbox, req: Any) -> None:
        root = self.root(sb)
        cwd = os.path.join(root, req.workdir.lstrip("/")) if req.workdir else root
        os.makedirs(cwd, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": root}
        env.update({k: v for s in req.secret_sources for k, v in s.env.contents.items()})
        env.update({e.key: e.value for e in req.env} if hasattr(req, "env") else {})
        try:
            proc = await asyncio.create_subprocess_exec(
                *req.command_args, cwd=cwd, env=env, start_new_session=True, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as e:  # as a shell would say it
            e_ = FakeExec(None, sb.sandbox_id, returncode=127)
            e_.out[2] += f"{req.command_args[0]}: {e.strerror}\n".encode()
            e_.closed.update((1, 2))
            self.execs[req.exec_id] = e_
            return
        ex = self.execs[req.exec_id] = FakeExec(proc, sb.sandbox_id)
        if req.timeout_secs:
            ex.timer = asyncio.get_running_loop().call_later(req.timeout_secs, ex.kill)
        for fd, pipe in ((1, proc.stdout), (2, proc.stderr)):
            self._spawn(self._pump(ex, fd, pipe))
        self._spawn(self._reap(ex))

    def _spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _pump(self, ex: FakeExec, fd: int, pipe: Any) -> None:
        while data := await pipe.read(65536):
            ex.out[fd] += data
            self.world.touch()
        ex.closed.add(fd)
        self.world.touch()

    async def _reap(self, ex: FakeExec) -> None:
        assert ex.proc is not None
        ex.returncode = await ex.proc.wait()
        if ex.timer is not None:
            ex.timer.cancel()
        self.world.touch()

    def get(self, exec_id: str) -> FakeExec:
        ex = self.execs.get(exec_id)
        if ex is None:
            raise GRPCError(Status.NOT_FOUND, f"Exec {exec_id} not found")
        return ex

    async def read(self, stream: Stream[Any, Any], req: Any) -> None:
        ex, fd, offset = self.get(req.exec_id), FDS[req.file_descriptor], req.offset
        while True:
            await self.world.wait_for(functools.partial(_more, ex, fd, offset), 3600)
            if len(ex.out[fd]) > offset:
                data = bytes(ex.out[fd][offset:])
                offset += len(data)
                await stream.send_message(sr_pb2.TaskExecStdioReadResponse(data=data))
            elif fd in ex.closed:
                return

    async def wait(self, req: Any) -> sr_pb2.TaskExecWaitResponse:
        ex = self.get(req.exec_id)
        await self.world.wait_for(lambda: ex.returncode is not None, 3600)
        rc = ex.returncode
        assert rc is not None
        return sr_pb2.TaskExecWaitResponse(signal=-rc) if rc < 0 else sr_pb2.TaskExecWaitResponse(code=rc)

    async def stdin(self, req: Any) -> None:
        ex = self.get(req.exec_id)
        if ex.proc is None or ex.proc.stdin is None:
            return
        data = req.data[max(0, ex.stdin_at - req.offset):]  # a retried write sends what was written again
        ex.stdin_at = max(ex.stdin_at, req.offset + len(req.data))
        try:
            if data:
                ex.proc.stdin.write(data)
                await ex.proc.stdin.drain()
            if req.eof:
                ex.proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass
