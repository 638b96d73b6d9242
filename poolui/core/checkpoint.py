"""WAL checkpoints on a thread of their own that complete under any rate of writes, so the state files
stay bounded and the event loop never stalls on one.

Why not simpler: SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, and a
complete checkpoint syncs the WAL and the database (and TRUNCATE then shortens the WAL file): measured on
this project's disk, 4 ms for a 1 MiB WAL and 15 ms for 4 MiB, far past the loop's millisecond. A PASSIVE
checkpoint on another connection never blocks the writer, but the WAL only starts over when a checkpoint
has copied every frame before the next write begins, and under sustained claims the writer always appends
first: the WAL grew to 1.2 GB in 15,000 claims.

So every EVERY commits, or sooner once the WAL passes START_AT, on this module's thread, in two phases:
1. PASSIVE checkpoints copy what the WAL holds (the bulk, and its syncs) while the store keeps writing.
2. Then the store holds its SQLite writes (they queue in memory; the loop runs on; member rows, in the
   journal, are not held) and a RESTART checkpoint copies the frames written meanwhile; the next write
   starts the WAL over from its beginning. The store then writes what it held, in one transaction.
The WAL file is reused, not shortened: shortening it costs 3-4 ms more (measured, an ftruncate on ext4), and
SQLite's journal_size_limit would do that in a commit on the loop's thread. Should the file still grow past
HOLD_AT (transactions bigger than usual, a slow disk), the store holds at once and that checkpoint
TRUNCATEs. So the WAL file stays under HOLD_AT plus what was written since its size was last looked at (at
most LOOK_EVERY commits or LOOK_ROWS rows, and the transaction that crossed it: a few hundred KiB). A
checkpoint that cannot complete (a reader in another process holding an old snapshot for longer than
HOLD_WAIT) gives up the hold; the next is tried after twice as many commits, or START_AT more bytes, so a
stuck reader costs disk (it would with any checkpoint), not a hold per commit. Nothing but this process
opens the state file in normal use. Without a loop (a script), or on virtual time (where waiting for a
thread lets time jump), the checkpoint runs in the commit that makes it due, blocking for real time only.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from ..virtual_time import VirtualTimeLoop
from .metrics import Histogram

EVERY = 200  # commits between checkpoints
START_AT = 2 << 20  # WAL bytes past which one starts sooner (few commits carrying much: the history, folds)
HOLD_AT = 8 << 20  # WAL file bytes past which the store's writes wait for a checkpoint at once
COPY_ROUNDS, SETTLED = 4, 64  # phase 1 ends after 4 rounds, or once a round found under 64 new frames
LOOK_EVERY, LOOK_ROWS = 16, 256  # commits, and rows changed, between two looks at the WAL file's size
HOLD_WAIT = 0.2  # seconds the finishing checkpoint waits for readers of another process before giving up


class Checkpointer:
    """The checkpoint thread and its policy. `hold` and `resume` are the store's: stop writing to the
    database (queue instead), and write what was queued; both are called on the loop's thread."""

    def __init__(self, path: Path, hold: Callable[[], None], resume: Callable[[], None]) -> None:
        self._path = path
        self._wal = f"{path}-wal"
        self._hold, self._resume = hold, resume
        self._jobs: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._since = 0  # commits since the last checkpoint began
        self._rows_seen = 0  # the store's total_changes when the WAL's size was last looked at
        self._running = False  # a checkpoint is under way (either phase)
        self._holding = False
        self._held_since = 0.0
        self._limit = HOLD_AT
        self._every = EVERY  # doubled after each checkpoint a reader elsewhere kept from completing
        self._start_at = START_AT  # moved past the WAL's size after such a checkpoint, as _limit is
        self._closed = False
        self.done = 0  # checkpoints that completed (every frame copied, the WAL to start over)
        self.wal_peak = 0  # the largest WAL file seen after a commit, in bytes
        self.hold_seconds = Histogram()  # how long the store's writes waited for phase 2
        self._thread = threading.Thread(target=self._run, name="poolui-checkpoint", daemon=True)
        self._thread.start()

    def committed(self, changes: int) -> None:
        """Called after each commit with the connection's total_changes, on the loop's thread: a count, and
        when a checkpoint may be due, a look at the WAL file's size and the start of a checkpoint, or of a
        hold. The size is looked at every LOOK_EVERY commits or LOOK_ROWS rows changed, not after each
        commit: a stat of the WAL file just written took 12 us (p50, in-process claims bench; 1.8 us a
        commit with the looks spaced out, claim p50 15 us less), and between two looks the WAL grows by at
        most a few hundred KiB."""
        self._since += 1
        if self._since < self._every and self._since % LOOK_EVERY and changes - self._rows_seen < LOOK_ROWS:
            return
        self._rows_seen = changes
        size = self.wal_size()
        self.wal_peak = max(self.wal_peak, size)
        if self._running:
            if size > self._limit and not self._holding:
                self._begin_hold()  # phase 1 trails a writer this fast: no more frames until it is done
            return
        if self._since < self._every and size < self._start_at:  # (START_AT is below HOLD_AT, also when moved)
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        if self._loop is None or isinstance(self._loop, VirtualTimeLoop):
            # No loop (a script): nothing to stall. Virtual time: a wait for this thread would let time
            # jump (leases end, timeouts fire) while nothing happened; a blocking checkpoint takes none.
            self._since = 0
            self._checkpoint_here()
            return
        self._since, self._running = 0, True
        if size > self._limit:
            self._begin_hold()
        self._jobs.put("copy")

    def _checkpoint_here(self) -> None:
        """Called after a commit: its errors are not the commit's (which is done), so none is raised; a
        checkpoint that could not run is tried again EVERY commits later."""
        try:
            db = self._connect()
            try:
                if db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0:
                    self.done += 1
            finally:
                db.close()
        except sqlite3.Error:
            pass

    def _begin_hold(self) -> None:
        self._holding = True
        self._held_since = time.perf_counter()  # a measurement of real I/O, not an engine deadline
        self._hold()

    def _copied(self) -> None:
        """Phase 1 is done (on the loop's thread): hold the store's writes and finish."""
        if self._closed:
            return
        if not self._holding:
            self._begin_hold()
        self._jobs.put("TRUNCATE" if self.wal_size() > self._limit else "RESTART")

    def _finished(self, complete: bool) -> None:
        """Phase 2 is done (on the loop's thread): the store writes what it held."""
        if self._closed:
            return
        self.hold_seconds.observe(time.perf_counter() - self._held_since)
        self._running, self._holding = False, False
        if complete:
            self.done += 1
            self._limit, self._every, self._start_at = HOLD_AT, EVERY, START_AT
        else:  # a reader elsewhere keeps the WAL: try less often, not a hold per commit meanwhile
            size = self.wal_size()
            self._limit, self._every = size + HOLD_AT, min(self._every * 2, 64 * EVERY)
            self._start_at = size + START_AT
        self._resume()

    def wal_size(self) -> int:
        """The WAL file's size in bytes now (0 when there is none)."""
        try:
            return os.stat(self._wal).st_size
        except FileNotFoundError:
            return 0

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout={int(HOLD_WAIT * 1000)}")
        return db

    def _run(self) -> None:
        db = self._connect()
        try:
            while (job := self._jobs.get()) != "stop":
                complete = False
                try:
                    if job == "copy":
                        self._copy(db)
                    else:
                        complete = self._finish(db, job)
                except sqlite3.Error:
                    pass  # busy or closing: the next checkpoint copies what this one could not
                done = self._copied if job == "copy" else partial(self._finished, complete)
                loop = self._loop
                try:
                    if loop is not None:
                        loop.call_soon_threadsafe(done)
                except RuntimeError:
                    pass  # the loop has closed: the store's close writes what it held
        finally:
            db.close()

    @staticmethod
    def _copy(db: sqlite3.Connection) -> None:
        """Phase 1: PASSIVE rounds until one finds few frames written during the one before, so phase 2
        (while writes wait) has little left to sync and copy: measured, holds of 1.6 ms instead of 3."""
        last = 0
        for _ in range(COPY_ROUNDS):
            frames = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
            if frames - last < SETTLED:
                return
            last = frames

    def _finish(self, db: sqlite3.Connection, mode: str) -> bool:
        """Phase 2, while the store holds its writes: copy the rest, then start the WAL over with a write of
        this thread's own (a row counting checkpoints), since the first write after a restart syncs the
        WAL's new header: measured, 1 to 9 ms that would otherwise fall in a commit on the loop's thread."""
        if db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()[0] != 0:
            return False
        db.execute("INSERT INTO checkpoints (id, done) VALUES (0, 1) ON CONFLICT (id) DO UPDATE SET done = done + 1")
        return True

    def close(self) -> None:
        """Stop the thread (after the checkpoint it is running, if any); the store then writes what it
        held, and its own connection checkpoints the rest when it closes."""
        self._closed = True
        self._jobs.put("stop")
        self._thread.join(10)
