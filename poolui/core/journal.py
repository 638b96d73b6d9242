"""The member rows' journal: each write of a member row is one line appended to a file, and the rows are
folded into the SQLite state file now and then (store.py).

Why not a SQLite transaction per claim: a claim, renew and release must be on disk (in the OS's page cache,
which a kill -9 of the controller does not lose) before their answer leaves. A committed SQLite transaction
was measured at 40-60 us of the loop's time a claim in the engine, and with the turn's group commit and
its waits about 150 us of the server's CPU per claim+release cycle over HTTP (613 against 457 us a cycle
with the rows appended here instead, same sitting); one `write` of a line of JSON takes about 4 us. The
guarantee is the one SQLite's WAL with synchronous=NORMAL gave: what was written survives the controller
being killed; a power loss or a kernel crash can take the last writes (those since the last fold, whose
commit is synced), and the providers' own hard TTLs bound what could then be left running.

The file `members.N.journal` holds the rows written since the state file's members table was last brought
up to the rows in memory (the fold), which also recorded N as the journal to replay. A line is
["p", row] (the member's whole row, store_schema.COLUMNS) or ["d", id]. Replay reads the lines in order
and skips one that does not parse or does not have a row's shape: a write that fails is cut off the file
(its caller was told), so only a kill in the middle of a write leaves one, the last. A journal newer than
the one the table names (a fold a power loss took back) is removed at start, and a new one starts empty.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from .store_schema import COLUMNS

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

FOLD_AT = 4 << 20  # journal bytes past which the rows are folded into the state file
WIDTH = len(COLUMNS.split(","))  # values in a row


def path_of(state_dir: Path, generation: int) -> Path:
    return state_dir / f"members.{generation}.journal"


def replay(state_dir: Path, generation: int, rows: dict[str, tuple[Any, ...]]) -> int:
    """Apply journal `generation`'s lines to `rows` (id -> row), in order; the lines applied."""
    try:
        data = path_of(state_dir, generation).read_bytes()
    except FileNotFoundError:
        return 0
    applied = 0
    for line in data.split(b"\n"):
        try:
            op, arg = _decode(line)
        except (msgspec.DecodeError, ValueError, TypeError):
            continue  # empty, or a write cut short: its caller was told it failed, or was killed in it
        if op == "p" and isinstance(arg, list) and len(arg) == WIDTH and all(isinstance(a, str) for a in arg[:4]):
            rows[arg[0]] = tuple(arg)
            applied += 1
        elif op == "d" and isinstance(arg, str):
            rows.pop(arg, None)
            applied += 1
    return applied


def rows_kept(db: sqlite3.Connection, state_dir: Path) -> tuple[dict[str, tuple[Any, ...]], int]:
    """The member rows a start finds, by id (store_schema.COLUMNS), and the journal they came from: the
    table as last folded, then the journal it names replayed."""
    rows = {r[0]: r for r in db.execute(f"SELECT {COLUMNS} FROM members")}
    found = db.execute("SELECT generation FROM journal WHERE id = 0").fetchone()
    generation = found[0] if found else 0
    replay(state_dir, generation, rows)
    return rows, generation


def _numbered(state_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for p in state_dir.glob("members.*.journal"):
        try:
            found.append((int(p.name.split(".")[1]), p))
        except ValueError:
            continue
    return found


def forget_after(state_dir: Path, generation: int) -> None:
    """Remove the journals newer than `generation`: a run whose fold naming them a power loss took back."""
    for n, p in _numbered(state_dir):
        if n > generation:
            p.unlink(missing_ok=True)


def forget_before(state_dir: Path, generation: int) -> None:
    """Remove the journals older than `generation` - 1 (the one before is kept: see the module's text)."""
    for n, p in _numbered(state_dir):
        if n < generation - 1:
            p.unlink(missing_ok=True)


class Journal:
    """One open journal file: lines are appended, each with one `write` (on the caller's thread, at once)."""

    def __init__(self, state_dir: Path, generation: int) -> None:
        self.generation = generation
        self.path = path_of(state_dir, generation)
        # Empty: a new generation's file starts with nothing (one left over from a lost run has no place).
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.size = 0
        self._torn = False  # a line cut short and not cut off the file ends before the next one

    def put(self, row: tuple[Any, ...]) -> None:
        self._append(_encode(("p", row)))

    def delete(self, member_id: str) -> None:
        self._append(_encode(("d", member_id)))

    def _append(self, line: bytes) -> None:
        data = (b"\n" + line + b"\n") if self._torn else line + b"\n"
        try:
            written = os.write(self._fd, data)
        except OSError:
            self._cut()
            raise
        if written != len(data):
            self._cut()
            raise OSError(f"journal {self.path}: wrote {written} of {len(data)} bytes (disk full?)")
        self.size += written
        self._torn = False

    def _cut(self) -> None:
        """A write failed or fell short: what of it landed goes, so no later line can complete it into a row
        its caller was told was not written; if even that fails, the next line starts on a line of its own."""
        try:
            os.ftruncate(self._fd, self.size)
        except OSError:
            self._torn = True

    def close(self) -> None:
        os.close(self._fd)
