"""SQLite state, the one durable StateStore (store_api.py): one row per member (written before the provider
is asked) and a bounded event log.

The member rows are written to a journal (journal.py): a claim, renew and release is one line appended
with one `write` before it is answered, which a kill -9 of the controller does not lose; the rows are
folded into the SQLite members table whenever the journal reaches a few MiB and when the store closes, and
a store that opens reads the table and replays the journal after it. That took about a quarter of the
server's CPU per claim cycle off (journal.py says how it was measured): a SQLite transaction per claim
cost more than the rest of the engine's claim.

What is still written to SQLite (the events kept, the event numbers reserved, the folds) is group-committed:
every write of one event-loop turn goes into one transaction, committed on the next turn (`commit_now()`
waits for it; `durable()`, for member rows, waits for nothing). The events kept (the history) are written
within a tenth of a second, in whichever commit comes then (add_event says why). WAL with
synchronous=NORMAL, like the journal: a commit survives the controller being killed (-9); a power loss or a
kernel crash can take the last writes, and then the providers' own hard TTLs bound what could be left
running.

The state files stay bounded under any rate of claims: a journal is folded in at journal.FOLD_AT bytes (it
and the one before it are kept), and checkpoint.py completes a checkpoint every few MiB of WAL, holding
this store's SQLite writes (queued in memory, not blocking the loop) for the millisecond or so its last
phase takes, so the WAL file stays under 8 MiB plus a few hundred KiB. The database itself holds the
live members and the last max_events events (about 2 MiB at 10,000).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from . import journal
from .checkpoint import Checkpointer
from .member import Member
from .model import Event
from .store_api import NOT_KEPT, StoredMember
from .store_schema import COLUMNS, open_db

_json = msgspec.json.Encoder()
log = logging.getLogger("poolui.store")


def _ref_json(ref: dict[str, Any]) -> str:
    """A provider's ref as JSON text (msgspec: a fraction of json.dumps's time, on every member's rows)."""
    return _json.encode(ref).decode()


EVENTS_WITHIN = 0.1  # seconds an event kept may wait in memory before it is written
EVENTS_BATCH = 512  # events kept that are written with the next commit, however recent
SEQ_BLOCK = 100_000  # event numbers reserved ahead in the file, so none is given twice across a kill -9


def namespace_of(state_dir: Path) -> str:
    """A short stable name for one state directory; providers mark their sandboxes with it."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]


class Store:
    """The SQLite store of one state directory (the manager locks the directory first: one writer)."""

    def __init__(self, state_dir: Path, max_events: int = 10_000) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(state_dir, 0o700)  # sandboxes and other users have no business reading pool state
        self.path = state_dir / "poolui.sqlite3"
        self.max_events = max_events
        self._db = open_db(self.path)
        self._dir = state_dir
        self._rows, generation = journal.rows_kept(self._db, state_dir)  # by id, as last written
        journal.forget_after(state_dir, generation)  # newer ones are what a power loss left of a lost run
        self._journal: journal.Journal | None = None
        self._changed: set[str] | None = None  # ids written since the last fold (None: fold every row)
        self._fold_asked = False
        self._fold_at = journal.FOLD_AT  # the journal's size at which the next fold is tried
        self._events_since_prune = 0
        self._events_kept = self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        self._pending: list[tuple[Any, ...]] = []  # events kept, not yet written
        self._events_now = False  # write them with the next commit
        self._events_timer: asyncio.TimerHandle | None = None
        self._seq_reserved = 0  # event numbers up to this one are reserved in the file (next_seq)
        self._in_txn = False
        self._resumed: asyncio.Future[None] | None = None  # commit_now waits on it while a checkpoint holds
        self._closed = False
        self._held: list[tuple[str, tuple[Any, ...]]] | None = None  # writes queued while a checkpoint ends
        self._replay: list[tuple[str, tuple[Any, ...]]] = []  # what was held, for the next commit to write
        self.commits = 0
        self.journal_writes = 0  # member rows written (journal lines)
        self.folds = -1  # journals folded into the table (the first, at open, is not counted)
        self.last_seq = 0  # the bus's number of the last event seen, kept or not (written at close)
        self.checkpoints = Checkpointer(self.path, self._hold, self._resume)
        # The rows replayed go into the table, and a new journal starts empty; a store that cannot do that
        # cannot keep a claim either, so it does not open.
        if not self._fold(generation + 1):
            self.checkpoints.close()
            self._db.close()
            raise OSError(f"state files in {state_dir}: the member rows could not be written (see the log)")

    def stats(self) -> dict[str, float]:
        """How hard the state files work, for /metrics: member rows written to the journal, folds of it into
        the table, its size now; transactions committed, checkpoints completed, the WAL file's largest size
        in bytes, and the seconds SQLite's writes waited for checkpoints to finish."""
        cp, j = self.checkpoints, self._journal
        return {"journal_writes": self.journal_writes, "folds": self.folds, "journal_bytes": j.size if j else 0,
                "commits": self.commits, "checkpoints": cp.done, "wal_peak_bytes": cp.wal_peak,
                "checkpoint_hold_seconds": cp.hold_seconds.total}

    def close(self) -> None:
        """Write what is left and close; if the last commit fails (a full disk) it raises, with the
        checkpoint thread stopped and the files closed all the same: the journal keeps every row."""
        if self._events_timer is not None:
            self._events_timer.cancel()
        self._events_now = True
        assert self._journal is not None
        folded = False
        try:
            if self.last_seq and self._held is None:
                self._write("INSERT OR REPLACE INTO last_event (id, seq) VALUES (0, ?)", (self.last_seq,))
            self.commit()
            folded = self._fold(self._journal.generation + 1)  # False while a checkpoint holds the writes
        finally:
            try:
                self.checkpoints.close()
                if self._held is not None:  # closed in the middle of a checkpoint: what it held still goes in
                    self._resume()
                    folded = self._fold(self._journal.generation + 1)
            finally:  # even when that fails too (a rollback refused): nothing stays open
                self._journal.close()
                self._closed = True
                self._db.close()  # the last connection to close checkpoints the WAL into the database, synced
        if folded:  # the table holds every row now, on disk: no journal is needed
            journal.forget_before(self._dir, self._journal.generation + 2)

    def _fold(self, generation: int) -> bool:
        """Bring the members table to the rows in memory (those written since the last fold; every one at
        open) and name `generation` the journal to replay after it, in one commit synced to disk (so a
        power loss cannot take the table back to a journal since removed); then appends go to that
        journal, opened empty before the commit names it. False (the current journal goes on) when a
        checkpoint holds the store's writes or the fold fails: a fold is tried again after FOLD_AT more."""
        self._fold_asked = False
        if self._held is not None:
            return False
        try:
            self.commit()  # what this turn wrote so far: the safety level cannot change inside a transaction
            new = journal.Journal(self._dir, generation)
        except (sqlite3.Error, OSError) as e:
            return self._fold_failed(e)
        try:
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("BEGIN")
            self._in_txn = True
            insert = f"INSERT OR REPLACE INTO members ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            if self._changed is None:
                self._db.execute("DELETE FROM members")
                self._db.executemany(insert, self._rows.values())
            else:
                self._db.executemany("DELETE FROM members WHERE id = ?",
                                     [(i,) for i in self._changed if i not in self._rows])
                self._db.executemany(insert, [self._rows[i] for i in self._changed if i in self._rows])
            self._db.execute("INSERT OR REPLACE INTO journal (id, generation) VALUES (0, ?)", (generation,))
            self.commit()
        except sqlite3.Error as e:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._in_txn = False
            self._db.execute("PRAGMA synchronous=NORMAL")
            new.close()
            new.path.unlink(missing_ok=True)
            return self._fold_failed(e)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self.folds += 1
        self._changed, self._fold_at = set(), journal.FOLD_AT
        old, self._journal = self._journal, new
        if old is not None:
            old.close()
            journal.forget_before(self._dir, generation)
        return True

    def _fold_failed(self, e: Exception) -> bool:
        """A fold that could not be done (a full disk): the journal goes on, and the next try waits for
        FOLD_AT more of it, not the next write."""
        log.warning("state files: the journal could not be folded into %s: %s", self.path, e)
        if self._journal is not None:
            self._fold_at = self._journal.size + journal.FOLD_AT
        return False

    def _fold_due(self) -> None:
        if self._journal is not None and not self._closed:
            self._fold(self._journal.generation + 1)

    def _hold(self) -> None:
        """A checkpoint is about to finish: commit this turn's writes, then queue the next ones."""
        try:
            self.commit()
        except sqlite3.Error:
            pass  # rolled back, as a failed commit's writes are; the hold goes on
        self._held = []

    def _resume(self) -> None:
        """The checkpoint is done: write what was held, in order, and commit it with the pending events."""
        self._replay, self._held = self._held or [], None
        resumed, self._resumed = self._resumed, None
        try:
            self.commit()
        except sqlite3.Error:
            pass  # rolled back: what was held is lost with the transaction, as a failed commit's writes are
        if resumed is not None and not resumed.done():
            resumed.set_result(None)

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        if self._held is not None:
            self._held.append((sql, args))
            return
        if not self._in_txn:
            self._db.execute("BEGIN")
            self._in_txn = True
            try:
                asyncio.get_running_loop().call_soon(self.commit)  # the next turn commits this one's writes
            except RuntimeError:
                self._db.execute(sql, args)  # no loop (a script, a test): each write commits at once
                self.commit()
                return
        self._db.execute(sql, args)

    def commit(self) -> None:
        """Commit what this turn wrote to SQLite (events kept, when due; a fold; a reservation).

        On a SQLite error (a full disk) the turn's writes are rolled back and the error is raised: the store
        is left with no transaction open, ready for the next write."""
        if self._closed or self._held is not None:
            return  # held: _resume() commits once the checkpoint is done
        try:
            self._commit_turn()
        except sqlite3.Error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._in_txn = False
            raise

    def _commit_turn(self) -> None:
        events = self._pending and (self._events_now or len(self._pending) >= EVENTS_BATCH)
        if (events or self._replay) and not self._in_txn:
            self._db.execute("BEGIN")
            self._in_txn = True
        replay, self._replay = self._replay, []
        for sql, args in replay:
            self._db.execute(sql, args)
        if events:
            rows, self._pending, self._events_now = self._pending, [], False
            if self._events_timer is not None:
                self._events_timer.cancel()
                self._events_timer = None
            self._db.executemany(
                "INSERT OR REPLACE INTO events (seq, ts, pool, kind, member_id, state, detail) VALUES (?,?,?,?,?,?,?)",
                rows)
            self._events_since_prune += len(rows)
            self._events_kept += len(rows)
            if self._events_since_prune >= 500 and self._events_kept > self.max_events:
                # The oldest rows over max_events go, found from the old end: a step over the few hundred
                # that go, not over the ten thousand that stay (that walk was 15% of a commit's time).
                self._events_since_prune = 0
                self._db.execute("DELETE FROM events WHERE seq < (SELECT seq FROM events ORDER BY seq "
                                 "LIMIT 1 OFFSET ?)", (self._events_kept - self.max_events,))
                self._events_kept = self.max_events
        if self._in_txn:
            self._db.execute("COMMIT")
            self._in_txn = False
            self.commits += 1
            self.checkpoints.committed(self._db.total_changes)

    async def durable(self) -> None:
        """Return once every member row written so far is kept: at once, since put, set_state and delete
        append to the journal before they return (a kill -9 after that finds the row). The engine awaits
        this before a claim, renew or release is answered and before a provider is asked to create."""

    async def commit_now(self) -> None:
        """Commit what was written to SQLite so far, the events waiting to be written too, before returning:
        at once, without yielding to the loop, unless a checkpoint holds writes; then once it is done (a few
        milliseconds). For a script or a tool that wants the history on disk now."""
        self._events_now = bool(self._pending)
        self.commit()
        while self._held is not None:
            if self._resumed is None:
                self._resumed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._resumed)

    def put(self, m: Member) -> None:
        """Write m's whole row: one line appended to the journal, on disk (the page cache) when this returns."""
        sb = m.sandbox
        self._keep((m.id, m.pool, m.state.value, m.revision, m.created_at, m.ready_at, m.claimed_at, m.expires_at,
                    sb.url if sb else "", _ref_json(sb.ref) if sb and sb.ref else "{}", m.claim_key, m.lease,
                    m.lease_expires_at, m.token_hash))

    def set_state(self, m: Member) -> None:
        """Write m's state and its claim's fields (the rest of its row as last written: no ref to encode
        again on a claim's path). A member whose row is gone (deleted as it started terminating) stays
        without one."""
        was = self._rows.get(m.id)
        if was is not None:
            self._keep((*was[:2], m.state.value, *was[3:5], m.ready_at, m.claimed_at, *was[7:10], m.claim_key,
                        m.lease, m.lease_expires_at, m.token_hash))

    def _keep(self, row: tuple[Any, ...]) -> None:
        assert self._journal is not None
        self._journal.put(row)
        self.journal_writes += 1
        self._rows[row[0]] = row
        if self._changed is not None:
            self._changed.add(row[0])
        self._fold_if_due()

    def delete(self, member_id: str) -> None:
        assert self._journal is not None
        self._journal.delete(member_id)
        self.journal_writes += 1
        self._rows.pop(member_id, None)
        if self._changed is not None:
            self._changed.add(member_id)
        self._fold_if_due()

    def _fold_if_due(self) -> None:
        assert self._journal is not None
        if self._journal.size < self._fold_at or self._fold_asked:
            return
        self._fold_asked = True
        try:  # on the next turn, not inside the claim or release that crossed the line
            asyncio.get_running_loop().call_soon(self._fold_due)
        except RuntimeError:
            self._fold_due()

    def members(self, pool: str) -> list[StoredMember]:
        rows = sorted((r for r in self._rows.values() if r[1] == pool), key=lambda r: r[4])
        return [StoredMember(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]), r[10], r[11],
                             r[12], r[13]) for r in rows]

    def add_event(self, e: Event) -> None:
        """Keep an event under the bus's number; the steps a member row tells already are not kept
        (store_api.NOT_KEPT). The event log is the pools' history, not their state: an event kept is written
        within EVENTS_WITHIN (or with the next commit once EVENTS_BATCH wait), in one transaction with
        whatever else is being committed then, not in the claim's own commit: the events table's pages
        then cost a commit every tenth of a second instead of every claim (about 50 us of server CPU a
        claim cycle, measured). A kill -9 loses at most that last tenth of a second of history; the member
        rows, which are the state, are committed before any answer as always."""
        self.last_seq = e.seq
        if e.seq >= self._seq_reserved - SEQ_BLOCK // 2 and self._seq_reserved:
            self._reserve(e.seq)  # half a block ahead: written long before the numbers are reached
        if e.kind in NOT_KEPT:
            return
        self._pending.append((e.seq, e.ts, e.pool, e.kind, e.member_id, e.state, e.detail))
        if len(self._pending) == 1:
            try:
                self._events_timer = asyncio.get_running_loop().call_later(EVENTS_WITHIN, self._events_due)
            except RuntimeError:  # no loop (a script, a test): written at once
                self._events_due()

    def _events_due(self) -> None:
        self._events_timer = None
        self._events_now = True
        try:
            self.commit()
        except sqlite3.Error:
            pass  # rolled back: the events are lost with the transaction, as a failed commit's writes are

    def _reserve(self, seq: int) -> None:
        self._seq_reserved = seq + SEQ_BLOCK
        self._write("INSERT OR REPLACE INTO last_event (id, seq) VALUES (0, ?)", (self._seq_reserved,))

    def next_seq(self) -> int:
        """The number the event bus goes on from: past every event kept, and past the last one seen when the
        store was closed (after a kill -9, events not kept since the last kept one may see their numbers
        again; no kept event ever does)."""
        kept = self._db.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0
        row = self._db.execute("SELECT seq FROM last_event WHERE id = 0").fetchone()
        first = max(kept, row[0] if row else 0)
        # Numbers past `first` are reserved in the file before any is given: after a kill -9 the next start
        # goes on past every number this one may have handed out (kept, waiting to be written, or live only),
        # so a follower's Last-Event-ID never names a number that comes again. A clean close writes the
        # exact last one, and the numbering goes on from there without a gap.
        self.last_seq = first
        self._reserve(first)
        self.commit()
        return first

    def events(self, pool: str | None = None, limit: int = 200) -> list[Event]:
        """The last `limit` events kept (of one pool, or all), oldest first: those written and those still
        waiting to be."""
        waiting = [Event(*r) for r in self._pending if pool is None or r[2] == pool][-limit:]
        limit -= len(waiting)
        q = "SELECT seq, ts, pool, kind, member_id, state, detail FROM events"
        args: tuple[Any, ...] = ()
        if pool:
            q += " WHERE pool=?"
            args = (pool,)
        rows = self._db.execute(q + " ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall() if limit > 0 else []
        return [Event(*r) for r in reversed(rows)] + waiting
