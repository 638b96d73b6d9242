"""The state files: member rows kept in a journal as they are written and folded into SQLite, the history
group-committed, and checkpoints on a thread of their own. Real files; what a restart would find is read
through another connection and the journal, as a restart reads them."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers import kept_rows, wait_for

from poolui import virtual_time
from poolui.core import checkpoint, journal
from poolui.core.manager import PoolManager
from poolui.core.member import Member
from poolui.core.model import Event, MemberState
from poolui.core.store import Store
from poolui.pool_file import parse_config


def member(i: int) -> Member:
    return Member(id=f"m{i}", pool="p", revision="r", expires_at=100.0)


def kept_ids(store: Store, state: str | None = None) -> set[str]:
    """The member ids a store opened now would find (of one state, or all)."""
    return {i for i, r in kept_rows(store.path.parent).items() if state in (None, r[2])}


def journal_sizes(state_dir: Path) -> list[int]:
    """The sizes of the journal files in a state directory."""
    return [p.stat().st_size for p in state_dir.glob("*.journal")]


def kept_events(store: Store) -> int:
    other = sqlite3.connect(store.path)
    try:
        return int(other.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        other.close()


def history(store: Store, seq: int) -> None:
    """One event kept: SQLite's write (the member rows go to the journal)."""
    store.add_event(Event(seq, 1.0, "p", "claimed", f"m{seq}", "claimed", ""))


async def test_member_rows_are_kept_as_they_are_written_without_a_commit(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        before = store.commits
        for i in range(50):
            store.put(member(i))
        m = member(0)
        m.state = MemberState.READY
        store.set_state(m)
        store.delete("m49")
        # No loop turn, no SQLite commit: each write is a line in the journal when it returns.
        assert kept_ids(store) == {f"m{i}" for i in range(49)} and kept_ids(store, "ready") == {"m0"}
        assert {r.id: r.state for r in store.members("p")}["m0"] == "ready"
        await store.durable()
        assert store.commits == before
    finally:
        store.close()
    assert not journal_sizes(tmp_path)  # a clean close folds every row into the table
    db = sqlite3.connect(tmp_path / "poolui.sqlite3")
    assert len(db.execute("SELECT id FROM members").fetchall()) == 49
    db.close()


def test_a_store_that_was_never_closed_is_found_as_it_was_written(tmp_path: Path) -> None:
    """As after a kill -9: the journal's lines were written, nothing was folded or closed."""
    first = Store(tmp_path)
    for i in range(3):
        first.put(member(i))
    first.delete("m1")
    gone = member(2)
    gone.state, gone.claim_key = MemberState.CLAIMED, "job"
    first.set_state(gone)
    killed(first)
    again = Store(tmp_path)
    try:
        assert {(r.id, r.state, r.claim_key) for r in again.members("p")} == {("m0", "creating", None),
                                                                             ("m2", "claimed", "job")}
    finally:
        again.close()


def test_a_line_cut_short_is_skipped_and_the_rest_is_replayed(tmp_path: Path) -> None:
    """A write cut off (a kill in the middle of it, a full disk) leaves a line that does not parse; replay
    skips it and keeps every whole line, also those appended after it."""
    store = Store(tmp_path)
    store.put(member(1))
    assert store._journal is not None
    path = store._journal.path
    with open(path, "ab") as f:
        f.write(b'["p",["m9","p","cre')  # the start of a row, and no more
    store._journal._torn = True  # as _append marks it when its write fails
    store.put(member(2))
    store._journal.close()
    store.checkpoints.close()
    store._db.close()
    assert reopened_ids(tmp_path) == {"m1", "m2"}


def reopened_ids(state_dir: Path) -> set[str]:
    """The member ids a store opened on `state_dir` finds (it is closed again)."""
    store = Store(state_dir)
    try:
        return {r.id for r in store.members("p")}
    finally:
        store.close()


def killed(store: Store) -> None:
    """Leave the files as a kill -9 would: descriptors closed, nothing folded, nothing more written."""
    assert store._journal is not None
    store._journal.close()
    store.checkpoints.close()
    store._db.close()


def test_a_write_cut_short_is_cut_off_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A short write (a full disk) raises, and what of it landed is cut off: no later line completes it
    into a row its caller was told was not written."""
    store = Store(tmp_path)
    store.put(member(1))
    real_write = os.write

    def short(fd: int, data: bytes) -> int:
        return real_write(fd, data[:-1])  # all of the line but its newline

    monkeypatch.setattr(journal.os, "write", short)
    with pytest.raises(OSError, match="wrote"):
        store.delete("m1")
    monkeypatch.setattr(journal.os, "write", real_write)
    store.put(member(2))
    killed(store)
    assert reopened_ids(tmp_path) == {"m1", "m2"}  # the delete that failed did not happen


def test_a_fold_that_cannot_open_its_journal_changes_nothing(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The next journal is opened before the commit that names it: when it cannot be (out of descriptors,
    a full disk), the table still names the current one, and what is written next is found after a kill."""
    store = Store(tmp_path)
    store.put(member(1))
    assert store._journal is not None
    current = store._journal.generation

    def refused(*args: Any) -> Any:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(journal, "Journal", refused)
    assert store._fold(current + 1) is False
    monkeypatch.undo()
    store.put(member(2))
    killed(store)
    assert reopened_ids(tmp_path) == {"m1", "m2"}


def test_a_fold_whose_commit_fails_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put(member(1))
    assert store._journal is not None
    current = store._journal.generation
    store._db.execute("PRAGMA query_only = ON")  # every SQLite write now fails, as on a full disk
    assert store._fold(current + 1) is False
    store._db.execute("PRAGMA query_only = OFF")
    assert not (tmp_path / f"members.{current + 1}.journal").exists() and store._journal.generation == current
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL again after the fold's FULL
    store.put(member(2))
    killed(store)
    assert reopened_ids(tmp_path) == {"m1", "m2"}


def all_closed(store: Store) -> None:
    """Nothing of the store is left open or running: its checkpoint thread, its database, its journal."""
    assert not store.checkpoints._thread.is_alive()
    with pytest.raises(sqlite3.ProgrammingError):
        store._db.execute("SELECT 1")
    assert store._journal is not None
    with pytest.raises(OSError):
        os.fstat(store._journal._fd)


def test_a_close_whose_last_commit_fails_raises_closes_all_the_same_and_loses_no_row(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put(member(1))
    history(store, 1)
    store._db.execute("PRAGMA query_only = ON")  # every SQLite write now fails, as on a full disk
    with pytest.raises(sqlite3.OperationalError):
        store.close()
    all_closed(store)
    assert reopened_ids(tmp_path) == {"m1"}  # the journal kept the row the failed close could not fold


async def test_a_manager_whose_store_fails_at_stop_raises_and_leaves_the_directory_free(tmp_path: Path) -> None:
    cfg = parse_config({"pools": {"p": {"provider": "instant", "target_ready": 1, "min_ready": 0, "max_ready": 2,
                                        "max_total": 3}}}, "test")
    mgr = PoolManager(cfg, state_dir=tmp_path)
    await mgr.start()
    await mgr.warm_up(5)
    assert isinstance(mgr.store, Store)
    mgr.store._db.execute("PRAGMA query_only = ON")  # every SQLite write now fails, as on a full disk
    with pytest.raises(sqlite3.OperationalError):
        await mgr.stop()
    async with PoolManager(cfg, state_dir=tmp_path) as again:  # not "in use by" the first: it let go
        await again.warm_up(5)


def test_a_close_in_a_checkpoints_hold_whose_fold_fails_closes_all_the_same(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    store.put(member(1))
    store._hold()  # as a checkpoint about to finish holds the store's writes

    def refused(generation: int) -> bool:
        raise sqlite3.OperationalError("cannot rollback - no transaction is active")  # a second failure

    monkeypatch.setattr(store, "_fold", refused)
    with pytest.raises(sqlite3.OperationalError, match="cannot rollback"):
        store.close()
    all_closed(store)
    monkeypatch.undo()
    assert reopened_ids(tmp_path) == {"m1"}


def test_a_store_that_cannot_start_its_journal_does_not_open(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """It could keep no claim: it says so at once instead of failing at the first write."""
    first = Store(tmp_path)
    first.put(member(1))
    killed(first)

    def refused(*args: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal, "Journal", refused)
    with pytest.raises(OSError, match="could not be written"):
        Store(tmp_path)
    monkeypatch.undo()
    assert reopened_ids(tmp_path) == {"m1"}


def test_a_newer_journal_left_by_a_lost_run_is_not_replayed(tmp_path: Path) -> None:
    """A journal numbered past the one the table names is what a power loss left of a fold it took back:
    removed at start, never appended to."""
    store = Store(tmp_path)
    store.put(member(1))
    assert store._journal is not None
    named = store._journal.generation
    killed(store)
    (tmp_path / f"members.{named + 1}.journal").write_bytes(
        b'["p",["ghost","p","claimed","r",1.0,null,null,100.0,"","{}",null,null,null,null]]\n["d","m1"]\n')
    again = Store(tmp_path)
    assert {r.id for r in again.members("p")} == {"m1"}
    killed(again)  # and this run is killed too: what its journal holds is replayed, nothing older
    assert reopened_ids(tmp_path) == {"m1"}


def test_a_line_without_a_rows_shape_is_skipped(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put(member(1))
    assert store._journal is not None
    path = store._journal.path
    killed(store)
    with open(path, "ab") as f:
        f.write(b'["p",["m2","p"]]\n["p",[1,2,3,4,5,6,7,8,9,10,11,12,13,14]]\n')
    again = Store(tmp_path)
    try:
        assert {r.id for r in again.members("p")} == {"m1"}
        again.put(member(3))
    finally:
        again.close()


async def test_a_failed_journal_write_raises_and_leaves_the_store_usable(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        store.put(member(1))
        assert store._journal is not None
        good = store._journal._fd
        store._journal._fd = os.open(store._journal.path, os.O_RDONLY)  # every write now fails (EBADF)
        with pytest.raises(OSError):
            store.put(member(2))
        with pytest.raises(OSError):
            store.delete("m1")
        os.close(store._journal._fd)
        store._journal._fd = good
        store.put(member(3))
        assert {r.id for r in store.members("p")} == {"m1", "m3"}  # the failed writes changed nothing
        assert kept_ids(store) == {"m1", "m3"}
    finally:
        store.close()


async def test_the_journal_is_folded_in_and_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past FOLD_AT bytes the rows go into the table (on the next loop turn), a new journal starts, and only
    it and the one before are kept; a store opened afterwards finds every row."""
    monkeypatch.setattr(journal, "FOLD_AT", 4096)
    store = Store(tmp_path)
    try:
        assert store._journal is not None
        first = store._journal.generation
        for i in range(400):
            m = member(i % 20)
            m.state = MemberState.READY if i % 2 else MemberState.CLAIMED
            store.put(m)
            await asyncio.sleep(0)  # a loop turn between writes, as between a server's requests
        assert store._journal.generation >= first + 5
        assert len(journal_sizes(tmp_path)) <= 2 and max(journal_sizes(tmp_path)) < 2 * 4096
        assert kept_ids(store) == {f"m{i}" for i in range(20)} and len(kept_ids(store, "ready")) == 10
    finally:
        store.close()
    again = Store(tmp_path)
    try:
        assert len(again.members("p")) == 20
    finally:
        again.close()


async def test_commit_now_writes_the_history_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        history(store, 1)
        assert kept_events(store) == 0  # history waits up to EVENTS_WITHIN
        await store.commit_now()
        assert kept_events(store) == 1
    finally:
        store.close()


async def test_checkpoints_run_on_their_own_thread_and_complete(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        for i in range(1, checkpoint.EVERY + 2):
            history(store, i)
            await store.commit_now()
        await wait_for(lambda: store.checkpoints.done >= 1, 10, what="a complete checkpoint by the thread")
        await store.commit_now()
        assert kept_events(store) == checkpoint.EVERY + 1
    finally:
        store.close()
    wal = tmp_path / "poolui.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # the last close folds the WAL back in
    again = Store(tmp_path)
    try:
        assert len(again.events("p", limit=1000)) == checkpoint.EVERY + 1
    finally:
        again.close()


async def test_writes_held_by_a_checkpoint_are_committed_before_commit_now_returns(tmp_path: Path) -> None:
    """While phase 2 holds the store's SQLite writes, commit_now waits for them; each is then seen by
    another connection. Member rows are not held: they go to the journal."""
    store = Store(tmp_path)
    held = 0
    try:
        for i in range(1, 50 * checkpoint.EVERY):  # a bound, not a count: the loop ends on the condition
            history(store, i)
            store.put(member(i))
            held += store._held is not None
            assert f"m{i}" in kept_ids(store)
            await store.commit_now()
            assert kept_events(store) == i
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
        history(store, 1)
        await store.commit_now()
        peak = store.checkpoints.wal_peak
        for i in range(2, checkpoint.LOOK_ROWS + 2):
            history(store, i)
        await store.commit_now()  # one commit more, but LOOK_ROWS rows since the last look
        assert store.checkpoints.wal_peak > peak == 0
    finally:
        store.close()


async def test_a_wal_past_start_at_is_checkpointed_before_every_commits(tmp_path: Path) -> None:
    """Few commits that carry much (the history's batches, folds) start a checkpoint once the WAL passes
    START_AT, not only every EVERY commits, so the WAL does not sit near HOLD_AT."""
    store = Store(tmp_path)
    try:
        seq = 0
        while store.checkpoints.wal_size() < checkpoint.START_AT:
            for _ in range(100):
                seq += 1
                store.add_event(Event(seq, 1.0, "p", "claimed", f"m{seq}", "claimed", "x" * 1000))
            await store.commit_now()
        assert store.commits < checkpoint.EVERY
        await wait_for(lambda: store.checkpoints.done >= 1, 10, what="a checkpoint started by the WAL's size")
    finally:
        store.close()


def test_without_a_loop_the_checkpoint_runs_in_the_commit(tmp_path: Path) -> None:
    """A script (no event loop): nothing to stall, so the commit that is due checkpoints and truncates."""
    store = Store(tmp_path)
    try:
        done = store.checkpoints.done
        for i in range(1, checkpoint.EVERY + 1):
            history(store, i)  # with no loop, written at once
        assert store.checkpoints.done == done + 1
        assert store.checkpoints.wal_size() < 64 << 10
    finally:
        store.close()


def test_on_virtual_time_the_checkpoint_runs_in_the_commit(tmp_path: Path) -> None:
    """On virtual time a wait for the checkpoint thread would let time jump (a lease could end while
    commit_now waits): the checkpoint runs in the commit instead, and no virtual time passes."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        store = Store(tmp_path)
        try:
            start = loop.time()
            for i in range(1, checkpoint.EVERY):
                history(store, i)
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
        history(store, 1)
        await store.commit_now()
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM events").fetchone()  # a snapshot held open
        for i in range(2, checkpoint.EVERY + 2):
            history(store, i)
            await store.commit_now()
        await wait_for(lambda: store.checkpoints.hold_seconds.count >= 1, 10, what="a finished hold")
        assert store.checkpoints.done == 0 and store._held is None
        history(store, checkpoint.EVERY + 2)
        await store.commit_now()
        reader.execute("COMMIT")
        assert kept_events(store) == checkpoint.EVERY + 2
        for i in range(checkpoint.EVERY + 3, 3 * checkpoint.EVERY + 3):  # the next (after 2 * EVERY) falls due
            history(store, i)
            await store.commit_now()
        await wait_for(lambda: store.checkpoints.done >= 1, 10, what="a complete checkpoint after the reader")
    finally:
        reader.close()
        store.close()


async def test_a_failed_commit_raises_and_leaves_the_store_usable(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        history(store, 1)
        await store.commit_now()
        store._db.execute("PRAGMA query_only = ON")  # every SQLite write now fails, as on a full disk
        history(store, 2)
        with pytest.raises(sqlite3.OperationalError):
            await store.commit_now()
        store._db.execute("PRAGMA query_only = OFF")
        history(store, 3)
        await store.commit_now()
        assert not store._db.in_transaction
        assert [e.seq for e in store.events("p")] == [1, 3]  # the failed write changed nothing
    finally:
        store.close()


async def test_sustained_claims_keep_the_state_files_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """5,000 claim+release cycles on an instant pool: the journal is folded in whenever it reaches FOLD_AT
    (here 256 KiB, so it happens often) and only it and the one before are kept; the WAL stays under
    HOLD_AT plus a few hundred KiB (before checkpoints completed under load it grew by about 60 KiB a
    cycle: 1.18 GB after 15,000), and the database under what its live rows and last events take."""
    monkeypatch.setattr(journal, "FOLD_AT", 256 << 10)
    cfg = parse_config({"pools": {"p": {"provider": "instant", "target_ready": 4, "min_ready": 1, "max_ready": 10,
                                        "health": {"enabled": False}}}}, "test.toml")
    bound = checkpoint.HOLD_AT + (1 << 20)
    async with PoolManager(cfg, state_dir=tmp_path) as mgr:
        await mgr.warm_up(30)
        assert isinstance(mgr.store, Store) and mgr.store._journal is not None
        wal, db, first = mgr.store.checkpoints, mgr.store.path, mgr.store._journal.generation
        biggest = journals = 0
        for _ in range(5000):
            c = await mgr.claim("p", timeout=10)
            assert await mgr.release("p", c.id)
            biggest = max(biggest, wal.wal_size())
            journals = max(journals, sum(journal_sizes(tmp_path)))
        assert biggest < bound and wal.wal_peak < bound, (biggest, wal.wal_peak)
        assert journals < 2 * (256 << 10) + (64 << 10) and len(journal_sizes(tmp_path)) <= 2
        assert db.stat().st_size < 4 << 20
        assert mgr.store._journal.generation >= first + 5  # folded in all along
        live = {m.id for m in mgr.pool("p").members.values() if m.state is not MemberState.TERMINATING}
        assert kept_ids(mgr.store) == live  # a terminating member's row goes as it starts going
        print(f"WAL peak {wal.wal_peak / 2**20:.2f} MiB, db {db.stat().st_size / 2**20:.2f} MiB, journals "
              f"{journals / 2**10:.0f} KiB, {mgr.store._journal.generation - first} folds")


async def test_a_claim_is_kept_before_it_is_answered_without_a_loop_turn_or_a_commit(tmp_path: Path) -> None:
    """A claim's row is in the journal when the claim returns, alone or among 8 made together; it waits for
    no loop turn and no SQLite commit."""
    cfg = parse_config({"pools": {"p": {"provider": "instant", "target_ready": 18, "min_ready": 1, "max_ready": 20,
                                        "health": {"enabled": False}}}}, "test.toml")
    async with PoolManager(cfg, state_dir=tmp_path) as mgr:
        await mgr.warm_up(30)
        await mgr.pause("p")  # no refill writes in between
        store = mgr.store
        assert isinstance(store, Store)
        await store.commit_now()  # the pause's event
        ran: list[int] = []
        asyncio.get_running_loop().call_soon(ran.append, 1)
        before = store.commits
        lone = await mgr.claim("p")
        assert not ran, "a lone claim waited for a loop turn"
        assert store.commits == before and lone.id in kept_ids(store, "claimed")

        async def claim() -> str:
            c = await mgr.claim("p")
            assert c.id in kept_ids(store, "claimed")
            return c.id

        ids = await asyncio.gather(*(claim() for _ in range(8)))
        assert len(set(ids)) == 8
        await mgr.release("p", lone.id)
        assert lone.id not in kept_ids(store)  # a release is kept before it returns too
