"""Small generic helpers for tests: `from helpers import wait_for`."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


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
