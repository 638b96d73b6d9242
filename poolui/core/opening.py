"""Opening a pool: check its provider and adopt what a previous manager left; a provider that is merely
unreachable (not misconfigured) leaves the pool degraded, adopting and refilling once it answers."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .. import backoff
from ..errors import ConfigError, ProviderError, ProviderUnavailable
from .adoption import adopted_member, plan_adoption
from .store_api import StoredMember

if TYPE_CHECKING:
    from .pool import Pool

log = logging.getLogger("poolui.pool")
ADOPT_BACKOFF = (0.5, 30.0)  # retrying a provider that did not answer at start


async def open_pool(pool: Pool, rows: list[StoredMember]) -> tuple[int, int]:
    """(adopted, killed); raises when the provider cannot work at all (bad credentials, no program)."""
    if pool.cfg.reuse is not None and not hasattr(pool.provider, "reset"):
        raise ConfigError(f"pool '{pool.name}': reuse = true, but the {pool.provider.kind} provider cannot reset a "
                          "sandbox between claims (the local provider can); remove reuse or change the provider")
    if pool.cfg.network != "auto" and not hasattr(pool.provider, "shield"):
        raise ConfigError(f"pool '{pool.name}': network = \"{pool.cfg.network}\" is for the local provider only; "
                          f"the {pool.provider.kind} provider's network is set in [pools.{pool.name}."
                          f"{pool.provider.kind}]")
    try:
        await pool.provider.check()
        return await adopt(pool, rows)
    except ProviderError as e:
        if isinstance(e, ProviderUnavailable) and not e.transient:
            raise
        pool.unadopted = rows
        pool.degraded_reason = f"provider unreachable: {e}"
        pool.emit("degraded", None, pool.degraded_reason)
        return 0, 0


async def adopt_when_reachable(pool: Pool, rows: list[StoredMember]) -> None:
    """Retry the provider with backoff until it answers, then adopt `rows`."""
    retry = backoff.Backoff(*ADOPT_BACKOFF)
    while True:
        await pool.clock.sleep(retry.failed())
        try:
            await pool.provider.check()
            adopted, killed = await adopt(pool, rows)
        except ProviderError as e:
            pool.degraded_reason = f"provider unreachable: {e}"
            continue
        pool.unadopted = None
        pool.degraded_reason = ""
        pool.emit("recovered", None, f"provider reachable again; adopted {adopted}, killed {killed}")
        return


async def adopt(pool: Pool, rows: list[StoredMember]) -> tuple[int, int]:
    """Take over what a previous manager left (see adoption.plan_adoption). Returns (adopted, killed)."""
    plan = plan_adoption(rows, await pool.provider.list_ours(), pool.clock.time(), pool.cfg)
    now_w, now_m = pool.clock.time(), pool.clock.monotonic()
    for sb in plan.kill:
        try:
            await pool.provider.terminate(sb)
        except Exception as e:
            log.warning("pool %s: could not kill stray %s: %s", pool.name, sb.member_id, e)
        pool.store.delete(sb.member_id)
        # Known by its label alone when its row was never committed (a manager killed between a turn's
        # writes and their commit): a release of it still hears that it went, and why.
        pool.remember_gone(sb.member_id, "left over by a previous manager")
        pool.bus.emit(now_w, pool.name, "terminated", sb.member_id, "gone", "left over by a previous manager")
    for k in plan.keep:
        pool.install(adopted_member(k, pool.name, now_w, now_m))
    for row in plan.lost:
        pool.store.delete(row.id)
        pool.bus.emit(now_w, pool.name, "lost", row.id, "gone", "not alive after a restart")
    pool.handout.order_by_ready_time()
    pool.next_scan = 0.0  # adopted members' deadlines are not known to the scan yet
    return len(plan.keep), len(plan.kill)
