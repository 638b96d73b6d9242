"""The control interface the console speaks: PoolManager (embedded) and the HTTP client both provide it."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any, Protocol

from ..core.model import Claim, Event, MaintenanceReport, PoolSnapshot


class Control(Protocol):
    embedded: bool

    async def get(self, pool: str, members: bool = True) -> PoolSnapshot: ...

    async def list_pools(self, members: bool = False) -> list[PoolSnapshot]: ...

    async def claim(self, pool: str, timeout: float | None = None, check_health: bool = False,
                    claim_key: str | None = None) -> Claim: ...

    async def release(self, pool: str, sandbox_id: str) -> bool: ...

    async def terminate(self, pool: str, ids: list[str]) -> list[str]: ...

    async def resize(self, pool: str, target: int | None = None, min_ready: int | None = None,
                     max_ready: int | None = None, persist: bool = False) -> PoolSnapshot: ...

    async def drain(self, pool: str, wait: bool = False) -> PoolSnapshot: ...

    async def pause(self, pool: str) -> PoolSnapshot: ...

    async def resume(self, pool: str) -> PoolSnapshot: ...

    async def maintain(self, pool: str) -> MaintenanceReport: ...

    def events(self, pool: str | None = None) -> AsyncIterator[Event]: ...


async def recent_events(control: Control, pool: str | None = None, limit: int = 200) -> list[Event]:
    """The backlog, where the backend keeps one (the manager does; a client may or may not)."""
    fn: Any = getattr(control, "recent_events", None)
    if fn is None:
        return []
    got = fn(pool, limit=limit)
    if inspect.isawaitable(got):
        got = await got
    return list(got)


def config_path(control: Control) -> str | None:
    """The pool file an embedded manager saves resizes into (None when remote: the server decides)."""
    config = getattr(control, "config", None)
    path = getattr(config, "path", None)
    return str(path) if path is not None else None
