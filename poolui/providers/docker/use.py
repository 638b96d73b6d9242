"""Using a Docker sandbox: exec and files through the agent in the container where it has one (agent.py:
the local provider's agent and client, over a Unix socket); else exec through the Engine's exec API, its
multiplexed output read as it comes on a thread of the provider's pool and handed to the loop, and files
and resets through an exec of the container's own shell.

The Engine cannot kill an exec. Every exec carries a marker in its environment, and a timed-out one is
ended by a second exec that SIGKILLs every process carrying the marker (the command and all it started).
Files are not written with put_archive: into a tmpfs mount (the work directory is one) it answers true,
and the file never appears in the container (checked on this engine). The shell checks each path
component for a symlink; whatever it might still be raced into stays inside the container.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import SandboxDied
from ...sandbox_io import ExecChunk, ExecRequest, ExecResult
from ..local import agent_client
from ..shell_use import KILL, MARKER, ShellUse
from .agent import DEFAULT_USER
from .probing import exit_code_of

if TYPE_CHECKING:
    from ...errors import ProviderError
    from ..base import Sandbox
    from .agent import Plan
    from .options import DockerOptions

STREAMS = {1: "stdout", 2: "stderr"}
RESET_TIMEOUT = 30.0  # the engine bounds the whole reset too (reset_timeout)


class DockerUse(ShellUse):
    """The exec and file half of DockerProvider."""

    opts: DockerOptions
    _executor: Any
    _agent: Plan

    def _docker(self) -> Any:
        raise NotImplementedError  # DockerProvider's

    def _error(self, e: BaseException, doing: str) -> ProviderError:
        raise NotImplementedError  # DockerProvider's

    def alive(self, sb: Sandbox) -> bool:
        raise NotImplementedError  # DockerProvider's

    def _socket(self, sb: Sandbox) -> Path | None:
        """The agent's socket of a container that has one (None: the Engine's way)."""
        if not sb.ref.get("agent"):
            return None
        if not self.alive(sb):
            raise SandboxDied(f"sandbox {sb.member_id} has ended")
        return self._agent.socket(sb.ref.get("name", ""))

    def _user(self, sb: Sandbox) -> str:
        """Who an Engine exec of the pool's own (a probe) runs as: the code's user beside an agent."""
        return (self.opts.user or DEFAULT_USER) if sb.ref.get("agent") else ""

    async def exec(self, sb: Sandbox, req: ExecRequest) -> AsyncIterator[ExecChunk | ExecResult]:
        """Run a command in the container: its output as it comes, then one ExecResult."""
        if (sock := self._socket(sb)) is not None:
            async with aclosing(agent_client.run(sock, req)) as items:
                async for item in items:
                    yield item
            return
        async for item in self._engine_exec(sb, req):
            yield item

    async def put_file(self, sb: Sandbox, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write `data` to `path` under the work directory (parents made; symlinks on the way refused)."""
        if (sock := self._socket(sb)) is None:
            return await super().put_file(sb, path, data, mode)
        await agent_client.put(sock, path, data, mode)

    async def put_stream(self, sb: Sandbox, path: str, size: int, chunks: AsyncIterator[bytes],
                         mode: int = 0o644) -> None:
        """As put_file, the data passed on as it comes, never held whole."""
        if (sock := self._socket(sb)) is None:
            return await super().put_stream(sb, path, size, chunks, mode)
        await agent_client.put_stream(sock, path, size, chunks, mode)

    async def get_file(self, sb: Sandbox, path: str, limit: int) -> bytes:
        """The file at `path` under the work directory; InvalidRequest when larger than `limit` bytes."""
        if (sock := self._socket(sb)) is None:
            return await super().get_file(sb, path, limit)
        return await agent_client.get(sock, path, limit)

    async def list_files(self, sb: Sandbox, path: str, most: int) -> list[tuple[str, int]]:
        """The regular files under a directory of the work directory ('' for all), with their sizes."""
        if (sock := self._socket(sb)) is None:
            return await super().list_files(sb, path, most)
        return await agent_client.listing(sock, path, most)

    async def _engine_exec(self, sb: Sandbox, req: ExecRequest) -> AsyncIterator[ExecChunk | ExecResult]:
        """An exec through the Engine's API, as the container's own user."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ExecChunk | ExecResult | BaseException] = asyncio.Queue()

        def put(item: ExecChunk | ExecResult | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        cid = sb.ref.get("container_id", "")
        job = loop.run_in_executor(self._executor, self._exec_blocking, cid, req, put)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise self._error(item, "running an exec") from item
                yield item
                if isinstance(item, ExecResult):
                    return
        finally:
            await asyncio.shield(job)  # the thread ends by itself at the command's deadline at the latest

    def _exec_blocking(self, cid: str, req: ExecRequest, put: Callable[[Any], None]) -> None:
        try:
            put(self._run(cid, req, put))
        except BaseException as e:
            put(e)

    def _run(self, cid: str, req: ExecRequest, put: Callable[[Any], None]) -> ExecResult:
        api = self._docker().api
        marker = os.urandom(8).hex()
        start = time.monotonic()
        workdir = self.opts.workdir + ("/" + req.cwd if req.cwd else "")
        eid = api.exec_create(cid, list(req.argv), stdout=True, stderr=True, stdin=bool(req.stdin),
                              environment={**dict(req.env), MARKER: marker}, workdir=workdir)["Id"]
        conn = api.exec_start(eid, socket=True)
        raw: socket.socket = getattr(conn, "_sock", conn)
        try:
            if req.stdin:
                raw.sendall(req.stdin)
            raw.shutdown(socket.SHUT_WR)  # the command's stdin ends here
            timed_out, truncated = _pump(raw, start + req.timeout, req.max_output, put)
        finally:
            raw.close()
        if timed_out:
            kill = api.exec_create(cid, ["sh", "-c", KILL, "kill", f"{MARKER}={marker}"])["Id"]
            api.exec_start(kill)
        rc = exit_code_of(api, eid)
        if rc == 126 or rc == 127:
            return ExecResult(127, error=f"{req.argv[0]}: cannot be run in the container (exit {rc})",
                              duration=time.monotonic() - start)
        signal = 9 if timed_out else None
        return ExecResult(None if signal else rc, signal, timed_out, truncated, time.monotonic() - start)

    async def reset(self, sb: Sandbox, argv: tuple[str, ...]) -> None:
        """Make the container as it was before its claim. With an agent: every process of the code's uid
        killed, the server too and started again, its places emptied and checked (_docker_reset.py). Without:
        every process but its init and server (session 1) killed, the work directory, /tmp and /dev/shm
        emptied. Then the pool's reset command run."""
        if (sock := self._socket(sb)) is not None:
            await agent_client.reset(sock, argv, True)
            return
        await self.shell_reset(sb, 1, [self.opts.workdir, "/tmp", "/dev/shm"], argv, RESET_TIMEOUT)


def _pump(raw: socket.socket, deadline: float, cap: int, put: Callable[[Any], None]) -> tuple[bool, bool]:
    """Read the Engine's multiplexed frames (8-byte header: stream, 0, 0, 0, big-endian size) until EOF or
    the deadline; (timed out, truncated)."""
    buf, sent, truncated = b"", 0, False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return True, truncated
        raw.settimeout(left)
        try:
            data = raw.recv(65536)
        except TimeoutError:
            return True, truncated
        if not data:
            return False, truncated
        buf += data
        while len(buf) >= 8 and len(buf) >= 8 + int.from_bytes(buf[4:8], "big"):
            size = int.from_bytes(buf[4:8], "big")
            stream, payload, buf = buf[0], buf[8:8 + size], buf[8 + size:]
            keep = payload[:max(0, cap - sent)]
            sent += len(payload)
            truncated = truncated or len(keep) < len(payload)
            if keep and stream in STREAMS:
                put(ExecChunk(STREAMS[stream], keep))
