"""Small generic helpers for tests: `from helpers import Exits, wait_for`."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from poolui.core.journal import rows_kept


async def wait_for(cond: Callable[[], Any], timeout: float, interval: float = 0.01, what: str = "") -> Any:
    """Poll `cond()` (plain or async) until it is truthy and return its value; AssertionError at the deadline.

    Tests synchronise on conditions, never on sleeps: the deadline only bounds how long a failure takes.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout:g}s: {what or getattr(cond, '__qualname__', cond)}")
        await asyncio.sleep(interval)


class Exits:
    """A provider's `on_exit` callback that records which members it reported dead, and how."""

    def __init__(self) -> None:
        self.members: list[str] = []
        self.how: dict[str, str] = {}
        self.changed = asyncio.Event()

    def __call__(self, member_id: str, how: str = "") -> None:
        self.members.append(member_id)
        self.how[member_id] = how
        self.changed.set()

    async def wait_for(self, member_id: str, timeout: float = 15.0) -> None:
        """Return once member_id has been reported; TimeoutError at the deadline."""
        async with asyncio.timeout(timeout):
            while member_id not in self.members:
                self.changed.clear()
                await self.changed.wait()


def kept_rows(state_dir: Path) -> dict[str, tuple[Any, ...]]:
    """The member rows a controller started on `state_dir` now would find, by id (store_schema.COLUMNS),
    read through another connection as a start reads them (journal.rows_kept)."""
    db = sqlite3.connect(state_dir / "poolui.sqlite3")
    try:
        return rows_kept(db, state_dir)[0]
    finally:
        db.close()
