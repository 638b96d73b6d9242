"""A provider whose sandboxes are bookkeeping only: for benchmarks and for fault injection in tests.

Nothing runs; create and readiness take `create_delay` / `ready_delay`; `fail` makes every create fail.
Tests flip the attributes of a live provider to inject faults.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ..config import PoolConfig, TableReader
from ..errors import ProviderError, ReadinessTimeout
from .base import ProbeResult, ProviderContext, Sandbox

# Pool names whose provider starts out unreachable: lets a test fail a manager's very first check.
INSTANT_UNREACHABLE: dict[str, bool] = {}


@dataclass(frozen=True)
class InstantOptions:
    create_delay: float = 0.0
    ready_delay: float = 0.0
    fail: bool = False


def parse_options(raw: dict[str, Any], where: str) -> InstantOptions:
    t = TableReader(raw, where)
    opts = InstantOptions(
        create_delay=t.duration("create_delay", 0.0),
        ready_delay=t.duration("ready_delay", 0.0),
        fail=bool(t.get("fail", False)),
    )
    t.finish(("create_delay", "ready_delay", "fail"), sort=False)
    return opts


class InstantProvider:
    kind = "instant"

    def __init__(self, pool: PoolConfig, ctx: ProviderContext) -> None:
        opts: InstantOptions = pool.options or InstantOptions()
        self.pool = pool
        self.ctx = ctx
        self.create_delay = opts.create_delay
        self.ready_delay = opts.ready_delay
        self.fail = opts.fail
        self.never_ready = False
        self.unreachable = INSTANT_UNREACHABLE.get(pool.name, False)
        self.unhealthy: set[str] = set()
        self.live: dict[str, Sandbox] = {}
        self.created = 0
        self.terminated = 0

    @property
    def isolation(self) -> str:
        return "none (instant test provider)"

    async def check(self) -> None:
        if self.unreachable:
            raise ProviderError("instant provider told to be unreachable")

    async def create(self, member_id: str, ttl: float) -> Sandbox:
        if self.create_delay:
            await asyncio.sleep(self.create_delay)
        if self.fail:
            raise ProviderError("instant provider told to fail")
        self.created += 1
        sb = Sandbox(member_id, f"instant://{self.pool.name}/{member_id}", {"n": self.created}, time.time() + ttl)
        self.live[member_id] = sb
        return sb

    async def wait_ready(self, sb: Sandbox, timeout: float) -> None:
        if self.never_ready:
            await asyncio.sleep(timeout)
            raise ReadinessTimeout(f"{sb.member_id} not ready after {timeout:g}s")
        if self.ready_delay:
            await asyncio.sleep(self.ready_delay)

    async def health(self, sb: Sandbox) -> ProbeResult:
        if sb.member_id in self.unhealthy:
            return ProbeResult(False, "told to be unhealthy")
        return ProbeResult(sb.member_id in self.live, "ok" if sb.member_id in self.live else "gone")

    def alive(self, sb: Sandbox) -> bool:
        return sb.member_id in self.live

    async def terminate(self, sb: Sandbox) -> None:
        if self.live.pop(sb.member_id, None) is not None:
            self.terminated += 1

    async def list_ours(self) -> list[Sandbox]:
        if self.unreachable:
            raise ProviderError("instant provider told to be unreachable")
        return list(self.live.values())

    async def close(self) -> None:
        return None

    def kill_from_outside(self, member_id: str) -> None:
        self.live.pop(member_id, None)
        self.ctx.on_exit(member_id, "killed from outside")


def make(pool: PoolConfig, ctx: ProviderContext) -> InstantProvider:
    return InstantProvider(pool, ctx)
