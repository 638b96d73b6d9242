"""A provider whose sandboxes are bookkeeping only: for benchmarks, the simulator and fault injection.

Nothing runs; create and readiness take `create_delay` / `ready_delay` on the engine's clock, and each
sandbox ends by itself at its TTL like a real one. `fail` makes every create fail, `unreachable` makes the
provider start out unreachable; tests flip the attributes of a live provider to inject faults.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import PoolConfig, TableReader
from ..errors import ProviderError, ReadinessTimeout
from .base import ProbeResult, ProviderContext, Sandbox
from .common import options_of

KEYS = ("create_delay", "ready_delay", "fail", "unreachable")


@dataclass(frozen=True)
class InstantOptions:
    create_delay: float = 0.0
    ready_delay: float = 0.0
    fail: bool = False
    unreachable: bool = False


def parse_options(raw: dict[str, Any], where: str) -> InstantOptions:
    t = TableReader(raw, where)
    opts = InstantOptions(
        create_delay=t.duration("create_delay", 0.0, maximum=3600.0),
        ready_delay=t.duration("ready_delay", 0.0, maximum=3600.0),
        fail=t.bool_("fail", False),
        unreachable=t.bool_("unreachable", False),
    )
    t.finish(KEYS, sort=False)
    return opts


class InstantProvider:
    kind = "instant"

    def __init__(self, pool: PoolConfig, ctx: ProviderContext) -> None:
        opts = options_of(pool, InstantOptions, parse_options)
        self.pool = pool
        self.ctx = ctx
        self.create_delay = opts.create_delay
        self.ready_delay = opts.ready_delay
        self.fail = opts.fail
        self.unreachable = opts.unreachable
        self.never_ready = False
        self.create_times: Callable[[], float] | None = None  # the simulator's draws, else create_delay each time
        self.unhealthy: set[str] = set()
        self.live: dict[str, Sandbox] = {}
        self._ends: dict[str, asyncio.TimerHandle] = {}
        self.created = 0
        self.terminated = 0

    @property
    def isolation(self) -> str:
        return "none (instant test provider)"

    async def check(self) -> None:
        if self.unreachable:
            raise ProviderError("instant provider told to be unreachable", transient=True)

    async def create(self, member_id: str, ttl: float) -> Sandbox:
        delay = self.create_delay if self.create_times is None else self.create_times()
        if delay:
            await self.ctx.clock.sleep(delay)
        if self.fail:
            raise ProviderError("instant provider told to fail")
        self.created += 1
        sb = Sandbox(member_id, f"instant://{self.pool.name}/{member_id}", {"n": self.created},
                     self.ctx.clock.time() + ttl)
        self.live[member_id] = sb
        # The hard TTL, kept by the provider as a real one keeps it: the sandbox ends whatever the engine does.
        self._ends[member_id] = asyncio.get_running_loop().call_later(ttl, self._end, member_id, "reached its TTL")
        return sb

    async def wait_ready(self, sb: Sandbox, timeout: float) -> None:
        if self.never_ready:
            await self.ctx.clock.sleep(timeout)
            raise ReadinessTimeout(f"{sb.member_id} not ready after {timeout:g}s")
        if self.ready_delay:
            await self.ctx.clock.sleep(self.ready_delay)

    async def health(self, sb: Sandbox) -> ProbeResult:
        if sb.member_id in self.unhealthy:
            return ProbeResult(False, "told to be unhealthy")
        return ProbeResult(sb.member_id in self.live, "ok" if sb.member_id in self.live else "gone")

    def alive(self, sb: Sandbox) -> bool:
        return sb.member_id in self.live

    def _forget(self, member_id: str) -> bool:
        end = self._ends.pop(member_id, None)
        if end is not None:
            end.cancel()
        return self.live.pop(member_id, None) is not None

    async def terminate(self, sb: Sandbox) -> None:
        if self._forget(sb.member_id):
            self.terminated += 1

    async def list_ours(self) -> list[Sandbox]:
        if self.unreachable:
            raise ProviderError("instant provider told to be unreachable", transient=True)
        return list(self.live.values())

    async def close(self) -> None:
        return None

    def _end(self, member_id: str, how: str) -> None:
        if self._forget(member_id):
            self.ctx.on_exit(member_id, how)

    def kill_from_outside(self, member_id: str) -> None:
        """A sandbox that dies without the engine asking: on_exit tells the pool, as a real death would."""
        self._end(member_id, "killed from outside")


def make(pool: PoolConfig, ctx: ProviderContext) -> InstantProvider:
    return InstantProvider(pool, ctx)
