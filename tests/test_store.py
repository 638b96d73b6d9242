"""The state file: group commit (one transaction per loop turn), durability on demand, and checkpoints on
a thread of their own. A real SQLite file; a second connection sees only what was committed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers import wait_for

from poolui.core import checkpoint
from poolui.core.member import Member
from poolui.core.model import MemberState
from poolui.core.store import Store


def member(i: int) -> Member:
    return Member(id=f"m{i}", pool="p", revision="r", expires_at=100.0)


def committed_ids(store: Store) -> set[str]:
    other = sqlite3.connect(store.path)
    try:
        return {r[0] for r in other.execute("SELECT id FROM members")}
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


async def test_checkpoints_run_on_their_own_thread(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        for i in range(checkpoint.EVERY + 1):
            store.put(member(i))
            store.commit()
        await wait_for(lambda: store._checkpoints.done >= 1, 10, what="a checkpoint by the thread")
    finally:
        store.close()
    wal = tmp_path / "poolui.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # the last close folds the WAL back in
    again = Store(tmp_path)
    try:
        assert len(again.members("p")) == checkpoint.EVERY + 1
    finally:
        again.close()


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
