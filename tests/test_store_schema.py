"""The state file's shape (core/store_schema.py): a new file gets small pages and a members table keyed by
its id alone; a file an older poolui wrote is brought over with every row, and a claim's commit writes
fewer bytes than it did in the old shape. Real SQLite files."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path

from poolui.core.member import Member
from poolui.core.model import Event, MemberState
from poolui.core.store import Store
from poolui.core.store_schema import PAGE_SIZE

OLD_MEMBERS = """CREATE TABLE members (id TEXT PRIMARY KEY, pool TEXT NOT NULL, state TEXT NOT NULL,
    revision TEXT NOT NULL, created_at REAL NOT NULL, ready_at REAL, claimed_at REAL, expires_at REAL NOT NULL,
    url TEXT NOT NULL DEFAULT '', ref TEXT NOT NULL DEFAULT '{}', claim_key TEXT)"""


def old_state_file(path: Path) -> None:
    """A state file as poolui wrote it before: 4 KiB pages, a rowid members table without the lease and
    token columns, an index on pool, an AUTOINCREMENT events table; in WAL mode."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA page_size=4096")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(OLD_MEMBERS)
    db.execute("CREATE INDEX members_pool ON members(pool)")
    db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, pool TEXT NOT NULL, "
               "kind TEXT NOT NULL, member_id TEXT, state TEXT, detail TEXT NOT NULL DEFAULT '')")
    for i in range(3):
        db.execute("INSERT INTO members (id, pool, state, revision, created_at, ready_at, claimed_at, expires_at, url, "
                   "ref, claim_key) VALUES (?, 'p', ?, 'r', ?, ?, NULL, 999.0, ?, ?, ?)",
                   (f"pu-{i}", "claimed" if i == 0 else "ready", float(i), float(i) + 0.5, f"http://x/{i}",
                    json.dumps({"n": i}), "key-0" if i == 0 else None))
    db.execute("INSERT INTO events (ts, pool, kind, detail) VALUES (1.0, 'p', 'degraded', 'old')")
    db.commit()
    db.close()


def shape(path: Path) -> tuple[int, str, list[str]]:
    db = sqlite3.connect(path)
    try:
        page = db.execute("PRAGMA page_size").fetchone()[0]
        members = db.execute("SELECT sql FROM sqlite_master WHERE name = 'members'").fetchone()[0]
        indexes = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")]
        return page, members.upper(), indexes
    finally:
        db.close()


def test_a_new_state_file_has_small_pages_and_one_btree_for_members(tmp_path: Path) -> None:
    Store(tmp_path).close()
    page, members, indexes = shape(tmp_path / "poolui.sqlite3")
    assert page == PAGE_SIZE == 1024
    assert "WITHOUT ROWID" in members and indexes == []


def test_an_older_state_file_is_brought_over_with_every_row(tmp_path: Path) -> None:
    old_state_file(tmp_path / "poolui.sqlite3")
    store = Store(tmp_path)
    try:
        rows = {r.id: r for r in store.members("p")}
        assert sorted(rows) == ["pu-0", "pu-1", "pu-2"]
        assert (rows["pu-0"].state, rows["pu-0"].claim_key, rows["pu-0"].url, rows["pu-0"].ref) == (
            "claimed", "key-0", "http://x/0", {"n": 0})
        assert rows["pu-1"].lease is None and rows["pu-1"].token_hash is None  # the columns added, empty
        assert [(e.seq, e.kind, e.detail) for e in store.events()] == [(1, "degraded", "old")]
        m = Member(id="pu-new", pool="p", revision="r", expires_at=999.0)
        m.state = MemberState.READY
        store.put(m)
        store.commit()
    finally:
        store.close()
    page, members, indexes = shape(tmp_path / "poolui.sqlite3")
    assert page == PAGE_SIZE and "WITHOUT ROWID" in members and "AUTOINCREMENT" not in members and indexes == []
    db = sqlite3.connect(tmp_path / "poolui.sqlite3")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert {r[0] for r in db.execute("SELECT id FROM members")} == {"pu-0", "pu-1", "pu-2", "pu-new"}
    finally:
        db.close()
    store = Store(tmp_path)  # opening it again changes nothing more
    try:
        assert len(store.members("p")) == 4
    finally:
        store.close()


def wal_size(path: str) -> int:
    return os.path.getsize(path) if os.path.exists(path) else 0


async def wal_bytes_per_cycle(state_dir: Path) -> float:
    """WAL bytes written per claim cycle (its new row, ready row, claimed row, delete and three events, in
    one commit), with no checkpoint in between."""
    store = Store(state_dir)
    try:
        store.checkpoints.close()  # no checkpoint runs while this counts
        wal = f"{store.path}-wal"
        start = wal_size(wal)
        n = 200
        for i in range(n):
            m = Member(id=f"pu-{i:08x}", pool="p", revision="r", expires_at=999.0)
            store.put(m)
            m.state = MemberState.READY
            store.put(m)
            m.state = MemberState.CLAIMED
            store.set_state(m)
            store.delete(m.id)
            for k, kind in enumerate(("claimed", "released", "terminating")):
                store.add_event(Event(3 * i + k + 10, 1.0, "p", kind, m.id, "claimed", ""))
            await store.commit_now()
        assert store.commits >= n
        return (wal_size(wal) - start) / n
    finally:
        store.close()


def test_a_claim_cycle_writes_a_few_kib_to_the_wal(tmp_path: Path) -> None:
    # 1 KiB pages and one b-tree for members: about 4 KiB of WAL a commit (the old shape wrote about 22 KiB)
    per_cycle = asyncio.run(wal_bytes_per_cycle(tmp_path / "state"))
    assert per_cycle < 8 * 1024, per_cycle
