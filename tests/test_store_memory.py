"""The store interface (core/store_api.py): the SQLite store and the in-memory one give back the same rows,
and one pool scenario runs the same on both; a manager given the in-memory store takes no directory lock
and writes nothing to disk."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from poolui import virtual_time
from poolui.clock import LoopClock
from poolui.core.manager import PoolManager, StoreKind
from poolui.core.member import Member
from poolui.core.model import Event, MemberState
from poolui.core.store import Store, namespace_of
from poolui.core.store_api import NOT_KEPT, StateStore
from poolui.core.store_memory import MemoryStore
from poolui.errors import InvalidRequest
from poolui.pool_file import parse_config
from poolui.providers.base import Sandbox


def config(**pool: Any) -> Any:
    base: dict[str, Any] = {"provider": "instant", "target_ready": 2, "min_ready": 1, "max_ready": 6,
                            "max_total": 20, "ttl": "1h", "instant": {"create_delay": "500ms"},
                            "health": {"http": "/", "interval": "1h", "timeout": "1s"}}
    base.update(pool)
    return parse_config({"pools": {"p": base}}, "test")


def writes(store: StateStore) -> None:
    """The same writes to either store: rows put, changed, one deleted, one changed after its delete."""
    for i in range(3):
        store.put(Member(id=f"m{i}", pool="p", revision="r", created_at=10.0 - i, expires_at=100.0))
    m = Member(id="m0", pool="p", revision="r", created_at=10.0, expires_at=100.0,
               sandbox=Sandbox("m0", "http://x", {"pid": 7, "argv": ("a", "b")}, 100.0))
    store.put(m)
    m.state, m.claimed_at, m.claim_key, m.lease, m.lease_expires_at, m.token_hash = \
        MemberState.CLAIMED, 12.0, "k", 30.0, 42.0, "h"
    store.set_state(m)
    gone = Member(id="m2", pool="p", revision="r", created_at=8.0, expires_at=100.0)
    store.delete("m2")
    gone.state = MemberState.READY
    store.set_state(gone)  # an update of a deleted row brings nothing back
    store.put(Member(id="q0", pool="q", revision="r", expires_at=100.0))


async def test_both_stores_give_back_the_same_rows(tmp_path: Path) -> None:
    disk, memory = Store(tmp_path), MemoryStore()
    try:
        writes(disk)
        writes(memory)
        await disk.durable()
        assert disk.members("p") == memory.members("p")
        assert [r.id for r in memory.members("p")] == ["m1", "m0"]  # oldest first
        row = memory.members("p")[1]
        assert (row.state, row.claim_key, row.lease, row.url, row.ref) == \
            ("claimed", "k", 30.0, "http://x", {"pid": 7, "argv": ["a", "b"]})  # the ref as JSON gives it back
    finally:
        disk.close()


async def test_the_memory_store_keeps_the_last_events_in_order() -> None:
    store = MemoryStore(max_events=3)
    for n, seq in enumerate([50, 51, 52, 53, 54]):  # the bus's numbers, kept as the SQLite store keeps them
        store.add_event(Event(seq, float(n), "p" if n % 2 == 0 else "q", "created"))
    assert [(e.seq, e.ts) for e in store.events()] == [(52, 2.0), (53, 3.0), (54, 4.0)]
    assert [e.ts for e in store.events("p")] == [2.0, 4.0]
    assert [e.ts for e in store.events(limit=1)] == [4.0] and store.events(limit=0) == []
    await store.durable()
    await store.commit_now()


async def scenario(mgr: PoolManager, clock: LoopClock) -> dict[str, Any]:
    """Warm up, a claim with a key and a lease (and its retry), a renew, a claim released, a resize up, the
    lease left to run out; what the pool and its store say after each step."""
    assert mgr.store is not None
    store, pool = mgr.store, mgr.pool("p")
    await mgr.warm_up(5)
    a = await mgr.claim("p", claim_key="job-1", lease=30)
    assert (await mgr.claim("p", claim_key="job-1")).id == a.id
    await mgr.renew("p", a.id, 60)
    row = {r.id: r for r in store.members("p")}[a.id]
    assert (row.state, row.claim_key, row.lease) == ("claimed", "job-1", 60)
    b = await mgr.claim("p")
    assert await mgr.release("p", b.id)
    await mgr.resize("p", target=4)
    await mgr.warm_up(5)
    rows_then = Counter(r.state for r in store.members("p"))
    await clock.sleep(61)  # the lease runs out; refill looks again at least once a second
    assert a.id not in pool.members and pool.recently_gone[a.id] == "lease expired"
    return {
        "rows then": rows_then,
        "rows now": Counter(r.state for r in store.members("p")),
        "members": {m.id: m.state.value for m in pool.members.values()} == {r.id: r.state for r in
                                                                         store.members("p")},
        "counts": pool.counts(),
        # what both keep on disk's terms (the memory store also keeps the steps a row tells: NOT_KEPT)
        "events": Counter(e.kind for e in store.events("p", 10_000) if e.kind not in NOT_KEPT),
        "claims": pool.metrics.to_dict()["claims"],
        "creates": pool.metrics.creates,
    }


def run_scenario(kind: StoreKind, state_dir: Path) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        clock = LoopClock(asyncio.get_running_loop())
        async with PoolManager(config(), state_dir=state_dir, clock=clock, store=kind) as mgr:
            return await scenario(mgr, clock)

    return virtual_time.run(main())


def test_one_pool_scenario_runs_the_same_on_both_stores(tmp_path: Path) -> None:
    on_disk = run_scenario("sqlite", tmp_path / "disk")
    in_memory = run_scenario("memory", tmp_path / "memory")
    assert on_disk == in_memory
    assert in_memory["rows then"] == {"claimed": 1, "ready": 4}
    assert in_memory["rows now"] == {"ready": 4} and in_memory["members"]
    assert in_memory["creates"] == 6 and in_memory["events"]["lease_expired"] == 1
    assert (tmp_path / "disk" / "poolui.sqlite3").exists()
    assert not (tmp_path / "memory").exists()  # nothing on disk, not even the directory


def test_memory_managers_take_no_lock_and_never_share_a_namespace(tmp_path: Path) -> None:
    """Two managers on the in-memory store and one on SQLite run on one state directory together; each
    in-memory one marks its sandboxes with a namespace of its own, never the directory's."""

    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        async with PoolManager(config(), tmp_path, clock, store="sqlite") as disk, \
                PoolManager(config(), tmp_path, clock, store="memory") as one, \
                PoolManager(config(), tmp_path, clock, store="memory") as two:
            for mgr in (disk, one, two):
                await mgr.warm_up(5)
            spaces = {m.pool("p").provider.ctx.namespace for m in (disk, one, two)}  # type: ignore[attr-defined]
            assert len(spaces) == 3 and namespace_of(tmp_path) in spaces
            assert isinstance(one.store, MemoryStore) and isinstance(disk.store, Store)

    virtual_time.run(main())


def test_an_unknown_store_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="store = 'redis' is not allowed: expected 'sqlite' or 'memory'"):
        PoolManager(config(), store="redis")  # type: ignore[arg-type]
