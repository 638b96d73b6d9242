"""WAL checkpoints on a thread of their own, so the event loop never stalls on one.

SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold: a few milliseconds, every
thousand pages or so, on whichever call made that commit (in the engine, a claim). With the automatic one
off, this thread copies the WAL back into the database on its own connection (PASSIVE: writers are never
blocked, it does what it can) whenever the store has committed enough since the last one.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

EVERY = 200  # commits between checkpoints: a WAL of a few MB at most


class Checkpointer:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stop = False
        self._since = 0
        self.done = 0
        self._thread = threading.Thread(target=self._run, name="poolui-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """Called after each commit (on the loop's thread): every EVERY commits, wake the thread."""
        self._since += 1
        if self._since >= EVERY:
            self._since = 0
            self._wake.set()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=5000")
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stop:
                    return
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    self.done += 1
                except sqlite3.Error:
                    pass  # busy or closing: the next one copies what this one could not
        finally:
            db.close()

    def close(self) -> None:
        """Stop the thread; the store's own connection checkpoints the rest when it closes."""
        self._stop = True
        self._wake.set()
        self._thread.join(10)
