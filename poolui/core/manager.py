"""PoolManager: every pool of a config in this process, one store, start/stop/adoption, and the control
verbs of poolui.control (the HTTP client meets the same contract remotely)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Literal, get_args

from .. import paths
from ..clock import Clock
from ..config import Config
from ..config.edit import save_pool_sizes
from ..errors import InvalidRequest, PoolError, PoolNotFound, WarmUpTimeout
from ..providers.base import ProviderContext
from ..providers.common import PortPicker
from ..providers.registry import REGISTRY, make_provider
from ..sandbox_io import check_env, check_files
from . import claims, leases, modes
from .events import EventBus, Subscription
from .holding import claimed
from .manager_use import UseVerbs
from .model import Claim, Event, Lease, MaintenanceReport, PoolSnapshot
from .opening import open_pool
from .pool import Pool
from .store import Store, namespace_of
from .store_api import StateStore
from .store_memory import MemoryStore

WAIT_POLL = 0.01  # how often warm_up and drain(wait=True) look again
StoreKind = Literal["sqlite", "memory"]


class PoolManager(UseVerbs):
    """The pools of one Config, run in this process. Use it as `async with PoolManager(cfg) as mgr:`.

    One manager per state directory (a second one refuses to start): the directory holds the SQLite state
    every member is recorded in before it is created, so a manager that starts after a crash adopts what
    is still running (claimed sandboxes stay claimed) and kills the rest. `clock` drives every wait of the
    engine; tests and the simulator pass a clock on virtual time.
    """

    def __init__(self, config: Config, state_dir: str | os.PathLike[str] | None = None,
                 clock: Clock | None = None, store: Literal["sqlite", "memory"] = "sqlite") -> None:
        """Nothing starts yet (see start()). state_dir: --state-dir, else the config's, else
        $XDG_STATE_HOME/poolui; clock: real time unless given. store="memory" keeps the pools' state in this
        process only (the simulator, tests): no directory lock, no state file, nothing adopted after a restart,
        and a namespace of its own, so it never touches another manager's sandboxes."""
        if store not in get_args(StoreKind):
            raise InvalidRequest(f"store = {store!r} is not allowed: expected 'sqlite' or 'memory'")
        self.config = config
        self.state_dir = paths.state_dir(state_dir, config.state_dir)
        self.clock = clock or Clock()
        self.store_kind = store
        self.pools: dict[str, Pool] = {}
        self.store: StateStore | None = None
        self.bus = EventBus()
        self._lock_fd: int | None = None
        self._started = False

    @property
    def embedded(self) -> bool:
        """Always True: these pools run in this process."""
        return True

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
        """Lock the state directory (not with store="memory"), check every provider, adopt what a previous
        manager left, start refilling. Raises PoolError when the directory is in use, ProviderUnavailable when
        a provider cannot work at all (an unreachable one only leaves its pool degraded)."""
        if self._started:
            return
        if self.store_kind == "sqlite":
            self._lock()  # the durable store's rule: one manager per state directory
        try:
            self.store, namespace = self._open_store()
            # The pools' history past a restart (store_api.py): the events the store kept, numbered on from
            history = self.store.events(None, 1000)
            seq = self.store.next_seq() if isinstance(self.store, Store) else 0
            self.bus = EventBus(sink=self.store.add_event, history=history, seq=seq)
            ports = PortPicker()
            for name, cfg in self.config.pools.items():
                ctx = ProviderContext(namespace=namespace, state_dir=self.state_dir, on_exit=self._exit_handler(name),
                                      clock=self.clock, ports=ports)
                pool = Pool(cfg, make_provider(cfg, ctx), self.store, self.bus, self.clock)
                self.pools[name] = pool
                adopted, killed = await open_pool(pool, self.store.members(name))
                if adopted or killed:
                    self.bus.emit(self.clock.time(), name, "restarted", None, None,
                                  f"adopted {adopted}, killed {killed} left over")
            for pool in self.pools.values():
                pool.start()
        except BaseException:
            await self._close_after_failed_start()
            raise
        self._started = True

    def _open_store(self) -> tuple[StateStore, str]:
        """The one place a store is chosen: (the store, the namespace providers mark sandboxes with)."""
        if self.store_kind == "memory":
            return MemoryStore(), secrets.token_hex(5)  # a namespace no directory's hash will ever share
        return Store(self.state_dir), namespace_of(self.state_dir)

    async def _close_after_failed_start(self) -> None:
        for pool in self.pools.values():
            await pool.stop(keep=True)
            await pool.provider.close()
        self.pools.clear()
        try:
            if self.store is not None:
                self.store.close()
                self.store = None
        finally:
            self._unlock()

    def _exit_handler(self, name: str) -> Callable[[str, str], None]:
        def on_exit(member_id: str, how: str = "") -> None:
            pool = self.pools.get(name)
            if pool is not None:
                pool.on_exit(member_id, how)

        return on_exit

    async def stop(self, keep: bool = False) -> None:
        """keep=False terminates every sandbox this manager owns; keep=True leaves ready and claimed ones
        running for the next manager on the same state directory to adopt. Returns once nothing of the
        pools runs in this process any more."""
        if not self._started:
            return
        self._started = False
        await asyncio.gather(*(p.stop(keep=keep) for p in self.pools.values()))
        for p in self.pools.values():
            await p.provider.close()
        try:
            if self.store is not None:
                self.store.close()  # it raises if its last commit fails (a full disk): the journal keeps the rows
        finally:
            self._unlock()  # either way: a manager started again on this directory must not find it locked

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def warm_up(self, timeout: float = 30.0, pools: list[str] | None = None) -> None:
        """Wait until every pool (or the named ones) has target_ready ready sandboxes; WarmUpTimeout says
        which pool is short and why."""
        # target_ready as refill aims at it: the setpoint, which a sizing policy other than Static moves
        targets = [self.pool(n) for n in pools or list(self.pools)]
        deadline = self.clock.monotonic() + timeout
        while short := [p for p in targets if len(p.handout) < p.sizing.setpoint(p.cfg) and p.mode == "normal"]:
            if self.clock.monotonic() >= deadline:
                detail = "; ".join(
                    f"pool '{p.name}' has {len(p.handout)}/{p.sizing.setpoint(p.cfg)} ready ({p.state().value}"
                    + (f": {p.degraded_reason}" if p.degraded_reason else "") + ")"
                    for p in short
                )
                raise WarmUpTimeout(f"not warm after {timeout:g}s: {detail}")
            await self.clock.sleep(WAIT_POLL)

    def pool(self, name: str) -> Pool:
        """The engine's own Pool object (for tests and tools; the control verbs are the API)."""
        try:
            return self.pools[name]
        except KeyError:
            known = ", ".join(self.pools) or "none"
            raise PoolNotFound(f"no pool named '{name}'; pools: {known}") from None

    # ------------------------------------------------------------------ the control contract

    async def names(self) -> list[str]:
        """The pools' names, in the pool file's order."""
        return list(self.pools)

    async def snapshot(self, pool: str, members: bool = True) -> PoolSnapshot:
        """One pool now; PoolNotFound for an unknown name."""
        return self.pool(pool).snapshot(members)

    async def list_pools(self, members: bool = False) -> list[PoolSnapshot]:
        """Every pool's snapshot, in the pool file's order."""
        return [p.snapshot(members) for p in self.pools.values()]

    async def claim(self, pool: str, timeout: float | None = None, check_health: bool = False,
                    claim_key: str | None = None, lease: float | None = None, env: dict[str, str] | None = None,
                    files: dict[str, bytes | str] | None = None) -> Claim:
        """Hand out a ready sandbox, or wait for one up to `timeout` seconds (default: the pool's
        claim_timeout). Never hands out one sandbox twice; a claimer cancelled while waiting never keeps
        one. With a lease (default: the pool's claim_lease) the claim ends, and its sandbox goes, unless
        renewed within `lease` seconds. env applies to every exec of the claim (a secret: never stored or
        shown); files land in the work directory before the claim returns. Raises PoolExhausted
        (on_empty = "fail"), PoolDraining, ClaimTimeout, InvalidRequest."""
        return await self.pool(pool).claim(timeout=timeout, check_health=check_health, claim_key=claim_key,
                                           lease=lease, env=check_env(env), files=check_files(files))

    def has_ready(self, pool: str) -> bool:
        """A claim of `pool` now would most likely be warm: a ready sandbox is there (False for an unknown
        pool). The server then claims in the request's own task (server/claims.py)."""
        p = self.pools.get(pool)
        return p is not None and len(p.handout) > 0

    def store_stats(self) -> dict[str, float] | None:
        """The state file's work (Store.stats: commits, checkpoints, WAL peak); None with store="memory"."""
        return self.store.stats() if isinstance(self.store, Store) else None

    async def renew(self, pool: str, sandbox_id: str, lease: float | None = None) -> Lease:
        """Extend a claim's lease by `lease` seconds (default: its own length), never past the sandbox's
        TTL. ClaimEnded once the claim is over; InvalidRequest for a claim without a lease and no `lease`."""
        p = self.pool(pool)
        renewed = leases.renew(p, sandbox_id, lease)
        await p.store.durable()  # answered only once a restart would keep the new lease (its row is written)
        return renewed

    async def release_claim(self, pool: str, claim_key: str) -> bool:
        """End the claim `claim_key` holds (True), or the one it is waiting for, or the one whose request has
        not arrived yet: the key is refused for a while (handout.GIVEN_UP_FOR), so a claim request that a
        client gave up on while it was on the wire cannot be made after this call and then be held by nobody.
        False when no claim held a sandbox with this key."""
        p = self.pool(pool)
        for w in p.handout.give_up(claim_key, p.clock.monotonic()):
            w.fut.set_exception(claims.given_up(p, claim_key))
        m = p.handout.held(claim_key)
        if m is None:
            return False
        released = await p.release(m.id)
        await p.store.durable()
        return released

    def claimed(self, pool: str, timeout: float | None = None, check_health: bool = False,
                claim_key: str | None = None, lease: float | None = None) -> AbstractAsyncContextManager[Claim]:
        """`async with mgr.claimed(pool, lease=30) as claim:` holds a claim for the block: its lease renewed
        (on the manager's clock) while the block runs, released at the end, also when cancelled."""
        return claimed(self, pool, timeout, check_health, claim_key, lease, self.clock.sleep, self.clock.time)

    async def release(self, pool: str, sandbox_id: str) -> bool:
        """End a claim: the sandbox is terminated and replaced. False when released already;
        SandboxNotFound for an id the pool never had; InvalidRequest for one that is not claimed."""
        p = self.pool(pool)
        released = await p.release(sandbox_id)
        await p.store.durable()  # answered once a restart would not find it claimed again (its row is written)
        return released

    async def terminate(self, pool: str, ids: list[str]) -> list[str]:
        """Terminate sandboxes, claimed or not; the ids that were not already going. SandboxNotFound,
        changing nothing, when any id is unknown."""
        return await self.pool(pool).terminate(list(ids))

    async def resize(self, pool: str, target: int | None = None, min_ready: int | None = None,
                     max_ready: int | None = None, persist: bool = False) -> PoolSnapshot:
        """New sizes; InvalidRequest (changing nothing) unless min_ready <= target <= max_ready <= max_total.
        persist also writes them into the pool file; if that fails the old sizes are put back."""
        p = self.pool(pool)
        if target is None and min_ready is None and max_ready is None:
            raise InvalidRequest("resize needs at least one of target, min_ready, max_ready")
        if persist and self.config.path is None:
            raise InvalidRequest("persist: this pool set was not read from a file, there is nothing to save")
        old, manual = p.cfg, p.sizing.manual
        new = modes.resize(p, target, min_ready, max_ready)
        if persist:
            assert self.config.path is not None
            try:
                save_pool_sizes(self.config.path, pool, REGISTRY, target_ready=new.target_ready,
                                min_ready=new.min_ready, max_ready=new.max_ready)
            except Exception:
                modes.resize(p, old.target_ready, old.min_ready, old.max_ready)
                p.sizing.manual = manual  # put back who set the setpoint, too
                raise
        return p.snapshot(members=False)

    async def drain(self, pool: str, wait: bool = False, timeout: float | None = None) -> PoolSnapshot:
        """Stop claims and refill, retire ready sandboxes, leave claimed ones to finish. wait=True returns
        once the pool is empty, or raises WarmUpTimeout after `timeout` seconds."""
        p = self.pool(pool)
        modes.drain(p)
        if wait:
            deadline = None if timeout is None else self.clock.monotonic() + timeout
            while p.members:
                if deadline is not None and self.clock.monotonic() > deadline:
                    raise WarmUpTimeout(f"pool '{pool}' still has {len(p.members)} sandboxes after {timeout:g}s")
                await self.clock.sleep(WAIT_POLL * 2)
        return p.snapshot(members=False)

    async def pause(self, pool: str) -> PoolSnapshot:
        """Keep serving claims, stop refilling; InvalidRequest while draining."""
        p = self.pool(pool)
        modes.pause(p)
        return p.snapshot(members=False)

    async def resume(self, pool: str) -> PoolSnapshot:
        """Undo pause or drain: refill again."""
        p = self.pool(pool)
        modes.resume(p)
        return p.snapshot(members=False)

    async def maintain(self, pool: str) -> MaintenanceReport:
        """Probe every ready sandbox now; remove unhealthy, expiring and stale ones and strays; refill."""
        return await self.pool(pool).housekeeper.maintain()

    def events(self, pool: str | None = None, size: int = 1000) -> Subscription:
        """State changes from this call on (subscribed at once, so nothing falls between this and a
        recent_events() read). PoolNotFound for an unknown pool, at once."""
        if pool is not None:
            self.pool(pool)
        return self.bus.subscribe(size, pool)

    async def recent_events(self, pool: str | None = None, limit: int = 200) -> list[Event]:
        """The last `limit` events kept in memory (of one pool, or all), oldest first."""
        if pool is not None:
            self.pool(pool)
        events = [e for e in self.bus.recent if pool is None or e.pool == pool]
        return events[-limit:] if limit > 0 else []

    async def config_path(self) -> str | None:
        """The pool file these pools were read from, or None (a Config made in memory)."""
        return str(self.config.path) if self.config.path is not None else None
