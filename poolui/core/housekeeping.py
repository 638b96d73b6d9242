"""A pool's housekeeping: the health loop, the maintenance pass and the stray sweep.

Probing never takes members away from claimers (rule 3): a member stays claimable while its probe runs,
and only a failed one is retired. Retiring goes through the Pool, which alone changes member states.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..errors import ProviderError
from ..providers.base import Sandbox
from .eligibility import EXPIRING, STALE, verdict
from .member import Member
from .model import MaintenanceReport, MemberState

if TYPE_CHECKING:
    from .pool import Pool

log = logging.getLogger("poolui.pool")
PROBES_AT_ONCE = 16


class Housekeeper:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def loops(self) -> list[asyncio.Task[Any]]:
        name = self.pool.name
        tasks = [asyncio.create_task(self._maintenance_loop(), name=f"pool-{name}-maint")]
        if self.pool.cfg.health is not None:
            tasks.append(asyncio.create_task(self._health_loop(), name=f"pool-{name}-health"))
        return tasks

    async def _health_loop(self) -> None:
        while (health := self.pool.cfg.health) is not None:
            await self.pool.clock.sleep(health.interval)
            try:
                await self.probe_all()
            except Exception:
                log.exception("pool %s: health sweep failed", self.pool.name)

    async def _maintenance_loop(self) -> None:
        while True:
            await self.pool.clock.sleep(self.pool.cfg.maintenance_interval)
            try:
                await self.maintain()
            except Exception:
                log.exception("pool %s: maintenance failed", self.pool.name)

    # ------------------------------------------------------------ probes

    async def probe(self, m: Member) -> bool:
        """One in-place health check; the member stays claimable while it runs."""
        pool = self.pool
        if m.sandbox is None:
            return True
        result = await pool.provider.health(m.sandbox)
        m.last_probe_at = pool.clock.time()
        was = m.health_ok
        m.health_ok, m.health_detail, m.view = result.ok, result.detail, None
        if not result.ok:
            pool.emit("probe_failed", m, result.detail)
            if m.state is MemberState.READY:
                pool.retire(m, f"health check failed: {result.detail}")
        elif was is False:
            pool.emit("probe_ok", m, result.detail)
        return result.ok

    async def probe_many(self, members: list[Member]) -> list[str]:
        """Probe members, PROBES_AT_ONCE at a time; the ids that failed."""
        sem = asyncio.Semaphore(PROBES_AT_ONCE)

        async def one(m: Member) -> bool:
            async with sem:
                return await self.probe(m)

        results = await asyncio.gather(*(one(m) for m in members), return_exceptions=True)
        return [m.id for m, ok in zip(members, results, strict=True) if ok is not True]

    async def probe_all(self) -> list[str]:
        """Health-check ready and claimed members in place; returns the ids that failed."""
        live = (MemberState.READY, MemberState.CLAIMED)
        return await self.probe_many([m for m in self.pool.members.values() if m.state in live])

    # ------------------------------------------------------------ maintenance

    async def maintain(self) -> MaintenanceReport:
        """Probe every ready member now, remove the unhealthy, expiring and stale ones, sweep strays, refill."""
        pool = self.pool
        report = MaintenanceReport(pool.name)
        candidates = pool.handout.members()
        report.probed = len(candidates)
        if pool.cfg.health is not None:
            report.removed_unhealthy = await self.probe_many(candidates)
        for m in candidates:
            if m.state is not MemberState.READY:
                continue
            alive = m.sandbox is None or pool.provider.alive(m.sandbox)
            v = verdict(m, pool.cfg, pool.ttl_left(m), alive)
            if v is None:
                continue
            bucket = {STALE: report.removed_stale, EXPIRING: report.removed_expiring}.get(
                v.kind, report.removed_unhealthy)
            bucket.append(m.id)
            pool.retire(m, v.reason)
        report.removed_strays = await self.sweep_strays()
        before = pool.metrics.creates
        pool.reconcile()
        report.created = pool.metrics.creates - before
        pool.emit("maintenance", None, report.summary())
        return report

    async def sweep_strays(self) -> list[str]:
        """Kill running sandboxes of this pool that the pool does not know (a sandbox whose owner died in
        an odd moment). Safe against creates in flight: a member is recorded before its create starts."""
        pool = self.pool
        if not pool.adopted:
            return []
        try:
            live = await pool.provider.list_ours()
        except ProviderError as e:
            log.warning("pool %s: could not list sandboxes for the stray sweep: %s", pool.name, e)
            return []
        strays = [sb for sb in live if not pool.knows(sb.member_id)]
        for sb in strays:
            pool.emit("terminating", None, f"stray {sb.member_id}: running but unknown to the pool")
            pool.spawn(self.kill_stray(sb), f"kill-stray-{sb.member_id}")
        return [sb.member_id for sb in strays]

    async def kill_stray(self, sb: Sandbox) -> None:
        try:
            await self.pool.provider.terminate(sb)
        except Exception as e:
            log.warning("pool %s: could not kill stray %s: %s", self.pool.name, sb.member_id, e)
