"""Using a Modal sandbox: exec through the SDK's async Sandbox.exec, stdout and stderr read as they come;
files through an exec of the sandbox's own shell (shell_use.py), in the pool's `workdir`.

Modal's exec timeout is only a backstop here (a few seconds after ours): at our deadline, or when the
caller stops reading, a second exec SIGKILLs every process carrying this exec's marker, so the command's
children end with it. The SDK reports a command killed by signal N as exit code 128+N, so that is what
the result says too. Reuse (reset) is not offered: what runs as a Modal sandbox's init is Modal's.
"""

from __future__ import annotations

import asyncio
import math
import os
import posixpath
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ...errors import ProviderError
from ...sandbox_io import ExecChunk, ExecRequest, ExecResult
from ..shell_use import KILL, MARKER, ShellUse
from .errors import translate

if TYPE_CHECKING:
    from ..base import Sandbox
    from .options import ModalOptions
    from .session import ModalApi, Session

BACKSTOP = 5  # seconds Modal's own exec timeout runs past ours
_END = object()


class ModalUse(ShellUse):
    """The exec and file half of ModalProvider."""

    opts: ModalOptions
    api: ModalApi

    async def _handle(self, sb: Sandbox) -> tuple[Session, Any]:
        raise NotImplementedError  # ModalProvider's

    def _what(self, sb: Sandbox | None = None, action: str = "") -> str:
        raise NotImplementedError  # ModalProvider's

    async def exec(self, sb: Sandbox, req: ExecRequest) -> AsyncIterator[ExecChunk | ExecResult]:
        """Run a command in the sandbox: its output as it comes, then one ExecResult."""
        s, h = await self._handle(sb)
        what = self._what(sb, f"exec {req.argv[0]!r}")
        marker = os.urandom(8).hex()
        start = time.monotonic()
        proc = await self.api.call(what, lambda: h.exec.aio(
            *req.argv, workdir=posixpath.join(self.opts.workdir, req.cwd) if req.cwd else self.opts.workdir,
            env={**dict(req.env), MARKER: marker}, timeout=math.ceil(req.timeout) + BACKSTOP, text=False),
            session=s)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        pumps = [asyncio.ensure_future(_pump(name, reader, queue))
                 for name, reader in (("stdout", proc.stdout), ("stderr", proc.stderr))]
        finished, sent, truncated = False, 0, False
        deadline = start + req.timeout

        async def within(aw: Any) -> Any:
            # Not asyncio.timeout around the yields: its cancel would land in the caller, wherever it is.
            return await asyncio.wait_for(aw, max(0.0, deadline - time.monotonic()))

        try:
            if req.stdin:
                proc.stdin.write(req.stdin)
            proc.stdin.write_eof()  # the command's stdin ends here
            await within(proc.stdin.drain.aio())
            for _ in pumps:
                while (item := await within(queue.get())) is not _END:
                    if isinstance(item, BaseException):
                        raise translate(item, what) from item
                    keep = item.data[:max(0, req.max_output - sent)]
                    sent += len(item.data)
                    truncated = truncated or len(keep) < len(item.data)
                    if keep:
                        yield ExecChunk(item.stream, keep)
            rc = await within(proc.wait.aio())
            finished = True
        except TimeoutError:
            finished = True
            await self._kill(h, marker, what)
            yield ExecResult(None, 9, True, truncated, time.monotonic() - start)
            return
        finally:
            for p in pumps:
                self.api.abandon(p)
            if not finished:  # the caller went away: the command goes too
                self.api.spawn(self._kill(h, marker, what))
        yield _result(req, rc, truncated, time.monotonic() - start)

    async def _kill(self, h: Any, marker: str, what: str) -> None:
        try:
            p = await h.exec.aio("sh", "-c", KILL, "kill", f"{MARKER}={marker}", timeout=30, text=False)
            await p.wait.aio()
        except Exception as e:
            raise ProviderError(f"{what}: could not kill the timed-out command: {e}") from e


async def _pump(name: str, reader: Any, queue: asyncio.Queue[Any]) -> None:
    try:
        async for data in reader:
            await queue.put(ExecChunk(name, bytes(data)))
    except Exception as e:
        await queue.put(e)
    await queue.put(_END)


def _result(req: ExecRequest, rc: int, truncated: bool, duration: float) -> ExecResult:
    if rc == -1:  # the SDK's word for "its deadline passed": ours is earlier, so Modal ended it
        return ExecResult(None, 9, True, truncated, duration)
    if rc in (126, 127):
        return ExecResult(127, error=f"{req.argv[0]}: cannot be run in the sandbox (exit {rc})", duration=duration)
    return ExecResult(rc, None, False, truncated, duration)
