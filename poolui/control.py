"""The control contract: every verb a set of pools answers, in one async shape.

PoolManager (the pools in this process) and PoolClient (the pools of a `poolui serve`, over HTTP) both meet
it, and mypy checks that they do (poolui/connect.py); the console, the headless CLI and the server speak
only this, so they work the same embedded or remote. tests/contract/ runs one suite against both.

Errors are poolui.errors types on both sides: PoolNotFound for an unknown pool, SandboxNotFound for an
unknown sandbox, InvalidRequest for a value out of range, PoolExhausted / PoolDraining / ClaimTimeout when
no sandbox can be handed out, ServerUnreachable and Unauthorized from the client only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from .core.model import Claim, Event, Lease, MaintenanceReport, PoolSnapshot
from .sandbox_io import ExecChunk, ExecResult


class EventFeed(Protocol):
    """State changes as they happen, as an async iterator. `dropped` counts events this subscriber lost
    by falling behind (its buffer is bounded and drops the oldest); `aclose()` ends it."""

    dropped: int

    def __aiter__(self) -> AsyncIterator[Event]: ...

    async def __anext__(self) -> Event: ...

    async def aclose(self) -> None: ...


class Control(Protocol):
    @property
    def embedded(self) -> bool:
        """True when the pools run in this process (PoolManager), False over HTTP (PoolClient)."""
        ...

    async def names(self) -> list[str]:
        """The pools' names, in the pool file's order."""
        ...

    async def snapshot(self, pool: str, members: bool = True) -> PoolSnapshot:
        """One pool now: state, sizes, counts, metrics and (members=True) every member."""
        ...

    async def list_pools(self, members: bool = False) -> list[PoolSnapshot]:
        """Every pool's snapshot, in the pool file's order."""
        ...

    async def claim(self, pool: str, timeout: float | None = None, check_health: bool = False,
                    claim_key: str | None = None, lease: float | None = None, env: dict[str, str] | None = None,
                    files: dict[str, bytes | str] | None = None) -> Claim:
        """Hand out a ready sandbox (never one handed out before); wait up to `timeout` (default: the
        pool's claim_timeout) when none is ready. The same claim_key returns the same claim. With a lease
        (default: the pool's claim_lease) the claim ends unless renewed within `lease` seconds. env applies
        to every exec of the claim (never stored or shown); files land in its work directory first."""
        ...

    def exec(self, pool: str, sandbox_id: str, argv: list[str], env: dict[str, str] | None = None,
             cwd: str = "", stdin: bytes | str = b"", timeout: float | None = None,
             max_output: int | None = None) -> AsyncIterator[ExecChunk | ExecResult]:
        """Run a command in a claimed sandbox: ExecChunks as output comes, then one ExecResult."""
        ...

    async def put_file(self, pool: str, sandbox_id: str, path: str, data: bytes, mode: int = 0o644) -> int:
        """Write a file under a claimed sandbox's work directory; its size."""
        ...

    async def get_file(self, pool: str, sandbox_id: str, path: str) -> bytes:
        """A file from under a claimed sandbox's work directory."""
        ...

    async def put_tar(self, pool: str, sandbox_id: str, path: str, data: bytes) -> int:
        """Unpack a tar under `path` of a claimed sandbox's work directory; the number of files written."""
        ...

    async def get_tar(self, pool: str, sandbox_id: str, path: str) -> bytes:
        """The regular files under `path` of a claimed sandbox's work directory, as a tar."""
        ...

    def run(self, pool: str, argv: list[str], env: dict[str, str] | None = None,
            files: dict[str, bytes | str] | None = None, cwd: str = "", stdin: bytes | str = b"",
            timeout: float | None = None, claim_timeout: float | None = None,
            max_output: int | None = None) -> AsyncIterator[ExecChunk | ExecResult]:
        """Claim, exec, release in one call, streamed like exec."""
        ...

    async def renew(self, pool: str, sandbox_id: str, lease: float | None = None) -> Lease:
        """Extend a claim's lease by `lease` seconds (default: its own length); ClaimEnded once it is over."""
        ...

    async def release(self, pool: str, sandbox_id: str) -> bool:
        """End a claim (the sandbox is terminated and replaced). False when it was released already."""
        ...

    async def release_claim(self, pool: str, claim_key: str) -> bool:
        """End the claim a claim key holds; False, changing nothing, when it holds none (so a client that
        lost a claim's answer can give it back without knowing whether it was made)."""
        ...

    def claimed(self, pool: str, timeout: float | None = None, check_health: bool = False,
                claim_key: str | None = None, lease: float | None = None) -> AbstractAsyncContextManager[Claim]:
        """`async with c.claimed(pool, lease=30) as claim:` holds a claim for the block: its lease renewed
        while the block runs, released at the end, also when the block is cancelled."""
        ...

    async def terminate(self, pool: str, ids: list[str]) -> list[str]:
        """Terminate sandboxes, claimed or not; returns those that were not already going."""
        ...

    async def resize(self, pool: str, target: int | None = None, min_ready: int | None = None,
                     max_ready: int | None = None, persist: bool = False) -> PoolSnapshot:
        """New sizes (min_ready <= target <= max_ready <= max_total); persist also writes the pool file."""
        ...

    async def drain(self, pool: str, wait: bool = False, timeout: float | None = None) -> PoolSnapshot:
        """No new claims; ready sandboxes retired; claimed ones left to finish. wait: until none is left
        (WarmUpTimeout after `timeout` seconds)."""
        ...

    async def pause(self, pool: str) -> PoolSnapshot:
        """Keep serving claims, stop refilling."""
        ...

    async def resume(self, pool: str) -> PoolSnapshot:
        """Undo pause or drain."""
        ...

    async def maintain(self, pool: str) -> MaintenanceReport:
        """Probe ready sandboxes now, remove unhealthy, expiring and stale ones and strays, refill."""
        ...

    def events(self, pool: str | None = None, size: int = 1000) -> EventFeed:
        """State changes from now on (of one pool, or all); `size` bounds this subscriber's buffer."""
        ...

    async def recent_events(self, pool: str | None = None, limit: int = 200) -> list[Event]:
        """The last `limit` events kept (of one pool, or all), oldest first."""
        ...

    async def config_path(self) -> str | None:
        """The pool file the pools were read from (where resize persist writes), or None."""
        ...
