"""One pool: the only place member states change.

Every decision (claim, hand-off, retire, refill) is a synchronous step with no `await` between checking a
state and setting it, so no sandbox can be handed out twice. Creating, probing and killing run in background
tasks; claimers wait only on a future the pool resolves, with a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections import Counter, OrderedDict, deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from ..config import PoolConfig, with_sizes
from ..errors import (
    ClaimTimeout,
    InvalidRequest,
    PoolDraining,
    PoolError,
    PoolExhausted,
    ProviderError,
    ProviderUnavailable,
    SandboxNotFound,
)
from ..providers.base import Provider, Sandbox
from .clock import Clock
from .events import EventBus
from .metrics import PoolMetrics
from .model import Claim, MaintenanceReport, Member, MemberState, MemberView, PoolSnapshot, PoolState
from .store import Store, StoredMember

log = logging.getLogger("poolui.pool")

S = MemberState
IN_FLIGHT = (S.CREATING, S.STARTING)
LIVE = (S.CREATING, S.STARTING, S.READY, S.CLAIMED)  # what counts against max_total
BACKOFF_BASE = 0.2
# Reasons a provider gives for being unavailable that may pass by themselves (as opposed to bad credentials
# or a missing program): the pool starts degraded and retries instead of refusing to start.
TRANSIENT = ("unreachable", "engine_unreachable")
BACKOFF_MAX = 30.0


@dataclass(eq=False)
class _Waiter:
    fut: asyncio.Future[Member]
    claim_key: str | None


class Pool:
    def __init__(self, cfg: PoolConfig, provider: Provider, store: Store, bus: EventBus, clock: Clock) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.provider = provider
        self.store = store
        self.bus = bus
        self.clock = clock
        self.metrics = PoolMetrics()
        self.members: dict[str, Member] = {}
        self.ready: OrderedDict[str, Member] = OrderedDict()  # oldest ready first
        self.waiters: deque[_Waiter] = deque()
        self.by_key: dict[str, Member] = {}
        self.recently_gone: OrderedDict[str, str] = OrderedDict()  # id -> why, for friendly double releases
        self.mode = "normal"  # normal | paused | draining
        self.failures = 0
        self.degraded_reason = ""
        self.backoff_until = 0.0
        self._kick = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bringups: dict[str, asyncio.Task[Any]] = {}
        self._loops: list[asyncio.Task[Any]] = []
        self._stopping = False
        self._drained_said = False
        self._unadopted: list[StoredMember] | None = None  # rows left to adopt while the provider is unreachable
        self._n: Counter[MemberState] = Counter()  # members per state, kept by _set/_gone: no scans per claim
        self._next_scan = 0.0  # monotonic: the earliest TTL deadline of a ready or claimed member

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._loops = [asyncio.create_task(self._reconcile_loop(), name=f"pool-{self.name}-reconcile")]
        if self.cfg.health is not None:
            self._loops.append(asyncio.create_task(self._health_loop(), name=f"pool-{self.name}-health"))
        self._loops.append(asyncio.create_task(self._maintenance_loop(), name=f"pool-{self.name}-maint"))

    async def stop(self, keep: bool = False) -> None:
        """Stop refilling and probing. keep=False terminates every sandbox; keep=True leaves ready and
        claimed ones running (and recorded) for the next manager to adopt."""
        self._stopping = True
        for t in self._loops:
            t.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        for w in self.waiters:
            if not w.fut.done():
                w.fut.set_exception(PoolError(f"pool '{self.name}' is stopping"))
        self.waiters.clear()
        for m in list(self.members.values()):
            if not keep or m.state in IN_FLIGHT:
                self._retire(m, "manager stopped")
        # Background kills and bring-ups finish on their own; wait for all of them so nothing is left.
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def kick(self) -> None:
        self._kick.set()

    # ------------------------------------------------------------------ state helpers

    def _emit(self, kind: str, m: Member | None = None, detail: str = "") -> None:
        self.bus.emit(self.clock.time(), self.name, kind, m.id if m else None,
                      m.state.value if m else None, detail)

    def _set(self, m: Member, state: MemberState, kind: str, detail: str = "") -> None:
        self._n[m.state] -= 1
        self._n[state] += 1
        m.state = state
        m.view = None
        if state is S.READY:
            self._next_scan = min(self._next_scan, m.expires_mono - self.cfg.min_remaining_ttl)
        elif state is S.CLAIMED:
            self._next_scan = min(self._next_scan, m.expires_mono)
        self.store.set_state(m)
        self._emit(kind, m, detail)

    def ttl_left(self, m: Member) -> float:
        return m.expires_mono - self.clock.monotonic()

    def _eligible(self, m: Member, ask_provider: bool = True) -> str:
        """'' when m may be handed out now, else why not. The reconcile pass skips asking the provider
        (a /proc read per member locally): deaths reach it through on_exit, and every claim still asks."""
        if m.revision != self.cfg.revision:
            return "made from an old config revision"
        if self.ttl_left(m) < self.cfg.min_remaining_ttl:
            return "less than min_remaining_ttl left"
        if m.health_ok is False:
            return f"failed its last health check ({m.health_detail})"
        if ask_provider and m.sandbox is not None and not self.provider.alive(m.sandbox):
            return "its sandbox has exited"
        return ""

    def counts(self) -> dict[str, int]:
        return {s.value: self._n[s] for s in S if s is not S.GONE}

    def _in_flight(self) -> int:
        return self._n[S.CREATING] + self._n[S.STARTING]

    def _live(self) -> int:
        return self._in_flight() + self._n[S.READY] + self._n[S.CLAIMED]

    def state(self) -> PoolState:
        if self.mode == "draining":
            return PoolState.DRAINED if not self.members else PoolState.DRAINING
        if self.mode == "paused":
            return PoolState.PAUSED
        if self.degraded_reason:
            return PoolState.DEGRADED
        return PoolState.HEALTHY if len(self.ready) >= self.cfg.target_ready else PoolState.WARMING

    def _empty_reason(self) -> str:
        if self.degraded_reason:
            return f"degraded: {self.degraded_reason}"
        if self.mode == "paused":
            return "pool empty and paused (no refill)"
        if self._live() >= self.cfg.max_total:
            return f"max_total ({self.cfg.max_total}) sandboxes already exist"
        return "pool empty"

    # ------------------------------------------------------------------ claims

    async def claim(self, timeout: float | None = None, check_health: bool = False,
                    claim_key: str | None = None) -> Claim:
        start = self.clock.monotonic()
        timeout = self.cfg.claim_timeout if timeout is None else timeout
        if timeout < 0:
            raise InvalidRequest(f"timeout = {timeout} is not allowed: expected a number of seconds >= 0")
        if claim_key is not None and claim_key in self.by_key:
            held = self.by_key[claim_key]
            return self._claim_of(held, warm=True, latency=0.0, reason="repeated claim_key")
        if self.mode == "draining":
            self.metrics.claim("failed", None, "draining")
            raise PoolDraining(f"pool '{self.name}' is draining: no new claims", reason="draining")
        deadline = start + timeout
        warm = True
        reason = ""
        while True:
            m = self._take_ready(claim_key)
            if m is None:
                warm = False
                reason = reason or self._empty_reason()
                if self.cfg.on_empty == "fail":
                    self.metrics.claim("failed", None, reason)
                    raise PoolExhausted(f"pool '{self.name}' has no ready sandbox: {reason}", reason=reason)
                m = await self._wait_for_member(deadline, claim_key, reason)
            if not check_health or m.sandbox is None:
                break
            try:
                result = await self.provider.health(m.sandbox)
            except BaseException:
                self._give_back(m)
                raise
            if result.ok:
                break
            m.health_ok, m.health_detail = False, result.detail
            self._release_hold(m)
            self._retire(m, f"failed its health check at claim: {result.detail}")
            reason = "health check at claim failed"
        latency = self.clock.monotonic() - start
        self.metrics.claim("warm" if warm else "cold", latency, reason)
        return self._claim_of(m, warm, latency, reason)

    def _claim_of(self, m: Member, warm: bool, latency: float, reason: str) -> Claim:
        return Claim(m.id, self.name, m.url, m.expires_at, warm, latency, m.claim_key, reason)

    def _take_ready(self, claim_key: str | None) -> Member | None:
        """Pop the oldest member that may be handed out and mark it claimed, in one step."""
        while self.ready:
            _, m = self.ready.popitem(last=False)
            why = self._eligible(m)
            if why:
                self._retire(m, why)
                continue
            self._mark_claimed(m, claim_key)
            return m
        return None

    def _mark_claimed(self, m: Member, claim_key: str | None) -> None:
        m.holders += 1
        assert m.holders == 1, f"member {m.id} handed out twice"
        m.claimed_at = self.clock.time()
        m.claim_key = claim_key
        if claim_key is not None:
            self.by_key[claim_key] = m
        self._set(m, S.CLAIMED, "claimed", claim_key or "")
        self.kick()

    def _release_hold(self, m: Member) -> None:
        m.holders -= 1
        if m.claim_key is not None:
            self.by_key.pop(m.claim_key, None)

    async def _wait_for_member(self, deadline: float, claim_key: str | None, reason: str) -> Member:
        loop = asyncio.get_running_loop()
        w = _Waiter(loop.create_future(), claim_key)
        self.waiters.append(w)
        self.kick()
        try:
            async with asyncio.timeout(max(0.0, deadline - self.clock.monotonic())):
                return await w.fut
        except TimeoutError:
            self._abandon(w)
            self.metrics.claim("timed_out", None, reason)
            raise ClaimTimeout(f"pool '{self.name}': no sandbox became ready in time ({reason})",
                               reason=reason) from None
        except BaseException:
            self._abandon(w)
            raise

    def _abandon(self, w: _Waiter) -> None:
        """The claimer gave up; if a member reached it in the meantime, it goes back (never leaks)."""
        try:
            self.waiters.remove(w)
        except ValueError:
            pass
        if w.fut.done() and not w.fut.cancelled() and w.fut.exception() is None:
            self._give_back(w.fut.result())
        elif not w.fut.done():
            w.fut.cancel()

    def _give_back(self, m: Member) -> None:
        """A claimed member that its claimer never used: unused, so it may serve someone else."""
        if m.state is not S.CLAIMED:
            return
        self._release_hold(m)
        m.claimed_at, m.claim_key = None, None
        self._set(m, S.READY, "returned", "claimer gave up before using it")
        if not self._hand_to_waiter(m):
            self.ready[m.id] = m
            self.ready.move_to_end(m.id, last=False)

    def _hand_to_waiter(self, m: Member) -> bool:
        while self.waiters:
            w = self.waiters.popleft()
            if w.fut.done():
                continue
            self._mark_claimed(m, w.claim_key)
            w.fut.set_result(m)
            return True
        return False

    async def release(self, member_id: str) -> bool:
        """End a claim; the sandbox is single use and is terminated. A repeated release is a no-op (False)."""
        m = self.members.get(member_id)
        if m is None:
            if member_id in self.recently_gone:
                return False
            raise SandboxNotFound(f"pool '{self.name}' has no sandbox '{member_id}'")
        if m.state is not S.CLAIMED:
            if m.state in (S.TERMINATING, S.GONE):
                return False
            raise InvalidRequest(f"sandbox '{member_id}' is {m.state.value}, not claimed: nothing to release")
        self._release_hold(m)
        self._emit("released", m)
        self._retire(m, "released")
        return True

    async def terminate(self, ids: list[str]) -> list[str]:
        missing = [i for i in ids if i not in self.members and i not in self.recently_gone]
        if missing:
            raise SandboxNotFound(f"pool '{self.name}' has no sandbox {', '.join(repr(i) for i in missing)}")
        done = []
        for i in ids:
            m = self.members.get(i)
            if m is not None and m.state not in (S.TERMINATING, S.GONE):
                if m.state is S.CLAIMED:
                    self._release_hold(m)
                self._retire(m, "terminated by operator")
                done.append(i)
        return done

    # ------------------------------------------------------------------ retiring

    def _retire(self, m: Member, reason: str) -> None:
        if m.state in (S.TERMINATING, S.GONE):
            return
        self.ready.pop(m.id, None)
        if m.claim_key is not None and self.by_key.get(m.claim_key) is m:
            self.by_key.pop(m.claim_key, None)
        m.reason = reason
        was = m.state
        self._set(m, S.TERMINATING, "terminating", reason)
        task = self._bringups.get(m.id)
        if was in IN_FLIGHT and task is not None:
            # A create still running finishes first (so its sandbox is known), then sees doomed and kills it.
            m.doomed = True
            if was is S.STARTING:
                task.cancel()
            return
        self._spawn(self._kill(m), f"kill-{m.id}")
        self.kick()

    async def _kill(self, m: Member) -> None:
        if m.sandbox is not None:
            try:
                await self.provider.terminate(m.sandbox)
            except Exception as e:  # a kill that fails is logged; the provider's own TTL still bounds it
                log.warning("pool %s: terminating %s failed: %s", self.name, m.id, e)
                self._emit("terminate_failed", m, str(e))
        self._gone(m)

    def _gone(self, m: Member) -> None:
        if m.state is S.GONE:
            return
        self._n[m.state] -= 1
        m.state = S.GONE
        self.members.pop(m.id, None)
        self.ready.pop(m.id, None)
        self.store.delete(m.id)
        self.metrics.terminated += 1
        self.recently_gone[m.id] = m.reason
        while len(self.recently_gone) > 1000:
            self.recently_gone.popitem(last=False)
        self._emit("terminated", m, m.reason)
        self.kick()

    def on_exit(self, member_id: str, how: str = "") -> None:
        """The provider saw a sandbox die by itself; `how` (exit code, OOM, TTL) goes into the event."""
        m = self.members.get(member_id)
        # Starting members are left to their readiness wait, which counts the failure toward degraded.
        if m is None or m.state not in (S.READY, S.CLAIMED):
            return
        reason = "exited on its own"
        if m.state is S.CLAIMED:
            self._release_hold(m)
            reason = "exited while claimed"
        self._retire(m, f"{reason}: {how}" if how else reason)

    # ------------------------------------------------------------------ creating

    def _new_member(self) -> Member:
        now_w, now_m = self.clock.time(), self.clock.monotonic()
        ttl = self.cfg.ttl * (1 - random.uniform(0, self.cfg.ttl_jitter))
        m = Member(
            id="pu-" + secrets.token_hex(5), pool=self.name, revision=self.cfg.revision,
            created_at=now_w, created_mono=now_m, expires_at=now_w + ttl, expires_mono=now_m + ttl,
        )
        self.members[m.id] = m
        self._n[S.CREATING] += 1
        self.store.put(m)  # record before create: a crash from here on leaves a row to reconcile
        self.metrics.creates += 1
        self._emit("created", m)
        self._bringups[m.id] = self._spawn(self._bring_up(m, ttl), f"create-{m.id}")
        return m

    async def _bring_up(self, m: Member, ttl: float) -> None:
        try:
            try:
                sb = await self.provider.create(m.id, ttl)
            except Exception as e:
                self._failed(m, f"create failed: {e}")
                return
            m.sandbox = sb
            if sb.expires_at and sb.expires_at < m.expires_at:
                # The provider's own hard end is what counts (Modal's timeout is whole seconds, rounded
                # down): never promise a claimer, or count toward min_remaining_ttl, time it will not get.
                early = m.expires_at - sb.expires_at
                m.expires_at, m.expires_mono = sb.expires_at, m.expires_mono - early
            if m.doomed:
                self._spawn(self._kill(m), f"kill-{m.id}")
                return
            self.store.put(m)
            self._set(m, S.STARTING, "starting", sb.url)
            try:
                await self.provider.wait_ready(sb, self.cfg.readiness.timeout)
            except asyncio.CancelledError:
                if m.doomed:
                    self._spawn(self._kill(m), f"kill-{m.id}")
                    return
                raise
            except Exception as e:
                self._failed(m, f"not ready: {e}")
                return
            if m.doomed:
                self._spawn(self._kill(m), f"kill-{m.id}")
                return
            self._ready(m)
        except asyncio.CancelledError:
            # Only manager shutdown cancels a bring-up without dooming it; kill whatever was started.
            m.doomed = True
            if m.state is not S.TERMINATING:
                m.reason = "manager stopped"
                self._set(m, S.TERMINATING, "terminating", m.reason)
            await asyncio.shield(self._kill(m))
            raise
        finally:
            self._bringups.pop(m.id, None)

    def _ready(self, m: Member) -> None:
        now = self.clock.monotonic()
        m.ready_at = self.clock.time()
        self.metrics.create_to_ready.observe(now - m.created_mono)
        if self.failures or self.degraded_reason:
            was = self.degraded_reason
            self.failures, self.backoff_until, self.degraded_reason = 0, 0.0, ""
            if was:
                self._emit("recovered", None, "a sandbox became ready again")
        m.health_ok, m.health_detail, m.last_probe_at = True, "readiness probe passed", m.ready_at
        self.store.put(m)  # some providers only know the URL once the sandbox is ready (a Modal tunnel)
        self._set(m, S.READY, "ready", f"{(now - m.created_mono) * 1000:.0f}ms after create")
        if self.mode == "draining":
            self._retire(m, "pool draining")
        elif not self._hand_to_waiter(m):
            self.ready[m.id] = m
        self.kick()

    def _failed(self, m: Member, why: str) -> None:
        if m.doomed:
            self._spawn(self._kill(m), f"kill-{m.id}")
            return
        self.failures += 1
        self.metrics.create_failures += 1
        delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (self.failures - 1))
        self.backoff_until = self.clock.monotonic() + delay
        self._set(m, S.FAILED, "failed", why)
        if self.failures >= self.cfg.create_retries and not self.degraded_reason:
            self.degraded_reason = f"{self.failures} creates failed in a row; last: {why}"
            self._emit("degraded", None, self.degraded_reason)
        elif self.degraded_reason:
            self.degraded_reason = f"{self.failures} creates failed in a row; last: {why}"
        self._retire(m, why)

    # ------------------------------------------------------------------ the reconcile loop

    async def open(self, rows: list[StoredMember]) -> tuple[int, int]:
        """Check the provider and adopt what a previous manager left. A provider that is merely unreachable
        (not misconfigured) leaves the pool degraded, adopting and refilling once it answers again."""
        try:
            await self.provider.check()
            return await self.adopt(rows)
        except ProviderUnavailable as e:
            if e.reason not in TRANSIENT:
                raise
            self._unadopted = rows
            self.degraded_reason = f"provider unreachable: {e}"
            self._emit("degraded", None, self.degraded_reason)
            return 0, 0
        except ProviderError as e:
            self._unadopted = rows
            self.degraded_reason = f"provider unreachable: {e}"
            self._emit("degraded", None, self.degraded_reason)
            return 0, 0

    async def _adopt_when_reachable(self) -> None:
        delay = 0.5
        while self._unadopted is not None:
            await asyncio.sleep(delay)
            delay = min(BACKOFF_MAX, delay * 2)
            try:
                await self.provider.check()
                adopted, killed = await self.adopt(self._unadopted)
            except ProviderError as e:
                self.degraded_reason = f"provider unreachable: {e}"
                continue
            self._unadopted = None
            self.degraded_reason = ""
            self._emit("recovered", None, f"provider reachable again; adopted {adopted}, killed {killed}")

    async def _reconcile_loop(self) -> None:
        await self._adopt_when_reachable()
        while True:
            self._kick.clear()
            wake = self.reconcile()
            try:
                async with asyncio.timeout(wake):
                    await self._kick.wait()
            except TimeoutError:
                pass

    def reconcile(self) -> float:
        """Bring the pool toward what it should be; returns how long it may sleep before looking again."""
        if self._unadopted is not None:
            return 1.0  # nothing is created before what may still be running has been accounted for
        now = self.clock.monotonic()
        if now >= self._next_scan:
            self._scan_deadlines(now)
        sleep = min(1.0, self._next_scan - now)
        if self.mode == "draining":
            self._drain_step()
            return sleep
        self._trim()
        if self.mode == "paused" or self._stopping:
            return max(sleep, 0.001)
        if now < self.backoff_until:
            return max(0.001, min(sleep, self.backoff_until - now))
        in_flight, live = self._in_flight(), self._live()
        want = self.cfg.target_ready
        if self.cfg.on_empty == "create":  # each waiter gets a create of its own (a cold claim)
            want += sum(1 for w in self.waiters if not w.fut.done())
        cap = self.cfg.max_concurrent_creates if not self.failures else 1  # slow start after failures
        n = min(want - len(self.ready) - in_flight, self.cfg.max_total - live, cap - in_flight)
        for _ in range(max(0, n)):
            self._new_member()
        return max(sleep, 0.001)

    def _scan_deadlines(self, now: float) -> None:
        """Retire members past their deadlines and note when the next one falls due. Claims and releases
        do not need this walk over every member: only the passing of time (or a new member) brings a
        deadline closer, and _set lowers _next_scan for every member that becomes ready or claimed."""
        nxt = now + 1.0
        for m in list(self.members.values()):
            if m.state is S.READY:
                why = self._eligible(m, ask_provider=False)
                if why:
                    self._retire(m, why)
                else:
                    nxt = min(nxt, m.expires_mono - self.cfg.min_remaining_ttl)
            elif m.state is S.CLAIMED and m.expires_mono <= now:
                self._release_hold(m)
                self._retire(m, "hard TTL reached while claimed")
            elif m.state is S.CLAIMED:
                nxt = min(nxt, m.expires_mono)
        self._next_scan = max(nxt, now + 0.001)

    def _trim(self) -> None:
        """Surplus beyond target: not-ready first (newest first), then the newest idle. Never claimed ones."""
        surplus = len(self.ready) + self._in_flight() - max(self.cfg.target_ready, 0)
        if self.cfg.on_empty == "create":
            surplus -= sum(1 for w in self.waiters if not w.fut.done())
        if surplus <= 0:
            return
        starting = [m for m in self.members.values() if m.state in IN_FLIGHT and not m.doomed]
        victims = sorted(starting, key=lambda m: -m.created_mono)
        victims += sorted(self.ready.values(), key=lambda m: -(m.ready_at or 0))
        for m in victims[:surplus]:
            self._retire(m, "surplus after resize")

    def _drain_step(self) -> None:
        for w in list(self.waiters):
            if not w.fut.done():
                w.fut.set_exception(PoolDraining(f"pool '{self.name}' is draining", reason="draining"))
        self.waiters.clear()
        for m in list(self.members.values()):
            if m.state in (S.READY, S.CREATING, S.STARTING, S.FAILED):
                self._retire(m, "pool draining")
        if not self.members and not self._drained_said:
            self._drained_said = True
            self._emit("drained", None, "no sandboxes left")

    # ------------------------------------------------------------------ health and maintenance

    async def _probe(self, m: Member) -> bool:
        """One in-place health check; the member stays claimable while it runs."""
        if m.sandbox is None:
            return True
        result = await self.provider.health(m.sandbox)
        m.last_probe_at = self.clock.time()
        was = m.health_ok
        m.health_ok, m.health_detail, m.view = result.ok, result.detail, None
        if not result.ok:
            self._emit("probe_failed", m, result.detail)
            if m.state is S.READY:
                self._retire(m, f"health check failed: {result.detail}")
        elif was is False:
            self._emit("probe_ok", m, result.detail)
        return result.ok

    async def _probe_many(self, members: list[Member]) -> list[str]:
        sem = asyncio.Semaphore(16)

        async def one(m: Member) -> bool:
            async with sem:
                return await self._probe(m)

        results = await asyncio.gather(*(one(m) for m in members), return_exceptions=True)
        return [m.id for m, ok in zip(members, results, strict=True) if ok is not True]

    async def probe_all(self) -> list[str]:
        """Health-check ready and claimed members in place; returns the ids that failed."""
        return await self._probe_many([m for m in self.members.values() if m.state in (S.READY, S.CLAIMED)])

    async def _health_loop(self) -> None:
        assert self.cfg.health is not None
        while True:
            await asyncio.sleep(self.cfg.health.interval)
            try:
                await self.probe_all()
            except Exception:
                log.exception("pool %s: health sweep failed", self.name)

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.maintenance_interval)
            try:
                await self.maintain()
            except Exception:
                log.exception("pool %s: maintenance failed", self.name)

    async def maintain(self) -> MaintenanceReport:
        """Probe every ready member now, remove the unhealthy, expiring and stale ones, refill."""
        report = MaintenanceReport(self.name)
        candidates = list(self.ready.values())
        report.probed = len(candidates)
        if self.cfg.health is not None:
            report.removed_unhealthy = await self._probe_many(candidates)
        for m in candidates:
            if m.state is not S.READY:
                continue
            if m.revision != self.cfg.revision:
                report.removed_stale.append(m.id)
                self._retire(m, "made from an old config revision")
            elif self.ttl_left(m) < self.cfg.min_remaining_ttl:
                report.removed_expiring.append(m.id)
                self._retire(m, "less than min_remaining_ttl left")
            elif m.sandbox is not None and not self.provider.alive(m.sandbox):
                report.removed_unhealthy.append(m.id)
                self._retire(m, "its sandbox has exited")
        report.removed_strays = await self._sweep_strays()
        before = self.metrics.creates
        self.reconcile()
        report.created = self.metrics.creates - before
        strays = f", {len(report.removed_strays)} strays" if report.removed_strays else ""
        self._emit("maintenance", None,
                   f"probed {report.probed}, removed {len(report.removed_unhealthy)} unhealthy, "
                   f"{len(report.removed_expiring)} expiring, {len(report.removed_stale)} stale{strays}; "
                   f"created {report.created}")
        return report

    async def _sweep_strays(self) -> list[str]:
        """Kill running sandboxes of this pool that the pool does not know (a sandbox whose owner died in
        an odd moment). Safe against creates in flight: a member is recorded before its create starts."""
        if self._unadopted is not None:
            return []
        try:
            live = await self.provider.list_ours()
        except ProviderError as e:
            log.warning("pool %s: could not list sandboxes for the stray sweep: %s", self.name, e)
            return []
        strays = [sb for sb in live if sb.member_id not in self.members and sb.member_id not in self._bringups]
        for sb in strays:
            self._emit("terminating", None, f"stray {sb.member_id}: running but unknown to the pool")
            self._spawn(self._kill_stray(sb), f"kill-stray-{sb.member_id}")
        return [sb.member_id for sb in strays]

    async def _kill_stray(self, sb: Sandbox) -> None:
        try:
            await self.provider.terminate(sb)
        except Exception as e:
            log.warning("pool %s: could not kill stray %s: %s", self.name, sb.member_id, e)

    # ------------------------------------------------------------------ operator verbs

    def resize(self, target: int | None = None, min_ready: int | None = None,
               max_ready: int | None = None) -> PoolConfig:
        new = with_sizes(self.cfg, target, min_ready, max_ready)
        self.cfg = new
        self._emit("resized", None,
                   f"target {new.target_ready}, min {new.min_ready}, max {new.max_ready}")
        self.reconcile()
        return new

    def drain(self) -> None:
        if self.mode == "draining":
            return
        self.mode = "draining"
        self._drained_said = False
        self._emit("draining", None, "no new claims; ready sandboxes retired; claimed ones left to finish")
        self.reconcile()

    def pause(self) -> None:
        if self.mode == "draining":
            raise InvalidRequest(f"pool '{self.name}' is draining; resume it first")
        self.mode = "paused"
        self._emit("paused", None, "claims served, no refill")

    def resume(self) -> None:
        was = self.mode
        self.mode = "normal"
        self._emit("resumed", None, f"was {was}")
        self.kick()

    # ------------------------------------------------------------------ adoption

    async def adopt(self, rows: list[StoredMember]) -> tuple[int, int]:
        """Take over what a previous manager left: keep live ready/claimed members within TTL, kill the rest.

        Returns (adopted, killed). Sandboxes the provider finds but the store does not know are strays."""
        known = {r.id: r for r in rows}
        live = await self.provider.list_ours()
        now_w, now_m = self.clock.time(), self.clock.monotonic()
        adopted = killed = 0
        seen: set[str] = set()
        for sb in live:
            seen.add(sb.member_id)
            row = known.get(sb.member_id)
            left = (sb.expires_at or (row.expires_at if row else 0)) - now_w
            keep = row is not None and row.state in (S.READY.value, S.CLAIMED.value) and left > 0
            if keep and row is not None and row.state == S.READY.value:
                keep = row.revision == self.cfg.revision and left >= self.cfg.min_remaining_ttl
            if not keep or row is None:
                killed += 1
                try:
                    await self.provider.terminate(sb)
                except Exception as e:
                    log.warning("pool %s: could not kill stray %s: %s", self.name, sb.member_id, e)
                self.store.delete(sb.member_id)
                self.bus.emit(now_w, self.name, "terminated", sb.member_id, "gone",
                              "left over by a previous manager")
                continue
            m = Member(
                id=row.id, pool=self.name, revision=row.revision, state=MemberState(row.state),
                created_at=row.created_at, ready_at=row.ready_at, claimed_at=row.claimed_at,
                expires_at=now_w + left, expires_mono=now_m + left, created_mono=now_m - (now_w - row.created_at),
                sandbox=sb, claim_key=row.claim_key, adopted=True,
            )
            self.members[m.id] = m
            self._n[m.state] += 1
            if m.state is S.READY:
                self.ready[m.id] = m
            else:
                m.holders = 1
                if m.claim_key:
                    self.by_key[m.claim_key] = m
            adopted += 1
            self.store.put(m)
            self._emit("adopted", m, "found alive after a restart")
        for row in rows:
            if row.id not in seen:
                self.store.delete(row.id)
                self.bus.emit(now_w, self.name, "lost", row.id, "gone", "not alive after a restart")
        ordered = sorted(self.ready.values(), key=lambda m: m.ready_at or 0)
        self.ready = OrderedDict((m.id, m) for m in ordered)
        self._next_scan = 0.0  # adopted members' deadlines are not known to the scan yet
        return adopted, killed

    # ------------------------------------------------------------------ views

    def view(self, m: Member) -> MemberView:
        """A member's view; unchanged members keep theirs between snapshots with only ttl_left renewed,
        which keeps a snapshot of 10,000 members cheap enough for a once-a-second console tick."""
        if m.view is not None:
            m.view.ttl_left = max(0.0, self.ttl_left(m))
            return m.view
        health = "unknown" if m.health_ok is None else "ok" if m.health_ok else "failing"
        m.view = MemberView(
            id=m.id, state=m.state.value, url=m.url, created_at=m.created_at, ready_at=m.ready_at,
            claimed_at=m.claimed_at, expires_at=m.expires_at, ttl_left=max(0.0, self.ttl_left(m)),
            health=health, health_detail=m.health_detail, last_probe_at=m.last_probe_at,
            claim_key=m.claim_key, reason=m.reason, adopted=m.adopted,
        )
        return m.view

    def snapshot(self, members: bool = True) -> PoolSnapshot:
        cfg = self.cfg
        state = self.state()
        reason = self.degraded_reason if state is PoolState.DEGRADED else ""
        return PoolSnapshot(
            name=self.name, provider=cfg.provider, isolation=self.provider.isolation, state=state.value,
            reason=reason, target_ready=cfg.target_ready, min_ready=cfg.min_ready, max_ready=cfg.max_ready,
            max_total=cfg.max_total, counts=self.counts(), waiting=len(self.waiters),
            members=[self.view(m) for m in self.members.values()] if members else [],
            metrics=self.metrics.to_dict(),
            config={
                "ttl": cfg.ttl, "min_remaining_ttl": cfg.min_remaining_ttl, "on_empty": cfg.on_empty,
                "claim_timeout": cfg.claim_timeout, "max_concurrent_creates": cfg.max_concurrent_creates,
                "command": list(cfg.command), "revision": cfg.revision,
                "health_interval": cfg.health.interval if cfg.health else None,
                "maintenance_interval": cfg.maintenance_interval,
            },
            taken_at=self.clock.time(), read_only=cfg.read_only,
        )
