"""One pool: the only place member states change.

Every decision (claim, hand-off, retire, refill) ends in a synchronous step here with no `await` between
checking a state and setting it, so no sandbox can be handed out twice. Creating, probing and killing run in
background tasks; claimers wait only on a future the pool resolves, with a deadline. Around it, each calling
in here to change a state: handout.py (who gets which ready member), claims.py, bringup.py, refill.py (toward
sizing.py's setpoint), housekeeping.py, eligibility.py, claim_scope.py, adoption.py, opening.py, views.py."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from ..clock import Clock
from ..config import PoolConfig
from ..errors import InvalidRequest, PoolError, SandboxNotFound
from ..providers.base import Provider, Sandbox
from . import autoscale, claim_scope, claims, refill, reuse
from .bringup import bring_up, create_failed_again, creates_work
from .cost import Tally
from .eligibility import verdict
from .events import EventBus, claimed_detail
from .handout import Handout, Waiter
from .housekeeping import Housekeeper
from .member import Member
from .metrics import PoolMetrics
from .model import Claim, MemberState, PoolSnapshot, PoolState
from .sizing import Sizing, observe
from .store_api import StateStore, StoredMember
from .views import pool_snapshot, pool_state

log = logging.getLogger("poolui.pool")

S = MemberState
IN_FLIGHT = (S.CREATING, S.STARTING)
GONE_KEPT = 1000  # ids of members gone lately, so a second release says "already" instead of "unknown"


class Pool:
    def __init__(self, cfg: PoolConfig, provider: Provider, store: StateStore, bus: EventBus, clock: Clock) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.provider = provider
        self.store = store
        self.bus = bus
        self.clock = clock
        self.metrics = PoolMetrics(clock)
        self.sizing = Sizing(clock, autoscale.policy_for(cfg), lambda: observe(self))  # what refill aims at
        self.members: dict[str, Member] = {}
        self.handout = Handout()
        self.housekeeper = Housekeeper(self)
        self.recently_gone: OrderedDict[str, str] = OrderedDict()  # id -> why, for friendly double releases
        self.tokens: dict[str, str] = {}  # claim token hash -> member id (claim_scope.py)
        self.mode = "normal"  # normal | paused | draining
        self.failures, self.degraded_reason = 0, ""  # creates failed in a row; why the pool is degraded
        self.backoff_until = 0.0
        self.refill_at: float | None = None  # monotonic: when a small refill stops waiting to gather (refill.py)
        self.kicked, self.stopping = asyncio.Event(), False
        self.unadopted: list[StoredMember] | None = None  # rows left to adopt while the provider is unreachable
        self.next_scan = 0.0  # monotonic: the earliest TTL deadline of a ready or claimed member
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bringups: dict[str, asyncio.Task[Any]] = {}
        self._loops: list[asyncio.Task[Any]] = []
        self.drained_said, self.lowered_target = False, False  # lowered_target: by a resize (refill.trim)
        self.tally = Tally(clock)  # members per state (no scans per claim) and sandbox-seconds in each (cost.py)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._loops = [asyncio.create_task(refill.reconcile_loop(self), name=f"pool-{self.name}-reconcile"),
                       *self.housekeeper.loops()]

    async def stop(self, keep: bool = False) -> None:
        """Stop refilling and probing. keep=False terminates every sandbox; keep=True leaves ready and
        claimed ones running (and recorded) for the next manager to adopt."""
        self.stopping = True
        for t in self._loops:
            t.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self.handout.fail_waiters(PoolError(f"pool '{self.name}' is stopping"))
        for m in list(self.members.values()):
            if not keep or m.state in IN_FLIGHT:
                self.retire(m, "manager stopped")
        # Background kills and bring-ups finish on their own; wait for all of them so nothing is left.
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def kick(self) -> None:
        self.kicked.set()

    @property
    def adopted(self) -> bool:
        """What a previous manager left has been accounted for (the provider answered at least once)."""
        return self.unadopted is None

    def knows(self, member_id: str) -> bool:
        return member_id in self.members or member_id in self._bringups

    # ------------------------------------------------------------------ state

    def emit(self, kind: str, m: Member | None = None, detail: str = "") -> None:
        self.bus.emit(self.clock.time(), self.name, kind, m.id if m else None, m.state.value if m else None, detail)

    def _set(self, m: Member, state: MemberState, kind: str, detail: str = "", row: bool | None = False) -> None:
        """The one place a member's state changes; row: the whole row changed too (one write, not two);
        None: no write (a state a restart treats like the one already stored)."""
        self.tally.move(m.state, state)
        m.state = state
        m.view = None
        if state is S.READY:
            self.next_scan = min(self.next_scan, m.expires_mono - self.cfg.min_remaining_ttl)
        elif state is S.CLAIMED:
            self.next_scan = min(self.next_scan, m.expires_mono)
        if row:
            self.store.put(m)
        elif row is not None:
            self.store.set_state(m)
        self.emit(kind, m, detail)

    def ttl_left(self, m: Member) -> float:
        return m.expires_mono - self.clock.monotonic()

    def counts(self) -> dict[str, int]:
        return {s.value: self.tally[s] for s in S if s is not S.GONE}

    def in_flight(self) -> int:
        return self.tally[S.CREATING] + self.tally[S.STARTING]

    def live(self) -> int:
        """What counts against max_total: creating, starting, ready and claimed."""
        return self.in_flight() + self.tally[S.READY] + self.tally[S.CLAIMED]

    def state(self) -> PoolState:
        return pool_state(self)

    async def claim(self, timeout: float | None = None, check_health: bool = False, claim_key: str | None = None,
                    lease: float | None = None, **use: Any) -> Claim:  # use: env, files (claims.claim)
        return await claims.claim(self, timeout, check_health, claim_key, lease, **use)

    def take_ready(self, claim_key: str | None) -> Member | None:
        """Take the next member that may be handed out and mark it claimed, in one step."""
        while (m := self.handout.take()) is not None:
            alive = m.sandbox is None or self.provider.alive(m.sandbox)
            v = verdict(m, self.cfg, self.ttl_left(m), alive)
            if v is not None:
                self.retire(m, v.reason)
                continue
            self._mark_claimed(m, claim_key)
            return m
        return None

    def _mark_claimed(self, m: Member, claim_key: str | None, waited: float = 0.0) -> None:
        m.holders += 1
        m.uses += 1
        assert m.holders == 1, f"member {m.id} handed out twice"
        m.claimed_at = self.clock.time()
        m.claim_key = claim_key
        if claim_key is not None:
            self.handout.hold(claim_key, m)
        claim_scope.begin(self, m)
        self._set(m, S.CLAIMED, "claimed", claimed_detail(claim_key, waited))
        self.kick()

    def _release_hold(self, m: Member) -> None:
        m.holders -= 1
        self.handout.unhold(m)
        claim_scope.end(self, m)

    def abandon(self, w: Waiter) -> None:
        """The claimer gave up; if a member reached it in the meantime, it goes back (never leaks)."""
        self.handout.forget_waiter(w)
        if w.fut.done() and not w.fut.cancelled() and w.fut.exception() is None:
            self.give_back(w.fut.result())
        elif not w.fut.done():
            w.fut.cancel()

    def give_back(self, m: Member) -> None:
        """A claimed member that its claimer never used: unused, so it may serve someone else."""
        if m.state is not S.CLAIMED:
            return
        self._release_hold(m)
        reuse.forget_claim(m)
        self._set(m, S.READY, "returned", "claimer gave up before using it")
        if not self._hand_to_waiter(m):
            self.handout.give_back(m)

    def _hand_to_waiter(self, m: Member) -> bool:
        w = self.handout.next_waiter()
        if w is None:
            return False
        self._mark_claimed(m, w.claim_key, self.clock.monotonic() - w.since)
        w.fut.set_result(m)
        return True

    def end_claim(self, m: Member, reason: str, tell: tuple[str, str] | None = None) -> None:
        """A claimed member goes, whoever held it (failed check at claim, hard TTL, death); `tell`: the
        event's kind and detail when what ended the claim has its own (else "terminating", reason)."""
        self._release_hold(m)
        self.retire(m, reason, tell)

    def lease_expired(self, m: Member) -> None:
        """Its holder stopped renewing: the claim ends and the slot is free."""
        self.metrics.leases_expired += 1
        self.end_claim(m, "lease expired", ("lease_expired", m.claim_key or ""))

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
        # One event, `released`, for the claim's end and the member's next state (terminating, or starting
        # for a reset): a member's life has as many events as states, and the history one row fewer a claim.
        why = reuse.not_reused(self, m)
        self.reset(m) if why is None else self.end_claim(m, why, ("released", "" if why == "released" else why))
        return True

    def reset(self, m: Member) -> None:
        """A released member of a reuse pool: reset in the background (reuse.py), then ready again."""
        self._release_hold(m)
        reuse.forget_claim(m)
        self._set(m, S.STARTING, "released", f"resetting after use {m.uses}")
        self._bringups[m.id] = self.spawn(reuse.reset(self, m), f"reset-{m.id}")

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
                self.retire(m, "terminated by operator")
                done.append(i)
        return done

    def retire(self, m: Member, reason: str, tell: tuple[str, str] | None = None) -> None:
        """Take m out of service and kill its sandbox (once its create, if running, has finished); `tell`:
        as end_claim's."""
        if m.state in (S.TERMINATING, S.GONE):
            return
        self.handout.remove(m.id)
        self.handout.unhold(m)
        m.reason = reason
        was = m.state
        self._going(m, reason, tell)
        task = self._bringups.get(m.id)
        if was in IN_FLIGHT and task is not None:
            # A create still running finishes first (so its sandbox is known), then sees doomed and kills it.
            m.doomed = True
            if was is S.STARTING:
                task.cancel()
            return
        self.kill_later(m)
        self.kick()

    def _going(self, m: Member, reason: str, tell: tuple[str, str] | None = None) -> None:
        """m is terminating: its row goes now, one write instead of a state now and a delete once it is gone
        (a restart kills what is running with no row, as it kills a terminating one: adoption.py)."""
        kind, detail = tell or ("terminating", reason)
        self._set(m, S.TERMINATING, kind, detail, row=None)
        self.store.delete(m.id)

    def kill_later(self, m: Member) -> None:
        self.spawn(self.kill(m), f"kill-{m.id}")

    async def kill(self, m: Member) -> None:
        if m.sandbox is not None:
            try:
                await self.provider.terminate(m.sandbox)
            except Exception as e:  # a kill that fails is logged; the provider's own TTL still bounds it
                log.warning("pool %s: terminating %s failed: %s", self.name, m.id, e)
                self.emit("terminate_failed", m, str(e))
        self._gone(m)

    def remember_gone(self, member_id: str, why: str) -> None:
        """Keep why a sandbox went, so a late release or exec on it is told so (not "unknown")."""
        self.recently_gone[member_id] = why
        while len(self.recently_gone) > GONE_KEPT:
            self.recently_gone.popitem(last=False)

    def _gone(self, m: Member) -> None:
        if m.state is S.GONE:
            return
        self.tally.move(m.state, None)
        m.state = S.GONE
        self.members.pop(m.id, None)
        self.handout.remove(m.id)
        self.metrics.terminated += 1
        self.remember_gone(m.id, m.reason)
        self.emit("terminated", m, m.reason)
        self.kick()

    def on_exit(self, member_id: str, how: str = "") -> None:
        """The provider saw a sandbox die by itself; `how` (exit code, OOM, TTL) goes into the event."""
        m = self.members.get(member_id)
        # Starting members are left to their readiness wait, which counts the failure toward degraded.
        if m is None or m.state not in (S.READY, S.CLAIMED):
            return
        if m.state is S.CLAIMED:
            self.end_claim(m, f"exited while claimed: {how}" if how else "exited while claimed")
        else:
            self.retire(m, f"exited on its own: {how}" if how else "exited on its own")

    def new_member(self) -> Member:
        now_w, now_m = self.clock.time(), self.clock.monotonic()
        ttl = self.cfg.ttl * (1 - random.uniform(0, self.cfg.ttl_jitter))
        m = Member(
            id="pu-" + secrets.token_hex(5), pool=self.name, revision=self.cfg.revision,
            created_at=now_w, created_mono=now_m, expires_at=now_w + ttl, expires_mono=now_m + ttl,
        )
        self.members[m.id] = m
        self.tally.move(None, S.CREATING)
        self.store.put(m)  # record before create: a crash from here on leaves a row to reconcile
        self.metrics.creates += 1
        self.emit("created", m)
        self._bringups[m.id] = self.spawn(bring_up(self, m, ttl), f"create-{m.id}")
        return m

    def created(self, m: Member, sb: Sandbox) -> bool:
        """The provider made m's sandbox; True when it is now starting (False: doomed meanwhile, killed)."""
        m.sandbox = sb
        if sb.expires_at and sb.expires_at < m.expires_at:
            # The provider's own hard end counts (Modal's is whole seconds): never promise time it won't get.
            early = m.expires_at - sb.expires_at
            m.expires_at, m.expires_mono = sb.expires_at, m.expires_mono - early
        if m.doomed:
            self.kill_later(m)
            return False
        # Not written: a restart kills a member that was not ready either way (adoption goes by list_ours)
        self._set(m, S.STARTING, "starting", sb.url, row=None)
        return True

    def stopped_while_starting(self, m: Member) -> None:
        m.reason = "manager stopped"
        self._going(m, m.reason)

    def bringup_done(self, m: Member) -> None:
        self._bringups.pop(m.id, None)

    def became_ready(self, m: Member, reset_began: float | None = None) -> None:
        """m passed readiness after its create, or after a reset that began at `reset_began` (monotonic)."""
        now = self.clock.monotonic()
        began, what = (m.created_mono, "create") if reset_began is None else (reset_began, "reset")
        m.ready_at = self.clock.time()
        self.metrics.create_to_ready.observe(now - began)  # a reset's way back to ready counts too, as always
        creates_work(self)
        m.health_ok, m.health_detail, m.last_probe_at = True, "readiness probe passed", m.ready_at
        claim_scope.prepare(m)
        # the whole row: some providers only know the URL once the sandbox is ready (a Modal tunnel)
        self._set(m, S.READY, "ready", f"{(now - began) * 1000:.0f}ms after {what}", row=True)
        if self.mode == "draining":
            self.retire(m, "pool draining")
        elif not self._hand_to_waiter(m):
            self.handout.add(m)
        self.kick()

    def create_failed(self, m: Member, why: str) -> None:
        if m.doomed:
            self.kill_later(m)
            return
        create_failed_again(self, why)
        self._set(m, S.FAILED, "failed", why)
        self.retire(m, why)

    def install(self, m: Member) -> None:
        """A member adopted in the state a previous manager left it in (opening.adopt)."""
        self.members[m.id] = m
        self.tally.move(None, m.state)
        if m.state is S.READY:
            self.handout.add(m)
        elif m.claim_key:
            self.handout.hold(m.claim_key, m)
        claim_scope.adopted(self, m)
        self.store.put(m)
        self.emit("adopted", m, "found alive after a restart")

    def reconcile(self) -> float:
        return refill.reconcile(self)

    def snapshot(self, members: bool = True) -> PoolSnapshot:
        return pool_snapshot(self, members)
