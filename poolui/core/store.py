"""SQLite state, the one durable StateStore (store_api.py): one row per member (written before the provider
is asked) and a bounded event log.

Group commit: every member-row write of one event-loop turn goes into one transaction, committed on the
next turn; `durable()` waits for it. A claim, renew and release is answered, and a provider asked to
create, only once the rows that describe them are committed: with 8 claims in flight, the claims, releases
and refill rows of a turn share one commit instead of one each (a claimer cancelled while it waits gives
its sandbox back: core/claims.py). The events kept (the history) follow within a tenth of a second, in
whichever commit comes then (add_event says why).

WAL with synchronous=NORMAL: a committed transaction survives the controller being killed (-9), since
it is in the OS's page cache before COMMIT returns; only a power loss or a kernel crash can take the last
commits (WAL is synced at checkpoints), and then the providers' own hard TTLs bound what could be left
running.

The state files stay bounded under any rate of claims: checkpoint.py completes a checkpoint every few MiB
of WAL, holding this store's writes (queued in memory, not blocking the loop) for the millisecond or so
its last phase takes, so the WAL file stays under 8 MiB plus a few hundred KiB. A claim, renew or release
answers only after its commit, so it waits out such a hold. The database itself holds the
live members and the last max_events events (about 2 MiB at 10,000).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from .checkpoint import Checkpointer
from .member import Member
from .model import Event
from .store_api import NOT_KEPT, StoredMember
from .store_schema import COLUMNS, open_db

_json = msgspec.json.Encoder()


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
        self._events_since_prune = 0
        self._events_kept = self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        self._pending: list[tuple[Any, ...]] = []  # events kept, not yet written
        self._events_now = False  # write them with the next commit
        self._events_timer: asyncio.TimerHandle | None = None
        self._seq_reserved = 0  # event numbers up to this one are reserved in the file (next_seq)
        self._in_txn = False
        self._committed: asyncio.Future[None] | None = None  # resolved by the commit of the open transaction
        # Who asked for a commit in this loop turn and the one before (durable): tasks, not calls, so a
        # task that claims and then releases at once is one, as it is alone.
        self._turn: asyncio.Handle | None = None  # runs at the start of the next turn
        self._turn_task: asyncio.Task[Any] | None = None
        self._turn_tasks = 0
        self._last_turn_tasks = 0
        self._closed = False
        self._held: list[tuple[str, tuple[Any, ...]]] | None = None  # writes queued while a checkpoint ends
        self._replay: list[tuple[str, tuple[Any, ...]]] = []  # what was held, for the next commit to write
        self.commits = 0
        self.last_seq = 0  # the bus's number of the last event seen, kept or not (written at close)
        self.checkpoints = Checkpointer(self.path, self._hold, self._resume)

    def stats(self) -> dict[str, float]:
        """How hard the state file works, for /metrics: transactions committed, checkpoints completed, the
        WAL file's largest size in bytes, and the seconds writes waited for checkpoints to finish."""
        cp = self.checkpoints
        return {"commits": self.commits, "checkpoints": cp.done, "wal_peak_bytes": cp.wal_peak,
                "checkpoint_hold_seconds": cp.hold_seconds.total}

    def close(self) -> None:
        if self._events_timer is not None:
            self._events_timer.cancel()
        self._events_now = True
        if self.last_seq and self._held is None:
            self._write("INSERT OR REPLACE INTO last_event (id, seq) VALUES (0, ?)", (self.last_seq,))
        self.commit()
        self.checkpoints.close()
        if self._held is not None:  # closed in the middle of a checkpoint: what it held still goes in
            self._resume()
        self._closed = True
        self._db.close()  # the last connection to close checkpoints the WAL into the database

    def _hold(self) -> None:
        """A checkpoint is about to finish: commit this turn's writes, then queue the next ones."""
        try:
            self.commit()
        except sqlite3.Error:
            pass  # whoever waited on that commit got the error; the hold goes on
        self._held = []

    def _resume(self) -> None:
        """The checkpoint is done: write what was held, in order, and commit it with the pending events."""
        self._replay, self._held = self._held or [], None
        try:
            self.commit()
        except sqlite3.Error:
            pass  # commit() has rolled back and handed the error to whoever waits on it

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
        """Commit what this turn wrote (the member rows and the events), and wake whoever waits on it.

        On a SQLite error (a full disk) the turn's writes are rolled back, waiters get the error, and the
        error is raised: the store is left with no transaction open, ready for the next write."""
        if self._closed or self._held is not None:
            return  # held: _resume() commits, and wakes whoever waits, once the checkpoint is done
        done, self._committed = self._committed, None
        try:
            self._commit_turn()
        except sqlite3.Error as e:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._in_txn = False
            if done is not None and not done.done():
                done.set_exception(e)
            raise
        if done is not None and not done.done():
            done.set_result(None)

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
        """Return once everything written so far is committed (at once when nothing is waiting).

        A task alone in asking, in this turn and the one before, commits at once without yielding (a lone
        in-process claim answers in one step); when several tasks ask in a turn, as under concurrent HTTP
        claims, they share the commit queued at the turn's first write."""
        if not self._in_txn and self._held is None:
            return  # events waiting to be written are history, not state: nobody's answer waits for them
        if self._turn is None:
            self._turn = asyncio.get_running_loop().call_soon(self._turn_ended)
        task = asyncio.current_task()
        if task is not self._turn_task:
            self._turn_task = task
            self._turn_tasks += 1
        if self._turn_tasks == 1 and self._last_turn_tasks <= 1 and self._held is None:
            self.commit()  # its error is the caller's, as the shared commit's would be
            return
        if self._committed is None:
            self._committed = asyncio.get_running_loop().create_future()
        committed = self._committed
        # The turn's commit was queued (call_soon) at its first write, so it runs before this task's next
        # step: one yield usually finds it done, a loop turn sooner than waking on the future would.
        await asyncio.sleep(0)
        if committed.done():
            committed.result()  # the commit's error, if it failed
            return
        await asyncio.shield(committed)

    def _turn_ended(self) -> None:
        self._last_turn_tasks, self._turn_tasks, self._turn_task, self._turn = self._turn_tasks, 0, None, None

    async def commit_now(self) -> None:
        """Commit what was written so far before returning: at once, without yielding to the loop, unless a
        checkpoint holds writes; then once it is done (a few milliseconds). For a script or a tool that
        wants its writes kept now, the events waiting to be written too; the engine's answers wait for their
        turn's commit (`durable`)."""
        self._events_now = bool(self._pending)
        self.commit()
        if self._held is not None:
            await self.durable()

    def put(self, m: Member) -> None:
        sb = m.sandbox
        self._write(
            f"INSERT OR REPLACE INTO members ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (m.id, m.pool, m.state.value, m.revision, m.created_at, m.ready_at, m.claimed_at, m.expires_at,
             sb.url if sb else "", _ref_json(sb.ref) if sb and sb.ref else "{}", m.claim_key, m.lease,
             m.lease_expires_at, m.token_hash),
        )

    def set_state(self, m: Member) -> None:
        self._write(
            "UPDATE members SET state=?, ready_at=?, claimed_at=?, claim_key=?, lease=?, lease_expires_at=?, "
            "token_hash=? WHERE id=?",
            (m.state.value, m.ready_at, m.claimed_at, m.claim_key, m.lease, m.lease_expires_at, m.token_hash, m.id),
        )

    def delete(self, member_id: str) -> None:
        self._write("DELETE FROM members WHERE id=?", (member_id,))

    def members(self, pool: str) -> list[StoredMember]:
        rows = self._db.execute(
            f"SELECT {COLUMNS} FROM members WHERE pool=? ORDER BY created_at", (pool,)).fetchall()
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
