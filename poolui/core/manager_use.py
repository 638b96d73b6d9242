"""The control verbs that use a claimed sandbox (exec, files, one-shot runs), as PoolManager has them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING

from ..sandbox_io import ExecChunk, ExecResult, check_env, check_files, exec_request
from . import tars, use
from .claim_scope import TOKEN_PREFIX, token_hash

if TYPE_CHECKING:
    from .pool import Pool


class UseVerbs:
    """Mixed into PoolManager, whose pools, pool() and release() these use."""

    pools: dict[str, Pool]

    def pool(self, name: str) -> Pool:
        raise NotImplementedError  # PoolManager's

    async def release(self, pool: str, sandbox_id: str) -> bool:
        raise NotImplementedError  # PoolManager's

    async def exec(self, pool: str, sandbox_id: str, argv: list[str], env: dict[str, str] | None = None,
                   cwd: str = "", stdin: bytes | str = b"", timeout: float | None = None,
                   max_output: int | None = None) -> AsyncIterator[ExecChunk | ExecResult]:
        """Run a command inside a claimed sandbox: its stdout and stderr as they come, then one ExecResult
        (exit code, or the signal, or timed_out). A timeout kills the command and everything it started,
        never the sandbox. The claim's env applies, this call's env on top. Errors (not claimed, bad
        argv) come from the first step, before any output."""
        req = exec_request(argv, env, cwd, stdin, timeout, max_output)
        async with aclosing(use.exec_in(self.pool(pool), sandbox_id, req)) as items:
            async for item in items:
                yield item

    async def put_file(self, pool: str, sandbox_id: str, path: str, data: bytes,
                       mode: int = 0o644) -> int:
        """Write a file under a claimed sandbox's work directory (parents made); returns its size. Paths
        that leave the work directory ('..', absolute, through a symlink) are refused."""
        return await use.put_file(self.pool(pool), sandbox_id, path, data, mode)

    async def get_file(self, pool: str, sandbox_id: str, path: str) -> bytes:
        """A file from under a claimed sandbox's work directory; FileNotFound when there is none."""
        return await use.get_file(self.pool(pool), sandbox_id, path)

    async def put_tar(self, pool: str, sandbox_id: str, path: str, data: bytes) -> int:
        """Unpack a tar archive under `path` of a claimed sandbox's work directory ('' for the top); the
        number of files written. Only regular files and directories; checked whole before anything is written."""
        return await tars.put_tar(self.pool(pool), sandbox_id, path, data)

    async def get_tar(self, pool: str, sandbox_id: str, path: str) -> bytes:
        """The regular files under `path` of a claimed sandbox's work directory, as a tar archive."""
        return await tars.get_tar(self.pool(pool), sandbox_id, path)

    async def run(self, pool: str, argv: list[str], env: dict[str, str] | None = None,
                  files: dict[str, bytes | str] | None = None, cwd: str = "", stdin: bytes | str = b"",
                  timeout: float | None = None, claim_timeout: float | None = None,
                  max_output: int | None = None) -> AsyncIterator[ExecChunk | ExecResult]:
        """One-shot: claim a sandbox (with env and files), run one command streamed like exec, release it,
        also when the caller stops reading."""
        req = exec_request(argv, None, cwd, stdin, timeout, max_output)
        p = self.pool(pool)
        use.uses(p, "exec")  # NotSupported before a sandbox is claimed for nothing
        c = await p.claim(timeout=claim_timeout, env=check_env(env), files=check_files(files))
        p.metrics.runs += 1
        try:
            async with aclosing(use.exec_in(p, c.id, req)) as items:
                async for item in items:
                    yield item
        finally:
            await self.release(pool, c.id)

    def token_holder(self, token: str) -> tuple[str, str] | None:
        """(pool, sandbox id) whose current claim this token is, else None (a server's claim-token check)."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        h = token_hash(token)
        for p in self.pools.values():
            member_id = p.tokens.get(h)
            if member_id is not None:
                return p.name, member_id
        return None
