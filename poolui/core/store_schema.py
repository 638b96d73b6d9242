"""The state file's tables, its settings, and the moves that bring a state file from an older version over.

Shaped for the commits that wrote member rows one claim at a time, before those rows went to a journal
(journal.py; the table now takes them in folds, a few hundred rows at once, and the events kept), measured
with the write pattern of a single-use claim and its replacement (insert, ready, claimed, delete, three
events; tests/test_store_schema.py):
- `members` is WITHOUT ROWID, keyed by its id, with no index on pool: a write touches one b-tree instead of
  three (the rowid table, the id's own index, the pool index). The table holds only the live members (a few
  hundred rows at most), and it is read by pool once, when a pool opens, so a scan costs nothing that matters.
- 1 KiB pages: a commit writes every page it touched to the WAL whole, and a claim's commit touches a few
  rows in a few pages, so smaller pages mean fewer bytes per commit and less for the checkpoint to copy.
Together a cycle committed alone writes about 2.4 KiB of WAL instead of 22 KiB: less for the disk and for
each checkpoint (whose sync was most of a cycle's cost when it ran inline: 284 against 150 us per cycle).
The loop's own CPU per write is about the same either way.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

PAGE_SIZE = 1024

MEMBERS = """
CREATE TABLE IF NOT EXISTS members (
    id TEXT PRIMARY KEY,
    pool TEXT NOT NULL,
    state TEXT NOT NULL,
    revision TEXT NOT NULL,
    created_at REAL NOT NULL,
    ready_at REAL,
    claimed_at REAL,
    expires_at REAL NOT NULL,
    url TEXT NOT NULL DEFAULT '',
    ref TEXT NOT NULL DEFAULT '{}',
    claim_key TEXT,
    lease REAL,
    lease_expires_at REAL,
    token_hash TEXT
) WITHOUT ROWID;
"""
COLUMNS = ("id, pool, state, revision, created_at, ready_at, claimed_at, expires_at, url, ref, claim_key, lease, "
           "lease_expires_at, token_hash")
EVENTS = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    pool TEXT NOT NULL,
    kind TEXT NOT NULL,
    member_id TEXT,
    state TEXT,
    detail TEXT NOT NULL DEFAULT ''
);
"""
OTHERS = """
CREATE TABLE IF NOT EXISTS checkpoints (id INTEGER PRIMARY KEY CHECK (id = 0), done INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS last_event (id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS journal (id INTEGER PRIMARY KEY CHECK (id = 0), generation INTEGER NOT NULL);
"""


def open_db(path: Path) -> sqlite3.Connection:
    """The state file, opened in WAL mode with this version's tables (an older file is brought over first)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=5000")
    _upgrade(db)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA wal_autocheckpoint=0")  # see checkpoint.py: never on the loop's thread
    db.executescript(MEMBERS + EVENTS + OTHERS)
    return db


def _upgrade(db: sqlite3.Connection) -> None:
    """Bring a state file written by an older poolui over to this version's shape, keeping its rows."""
    tables = {name: sql for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")}
    if not tables:  # a new file: the page size can be set before anything is written
        db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        if "members" in tables:
            _members_without_rowid(db, tables["members"])
        if "AUTOINCREMENT" in tables.get("events", "").upper():  # numbered by the event bus since
            db.execute("ALTER TABLE events RENAME TO events_before")
            db.execute(EVENTS)
            db.execute("INSERT INTO events SELECT seq, ts, pool, kind, member_id, state, detail FROM events_before")
            db.execute("DROP TABLE events_before")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    if db.execute("PRAGMA page_size").fetchone()[0] != PAGE_SIZE:
        # A WAL file keeps its page size; the file is rewritten once, out of WAL mode (a few ms: the
        # database holds the live members and at most max_events events).
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        db.execute("VACUUM")


def _members_without_rowid(db: sqlite3.Connection, sql: str) -> None:
    have = {r[1] for r in db.execute("PRAGMA table_info(members)")}
    for column, kind in (("lease", "REAL"), ("lease_expires_at", "REAL"), ("token_hash", "TEXT")):
        if column not in have:  # written before leases or claim tokens existed
            db.execute(f"ALTER TABLE members ADD COLUMN {column} {kind}")
    db.execute("DROP INDEX IF EXISTS members_pool")
    if "WITHOUT ROWID" in sql.upper():
        return
    db.execute("ALTER TABLE members RENAME TO members_before")
    db.execute(MEMBERS)
    db.execute(f"INSERT INTO members ({COLUMNS}) SELECT {COLUMNS} FROM members_before")
    db.execute("DROP TABLE members_before")
