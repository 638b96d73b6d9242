"""Using a claimed sandbox: exec, files in and out, a claim's own env and files, and one-shot runs.

Only a claimed member may be used, and only through its provider's exec and file calls (a provider
without them answers NotSupported). A claim's env is added to every exec of that claim (the exec's own
env wins on a clash) and is never stored, logged or shown.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from ..errors import ClaimEnded, InvalidRequest, NotSupported, SandboxNotFound, TooManyExecs
from ..sandbox_io import MAX_CLAIM_FILES, MAX_FILE, ExecChunk, ExecRequest, ExecResult, check_path
from .member import Member
from .model import MemberState

if TYPE_CHECKING:
    from .pool import Pool


def uses(pool: Pool, verb: str) -> Any:
    fn = getattr(pool.provider, verb, None)
    if fn is None:
        raise NotSupported(f"pool '{pool.name}': the {pool.provider.kind} provider has no {verb}: its sandboxes "
                           "cannot be used through poolui")
    return fn


def claimed_member(pool: Pool, sandbox_id: str) -> Member:
    """The member, when it is claimed now; else the error that says why it cannot be used."""
    m = pool.members.get(sandbox_id)
    if m is None:
        if sandbox_id in pool.recently_gone:
            raise ClaimEnded(f"sandbox '{sandbox_id}' of pool '{pool.name}' is gone "
                             f"({pool.recently_gone[sandbox_id]})")
        raise SandboxNotFound(f"pool '{pool.name}' has no sandbox '{sandbox_id}'")
    if m.state is not MemberState.CLAIMED or m.sandbox is None:
        if m.state in (MemberState.TERMINATING, MemberState.GONE):
            raise ClaimEnded(f"sandbox '{sandbox_id}' of pool '{pool.name}' is {m.state.value} ({m.reason})")
        raise InvalidRequest(f"sandbox '{sandbox_id}' is {m.state.value}, not claimed: claim one first")
    return m


async def exec_in(pool: Pool, sandbox_id: str, req: ExecRequest) -> AsyncGenerator[ExecChunk | ExecResult, None]:
    """The command's output as it comes, then one ExecResult; the checks run before anything is yielded,
    so a caller gets its error from the first step."""
    m = claimed_member(pool, sandbox_id)
    run = uses(pool, "exec")
    if m.env:
        req = ExecRequest(req.argv, tuple({**dict(m.env), **dict(req.env)}.items()), req.cwd, req.stdin,
                          req.timeout, req.max_output)
    # Refused here, before the provider is asked: each exec is a process and a connection (a thread in the
    # local agent), and a flood of them must not take the sandbox down with it.
    if m.execs >= pool.cfg.max_execs:
        raise TooManyExecs(f"sandbox '{sandbox_id}' of pool '{pool.name}' is running {m.execs} execs, as many as "
                           f"its pool allows at once (max_execs = {pool.cfg.max_execs}): retry once one has ended")
    m.execs += 1
    pool.metrics.execs += 1
    try:
        async with aclosing(run(m.sandbox, req)) as items:  # closed at once when our caller stops reading
            async for item in items:
                yield item
    finally:
        m.execs -= 1


async def put_file(pool: Pool, sandbox_id: str, path: str, data: bytes, mode: int = 0o644) -> int:
    """Write a file under the claim's work directory; its size. Refused, writing nothing, past the caps."""
    rel = check_path(path)
    if not isinstance(data, bytes):
        raise InvalidRequest("the content of a file must be bytes")
    m = _room_for(pool, sandbox_id, rel, len(data), mode)
    put = uses(pool, "put_file")
    m.files_in += len(data)
    await put(m.sandbox, rel, data, mode)
    return len(data)


async def put_stream(pool: Pool, sandbox_id: str, rel: str, size: int, chunks: AsyncIterator[bytes],
                     mode: int = 0o644) -> int:
    """Write a file of `size` bytes that arrives in chunks (a tar member), never held whole: counted
    against the caps by its declared size before any chunk is read. `rel` is checked already."""
    m = _room_for(pool, sandbox_id, rel, size, mode)
    put = uses(pool, "put_stream")
    m.files_in += size
    await put(m.sandbox, rel, size, chunks, mode)
    return size


def _room_for(pool: Pool, sandbox_id: str, rel: str, size: int, mode: int) -> Member:
    """The claimed member, when a file of `size` bytes fits both caps; else InvalidRequest naming the cap."""
    if not 0 <= mode <= 0o777:
        raise InvalidRequest(f"mode = {mode!r} is not allowed: permission bits from 0 to 0o777")
    m = claimed_member(pool, sandbox_id)
    if size > MAX_FILE:
        raise InvalidRequest(f"{rel} is {size} bytes; at most {MAX_FILE} per file")
    if m.files_in + size > MAX_CLAIM_FILES:
        raise InvalidRequest(f"this claim has had {m.files_in} bytes of files; {size} more would pass the "
                             f"{MAX_CLAIM_FILES} a claim may put")
    return m


async def get_file(pool: Pool, sandbox_id: str, path: str, limit: int = MAX_FILE) -> bytes:
    """A file's content from under the claim's work directory (at most `limit` bytes, MAX_FILE at most)."""
    rel = check_path(path)
    m = claimed_member(pool, sandbox_id)
    data: bytes = await uses(pool, "get_file")(m.sandbox, rel, min(limit, MAX_FILE))
    return data


async def apply_claim(pool: Pool, m: Member, env: tuple[tuple[str, str], ...], files: dict[str, bytes]) -> None:
    """A new claim's own env and files, before it is handed out; any failure ends the claim (the sandbox
    may hold half of them, so it serves nobody else)."""
    m.env = env
    if not files:
        return
    try:
        put = uses(pool, "put_file")
        for rel, data in files.items():
            m.files_in += len(data)
            await put(m.sandbox, rel, data, 0o644)
    except BaseException:
        pool.end_claim(m, "the claim's files could not be written")
        raise
