"""PoolManager: every pool of a config, one store, start/stop/adoption, and the control verbs.

The console, the headless CLI and the server speak to pools only through these methods (or the HTTP client
that mirrors them), so everything works the same embedded or remote.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType

from ..config import Config, save_pool_sizes
from ..errors import InvalidRequest, PoolError, PoolNotFound, WarmUpTimeout
from ..providers import make_provider
from ..providers.base import ProviderContext
from .clock import Clock
from .events import EventBus
from .model import Claim, Event, MaintenanceReport, PoolSnapshot
from .pool import Pool
from .store import Store, default_state_dir, namespace_of


class PoolManager:
    embedded = True

    def __init__(self, config: Config, state_dir: str | os.PathLike[str] | None = None,
                 clock: Clock | None = None) -> None:
        self.config = config
        self.state_dir = Path(state_dir or config.state_dir or default_state_dir()).expanduser().resolve()
        self.clock = clock or Clock()
        self.pools: dict[str, Pool] = {}
        self.store: Store | None = None
        self.bus = EventBus()
        self._lock_fd: int | None = None
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> PoolManager:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    def _lock(self) -> None:
        """One manager per state directory: two would adopt and kill each other's sandboxes."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise PoolError(
                f"state directory {self.state_dir} is in use by pid {holder}; stop that poolui first "
                f"or give this one its own state directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    async def start(self) -> None:
        if self._started:
            return
        self._lock()
        try:
            self.store = Store(self.state_dir)
            self.bus = EventBus(sink=self.store.add_event)
            namespace = namespace_of(self.state_dir)
            for name, cfg in self.config.pools.items():
                ctx = ProviderContext(namespace=namespace, state_dir=self.state_dir,
                                      on_exit=self._exit_handler(name))
                provider = make_provider(cfg, ctx)
                pool = Pool(cfg, provider, self.store, self.bus, self.clock)
                self.pools[name] = pool
                adopted, killed = await pool.open(self.store.members(name))
                if adopted or killed:
                    self.bus.emit(self.clock.time(), name, "restarted", None, None,
                                  f"adopted {adopted}, killed {killed} left over")
            for pool in self.pools.values():
                pool.start()
        except BaseException:
            await self._close_after_failed_start()
            raise
        self._started = True

    async def _close_after_failed_start(self) -> None:
        for pool in self.pools.values():
            await pool.stop(keep=True)
            await pool.provider.close()
        self.pools.clear()
        self._unlock()

    def _exit_handler(self, name: str) -> Callable[[str, str], None]:
        def on_exit(member_id: str, how: str = "") -> None:
            pool = self.pools.get(name)
            if pool is not None:
                pool.on_exit(member_id, how)

        return on_exit

    async def stop(self, keep: bool = False) -> None:
        """keep=False terminates every sandbox this manager owns; keep=True leaves ready and claimed ones
        running for the next manager on the same state directory to adopt."""
        if not self._started:
            return
        self._started = False
        await asyncio.gather(*(p.stop(keep=keep) for p in self.pools.values()))
        for p in self.pools.values():
            await p.provider.close()
        if self.store is not None:
            self.store.close()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def warm_up(self, timeout: float = 30.0, pools: list[str] | None = None) -> None:
        """Wait until every pool (or the named ones) has target_ready ready sandboxes."""
        names = pools or list(self.pools)
        targets = [self.pool(n) for n in names]
        deadline = self.clock.monotonic() + timeout
        while True:
            short = [p for p in targets if len(p.ready) < p.cfg.target_ready and p.mode == "normal"]
            if not short:
                return
            if self.clock.monotonic() >= deadline:
                detail = "; ".join(
                    f"pool '{p.name}' has {len(p.ready)}/{p.cfg.target_ready} ready ({p.state().value}"
                    + (f": {p.degraded_reason}" if p.degraded_reason else "") + ")"
                    for p in short
                )
                raise WarmUpTimeout(f"not warm after {timeout:g}s: {detail}")
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ control verbs

    def pool(self, name: str) -> Pool:
        try:
            return self.pools[name]
        except KeyError:
            known = ", ".join(self.pools) or "none"
            raise PoolNotFound(f"no pool named '{name}'; pools: {known}") from None

    @property
    def names(self) -> list[str]:
        return list(self.pools)

    def snapshot(self, pool: str, members: bool = True) -> PoolSnapshot:
        return self.pool(pool).snapshot(members)

    async def get(self, pool: str, members: bool = True) -> PoolSnapshot:
        """The same as snapshot(), awaitable, as the HTTP client has it."""
        return self.snapshot(pool, members)

    async def list_pools(self, members: bool = False) -> list[PoolSnapshot]:
        return [p.snapshot(members) for p in self.pools.values()]

    async def claim(self, pool: str, timeout: float | None = None, check_health: bool = False,
                    claim_key: str | None = None) -> Claim:
        return await self.pool(pool).claim(timeout=timeout, check_health=check_health, claim_key=claim_key)

    async def release(self, pool: str, sandbox_id: str) -> bool:
        return await self.pool(pool).release(sandbox_id)

    async def terminate(self, pool: str, ids: list[str]) -> list[str]:
        return await self.pool(pool).terminate(list(ids))

    async def resize(self, pool: str, target: int | None = None, min_ready: int | None = None,
                     max_ready: int | None = None, persist: bool = False) -> PoolSnapshot:
        p = self.pool(pool)
        if target is None and min_ready is None and max_ready is None:
            raise InvalidRequest("resize needs at least one of target, min_ready, max_ready")
        if persist and self.config.path is None:
            raise InvalidRequest("persist: this pool set was not read from a file, there is nothing to save")
        old = p.cfg
        new = p.resize(target, min_ready, max_ready)
        if persist:
            assert self.config.path is not None
            try:
                save_pool_sizes(self.config.path, pool, target_ready=new.target_ready,
                                min_ready=new.min_ready, max_ready=new.max_ready)
            except Exception:
                p.resize(old.target_ready, old.min_ready, old.max_ready)
                raise
        return p.snapshot(members=False)

    async def drain(self, pool: str, wait: bool = False, timeout: float | None = None) -> PoolSnapshot:
        p = self.pool(pool)
        p.drain()
        if wait:
            deadline = None if timeout is None else self.clock.monotonic() + timeout
            while p.members:
                if deadline is not None and self.clock.monotonic() > deadline:
                    raise WarmUpTimeout(f"pool '{pool}' still has {len(p.members)} sandboxes after {timeout:g}s")
                await asyncio.sleep(0.02)
        return p.snapshot(members=False)

    async def pause(self, pool: str) -> PoolSnapshot:
        p = self.pool(pool)
        p.pause()
        return p.snapshot(members=False)

    async def resume(self, pool: str) -> PoolSnapshot:
        p = self.pool(pool)
        p.resume()
        return p.snapshot(members=False)

    async def maintain(self, pool: str) -> MaintenanceReport:
        return await self.pool(pool).maintain()

    async def events(self, pool: str | None = None, size: int = 1000) -> AsyncIterator[Event]:
        """Every state change from now on; a subscriber that falls behind loses its oldest events."""
        if pool is not None:
            self.pool(pool)
        sub = self.bus.subscribe(size)
        try:
            async for event in sub:
                if pool is None or event.pool == pool:
                    yield event
        finally:
            sub.close()

    def recent_events(self, pool: str | None = None, limit: int = 200) -> list[Event]:
        events = [e for e in self.bus.recent if pool is None or e.pool == pool]
        return events[-limit:]
