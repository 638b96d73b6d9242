"""The state file: group commit (one transaction per loop turn), durability on demand, and checkpoints on
a thread of their own. A real SQLite file; a second connection sees only what was committed."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from helpers import wait_for

from poolui import virtual_time
from poolui.core import checkpoint
from poolui.core.manager import PoolManager
from poolui.core.member import Member
from poolui.core.model import MemberState
from poolui.core.store import Store
from poolui.pool_file import parse_config


def member(i: int) -> Member:
    return Member(id=f"m{i}", pool="p", revision="r", expires_at=100.0)


def committed_ids(store: Store, state: str | None = None) -> set[str]:
    """The member ids another connection sees committed (of one state, or all)."""
    other = sqlite3.connect(store.path)
    try:
        return {r[0] for r in other.execute("SELECT id, state FROM members") if state in (None, r[1])}
    finally:
        other.close()


async def test_one_turns_writes_are_one_commit_and_durable_waits_for_it(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        before = store.commits
        for i in range(50):
            store.put(member(i))
        m = member(0)
        m.state = MemberState.READY
        store.set_state(m)
        store.delete("m49")
        assert committed_ids(store) == set()  # nothing committed within the turn that wrote it
        await store.durable()
        assert store.commits == before + 1
        assert committed_ids(store) == {f"m{i}" for i in range(49)}
        assert {r.id: r.state for r in store.members("p")}["m0"] == "ready"
        await store.durable()  # nothing open: returns at once, no empty commit
        assert store.commits == before + 1
    finally:
        store.close()


async def test_commit_now_makes_the_turns_writes_visible_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        store.put(member(1))
        store.commit()  # what a claim does before it answers
        assert committed_ids(store) == {"m1"}
    finally:
        store.close()


async def test_checkpoints_run_on_their_own_thread_and_complete(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        for i in range(checkpoint.EVERY + 1):
            store.put(member(i))
            await store.commit_now()
        await wait_for(lambda: store.checkpoints.done >= 1, 10, what="a complete checkpoint by the thread")
        await store.durable()
        assert committed_ids(store) == {f"m{i}" for i in range(checkpoint.EVERY + 1)}
    finally:
        store.close()
    wal = tmp_path / "poolui.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # the last close folds the WAL back in
    again = Store(tmp_path)
    try:
        assert len(again.members("p")) == checkpoint.EVERY + 1
    finally:
        again.close()


async def test_writes_held_by_a_checkpoint_are_committed_before_commit_now_returns(tmp_path: Path) -> None:
    """While phase 2 holds the store's writes, commit_now waits for them; every answer still follows its
    commit, seen by another connection."""
    store = Store(tmp_path)
    held = 0
    try:
        for i in range(50 * checkpoint.EVERY):  # a bound, not a count: the loop ends on the condition
            store.put(member(i))
            held += store._held is not None
            await store.commit_now()
            assert f"m{i}" in committed_ids(store)
            if store.checkpoints.done >= 2 and held:
                break
            await asyncio.sleep(0)  # one turn of the loop, as a server takes between requests
        assert store.checkpoints.done >= 2 and held >= 1, (store.checkpoints.done, held)
    finally:
        store.close()


async def test_the_wal_is_looked_at_after_a_big_transaction(tmp_path: Path) -> None:
    """The WAL's size is looked at every LOOK_EVERY commits, and at once after a transaction that changed
    LOOK_ROWS rows or more: a big transaction cannot carry the WAL far past HOLD_AT unseen."""
    store = Store(tmp_path)
    try:
        store.put(member(0))
        await store.commit_now()
        peak = store.checkpoints.wal_peak
        for i in range(1, checkpoint.LOOK_ROWS + 1):
            store.put(member(i))
        await store.commit_now()  # the second commit, but LOOK_ROWS rows since the last look
        assert store.checkpoints.wal_peak > peak == 0
    finally:
        store.close()


def test_without_a_loop_the_checkpoint_runs_in_the_commit(tmp_path: Path) -> None:
    """A script (no event loop): nothing to stall, so the commit that is due checkpoints and truncates."""
    store = Store(tmp_path)
    try:
        for i in range(checkpoint.EVERY):
            store.put(member(i))
        assert store.checkpoints.done == 1
        assert store.checkpoints.wal_size() < 64 << 10
    finally:
        store.close()


def test_on_virtual_time_the_checkpoint_runs_in_the_commit(tmp_path: Path) -> None:
    """On virtual time a wait for the checkpoint thread would let time jump (a lease could end while a claim
    waits for its commit): the checkpoint runs in the commit instead, and no virtual time passes."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        store = Store(tmp_path)
        try:
            start = loop.time()
            for i in range(checkpoint.EVERY):
                store.put(member(i))
                await store.commit_now()
            assert (store.checkpoints.done, store.checkpoints.hold_seconds.count, loop.time()) == (1, 0, start)
        finally:
            store.close()

    virtual_time.run(main())


async def test_a_checkpoint_a_reader_blocks_gives_up_its_hold(tmp_path: Path) -> None:
    """A reader in another connection keeps an old snapshot: the finishing checkpoint waits HOLD_WAIT,
    gives up, and the held writes go in; once the reader is gone, checkpoints complete again."""
    store = Store(tmp_path)
    reader = sqlite3.connect(store.path, isolation_level=None)
    try:
        store.put(member(0))
        await store.commit_now()
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM members").fetchone()  # a snapshot held open
        for i in range(1, checkpoint.EVERY + 1):
            store.put(member(i))
            await store.commit_now()
        await wait_for(lambda: store.checkpoints.hold_seconds.count >= 1, 10, what="a finished hold")
        assert store.checkpoints.done == 0 and store._held is None
        store.put(member(checkpoint.EVERY + 1))
        await store.commit_now()
        reader.execute("COMMIT")
        assert len(committed_ids(store)) == checkpoint.EVERY + 2
        for i in range(checkpoint.EVERY + 2, 3 * checkpoint.EVERY + 2):  # the next (after 2 * EVERY) falls due
            store.put(member(i))
            await store.commit_now()
        await wait_for(lambda: store.checkpoints.done >= 1, 10, what="a complete checkpoint after the reader")
    finally:
        reader.close()
        store.close()


async def test_a_failed_write_raises_and_leaves_the_store_usable(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        store.put(member(1))
        store.commit()
        store._db.execute("PRAGMA query_only = ON")  # every write now fails, as on a full disk
        with pytest.raises(sqlite3.OperationalError):
            store.put(member(2))
        with pytest.raises(sqlite3.OperationalError):
            store.delete("m1")
        store._db.execute("PRAGMA query_only = OFF")
        store.put(member(3))
        await store.durable()
        assert not store._db.in_transaction
        assert committed_ids(store) == {"m1", "m3"}  # the failed writes changed nothing
    finally:
        store.close()


async def test_sustained_claims_keep_the_state_files_bounded(tmp_path: Path) -> None:
    """5,000 claim+release cycles on an instant pool (about 17,000 commits): before checkpoints completed
    under load, the WAL grew by about 60 KiB a cycle (1.18 GB after 15,000). Now it stays under HOLD_AT
    plus one transaction, and the database under what its live rows and last events take."""
    cfg = parse_config({"pools": {"p": {"provider": "instant", "target_ready": 4, "min_ready": 1, "max_ready": 10,
                                        "health": {"enabled": False}}}}, "test.toml")
    bound = checkpoint.HOLD_AT + (1 << 20)
    async with PoolManager(cfg, state_dir=tmp_path) as mgr:
        await mgr.warm_up(30)
        assert isinstance(mgr.store, Store)
        wal, db = mgr.store.checkpoints, mgr.store.path
        biggest = 0
        for _ in range(5000):
            c = await mgr.claim("p", timeout=10)
            assert await mgr.release("p", c.id)
            biggest = max(biggest, wal.wal_size())
        assert biggest < bound and wal.wal_peak < bound, (biggest, wal.wal_peak)
        assert db.stat().st_size < 4 << 20
        assert mgr.store.commits > 10_000 and wal.done >= 20  # checkpoints completed all along
        held = wal.hold_seconds.summary()
        print(f"WAL peak {wal.wal_peak / 2**20:.2f} MiB, db {db.stat().st_size / 2**20:.2f} MiB, "
              f"{wal.done} checkpoints, writes held p50 {held['p50'] * 1000:.2f} ms p95 {held['p95'] * 1000:.2f} ms")


async def test_a_lone_claimer_commits_at_once_and_claims_of_one_turn_share_one_commit(tmp_path: Path) -> None:
    """A claimer alone in asking for a commit commits at once, without a loop turn; claims made together in
    one turn are answered after the same commit (each once its row is committed); a claimer cancelled while
    it waits for that commit leaves the sandbox ready, in memory and in the state file."""
    cfg = parse_config({"pools": {"p": {"provider": "instant", "target_ready": 18, "min_ready": 1, "max_ready": 20,
                                        "health": {"enabled": False}}}}, "test.toml")
    async with PoolManager(cfg, state_dir=tmp_path) as mgr:
        await mgr.warm_up(30)
        await mgr.pause("p")  # no refill writes in between: what is committed is the claims' alone
        store = mgr.store
        assert isinstance(store, Store)
        await store.durable()  # the pause's event
        ran: list[int] = []
        asyncio.get_running_loop().call_soon(ran.append, 1)
        before = store.commits
        lone = await mgr.claim("p")
        assert not ran, "a lone claim waited for a loop turn"
        assert store.commits == before + 1 and lone.id in committed_ids(store, "claimed")
        seen: list[int] = []

        async def claim() -> str:
            c = await mgr.claim("p")
            seen.append(store.commits)
            assert c.id in {r.id for r in store.members("p")} and f"{c.id}" in committed_ids(store, "claimed")
            return c.id

        for _ in range(2):  # the first of a burst after a quiet turn may commit alone; the rest share one
            seen.clear()
            before = store.commits
            await asyncio.gather(*(claim() for _ in range(8)))
        assert seen == [before + 1] * 8
        # After that burst the next claimer waits for its turn's shared commit: cancelled there, it gives back.
        cancelled = asyncio.ensure_future(mgr.claim("p"))
        await asyncio.sleep(0)  # the claim has taken its sandbox and waits for the turn's commit
        assert mgr.pool("p").counts()["claimed"] == 18
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert mgr.pool("p").counts()["claimed"] == 17 and len(mgr.pool("p").handout) == 1
        await store.durable()
        assert len(committed_ids(store, "claimed")) == 17  # the one given back is ready again in the state file too
