"""The event log a store keeps (store_api.py): numbered by the bus (no AUTOINCREMENT), the claims and the
pool's own events kept and the steps a member row tells left out, numbering going on across a restart;
a cold claim's wait and a timed-out claim in the log, so a claim trace puts arrivals where they were."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from helpers import kept_rows, wait_for

from poolui import virtual_time
from poolui.clock import LoopClock
from poolui.core import store as store_module
from poolui.core.events import EventBus
from poolui.core.manager import PoolManager
from poolui.core.store import Store
from poolui.errors import ClaimTimeout
from poolui.pool_file import parse_config
from poolui.sim.trace_events import TraceRecorder


def config(target: int = 2, **extra: object) -> object:
    return parse_config({"pools": {"p": {"provider": "instant", "target_ready": target, "min_ready": 0,
                                         "max_ready": 8, "health": {"enabled": False}, **extra}}}, "t.toml")


def rows(path: Path) -> list[tuple[int, str]]:
    db = sqlite3.connect(path / "poolui.sqlite3")
    try:
        return db.execute("SELECT seq, kind FROM events ORDER BY seq").fetchall()
    finally:
        db.close()


async def test_a_claim_keeps_three_rows_numbered_by_the_bus_and_numbering_goes_on_after_a_restart(
        tmp_path: Path) -> None:
    async with PoolManager(config(), state_dir=tmp_path) as mgr:  # type: ignore[arg-type]
        await mgr.warm_up(5)
        kept_before = len(rows(tmp_path))
        c = await mgr.claim("p")
        await mgr.release("p", c.id)
        assert mgr.store is not None
        await mgr.store.commit_now()  # events are written within a tenth of a second; now here
        mine = [(s, k) for s, k in rows(tmp_path)[kept_before:]]
        assert [k for _, k in mine] == ["claimed", "released"]
        assert [s for s, _ in mine] == [e.seq for e in mgr.bus.recent if e.member_id == c.id and
                                        e.kind in ("claimed", "released")]
        last = mgr.bus.recent[-1].seq
    db = sqlite3.connect(tmp_path / "poolui.sqlite3")
    schema = db.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    assert "AUTOINCREMENT" not in schema.upper()
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone() is None
    db.close()
    async with PoolManager(config(), state_dir=tmp_path) as mgr:  # type: ignore[arg-type]
        history = await mgr.recent_events("p")
        assert [e.kind for e in history if e.member_id == c.id] == ["claimed", "released"]
        await mgr.warm_up(5)
        assert min(e.seq for e in mgr.bus.recent if e.seq not in {h.seq for h in history}) > last


def test_a_state_file_with_autoincrement_is_moved_over_with_its_events(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "poolui.sqlite3")
    db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, pool TEXT NOT NULL, "
               "kind TEXT NOT NULL, member_id TEXT, state TEXT, detail TEXT NOT NULL DEFAULT '')")
    db.execute("INSERT INTO events (ts, pool, kind, detail) VALUES (1.0, 'p', 'degraded', 'old')")
    db.commit()
    db.close()
    store = Store(tmp_path)
    try:
        assert [(e.seq, e.kind, e.detail) for e in store.events()] == [(1, "degraded", "old")]
        assert store.next_seq() == 1
    finally:
        store.close()
    assert "AUTOINCREMENT" not in sqlite3.connect(tmp_path / "poolui.sqlite3").execute(
        "SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0].upper()


def test_a_cold_claim_tells_its_wait_and_a_timed_out_one_is_logged_for_the_trace() -> None:
    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        cfg = config(target=1, instant={"create_delay": "2s"})
        async with PoolManager(cfg, clock=clock, store="memory") as mgr:  # type: ignore[arg-type]
            await mgr.warm_up(10)
            first = await mgr.claim("p")  # warm
            start = clock.time()
            cold = await mgr.claim("p", timeout=10)  # waits for the replacement's create: 2 s
            with pytest.raises(ClaimTimeout):
                await mgr.claim("p", timeout=0.5)
            await clock.sleep(1)
            for c in (first, cold):
                await mgr.release("p", c.id)
            rec = TraceRecorder("p")
            trace = [t for e in await mgr.recent_events("p") if (t := rec.feed(e)) is not None]
            claimed = [e for e in await mgr.recent_events("p") if e.kind == "claimed"]
            assert claimed[-1].detail.startswith("waited 2.0") and rec.timeouts == 1
            assert trace[1][0] == pytest.approx(start - claimed[0].ts, abs=1e-6)  # arrived when it asked
            assert trace[1][1] == pytest.approx(1.5, abs=1e-6)  # held from when it was served

    virtual_time.run(main())


async def test_a_released_sandbox_leaves_the_state_file_with_its_release(tmp_path: Path) -> None:
    """One write for its way out: the row goes with the release's commit (a restart kills what runs with no
    row), not a 'terminating' state first and a delete once the kill is done."""
    async with PoolManager(config(), state_dir=tmp_path) as mgr:  # type: ignore[arg-type]
        await mgr.warm_up(5)
        c = await mgr.claim("p")
        assert await mgr.release("p", c.id)
        db = sqlite3.connect(tmp_path / "poolui.sqlite3")
        try:
            assert db.execute("SELECT state FROM members WHERE id = ?", (c.id,)).fetchall() == []
        finally:
            db.close()


async def test_events_are_written_within_a_tenth_of_a_second_not_with_the_claims_commit(tmp_path: Path) -> None:
    """The claim's commit holds its member row; its events follow within EVENTS_WITHIN (one transaction for
    all that came meanwhile), and a read of the history sees them before and after."""
    async with PoolManager(config(), state_dir=tmp_path) as mgr:  # type: ignore[arg-type]
        await mgr.warm_up(5)
        assert mgr.store is not None
        await mgr.store.commit_now()
        before = len(rows(tmp_path))
        c = await mgr.claim("p")
        # the claim is in the state files when it is answered; its 'claimed' event is not yet
        assert kept_rows(tmp_path)[c.id][2] == "claimed"
        assert len(rows(tmp_path)) == before
        assert [e.kind for e in await mgr.recent_events("p") if e.member_id == c.id][-1] == "claimed"
        assert [e.kind for e in mgr.store.events("p") if e.member_id == c.id] == ["claimed"]  # waiting, read
        await wait_for(lambda: len(rows(tmp_path)) > before, 5, what="the claim's event written")
        assert [k for _, k in rows(tmp_path)[before:]] == ["claimed"]
        assert [e.kind for e in mgr.store.events("p") if e.member_id == c.id] == ["claimed"]  # once, not twice


def test_after_a_kill_9_numbering_goes_on_past_every_number_given(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Numbers are reserved in the file a block ahead: a store that never closed (its process killed) is
    followed by one that numbers past whatever the first handed out, written or not; a clean close goes on
    from its exact last number."""
    monkeypatch.setattr(store_module, "SEQ_BLOCK", 100)
    first = Store(tmp_path)
    bus = EventBus(sink=first.add_event, seq=first.next_seq())
    given = [bus.emit(1.0, "p", kind, None, None, "").seq for kind in ["claimed", "ready"] * 120]  # the last not kept
    first._db.close()  # what a kill -9 leaves: no close, whatever was not committed is gone
    first.checkpoints.close()
    second = Store(tmp_path)
    try:
        start = second.next_seq()
        assert start >= max(given), (start, max(given))  # the bus goes on from start + 1
        assert all(e.seq <= max(given) for e in second.events(limit=1000))
    finally:
        second.close()
    third = Store(tmp_path)
    try:
        assert third.next_seq() == start  # closed cleanly: no gap
    finally:
        third.close()
