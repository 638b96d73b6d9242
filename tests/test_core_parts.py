"""The engine's parts on their own, with plain data: the hand-out structure, the eligibility rules, the
adoption plan, the store, the metrics and the event bus; and the small shared helpers."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from poolui import backoff, virtual_time
from poolui.addresses import split_host_port, url_of
from poolui.config import PoolConfig
from poolui.core.adoption import adopted_member, plan_adoption
from poolui.core.eligibility import EXITED, EXPIRING, STALE, UNHEALTHY, verdict
from poolui.core.events import EventBus
from poolui.core.handout import Handout
from poolui.core.member import Member
from poolui.core.metrics import Histogram, PoolMetrics
from poolui.core.model import MemberState
from poolui.core.store import Store, StoredMember
from poolui.errors import ConfigError
from poolui.paths import read_token
from poolui.providers.base import Sandbox
from poolui.providers.common import Ended, PortPicker, fill

CFG = PoolConfig(name="p", provider="instant", min_remaining_ttl=10.0)


def member(i: int, ready_at: float = 0.0, **kw: Any) -> Member:
    m = Member(id=f"m{i}", pool="p", revision=CFG.revision, ready_at=ready_at)
    for k, v in kw.items():
        setattr(m, k, v)
    return m


# ---------------------------------------------------------------- the hand-out structure


def test_handout_gives_the_oldest_ready_first_and_a_given_back_one_next() -> None:
    h = Handout()
    for i in range(3):
        h.add(member(i, ready_at=i))
    first = h.take()
    assert first is not None and first.id == "m0"
    h.give_back(first)
    assert [m.id for m in h.members()] == ["m0", "m1", "m2"]
    h.remove("m1")
    assert "m1" not in h and len(h) == 2
    assert [m.id for m in h.surplus(1)] == ["m2"]  # the newest idle one goes first
    assert h.surplus(0) == []


def test_handout_orders_adopted_members_by_when_they_became_ready() -> None:
    h = Handout()
    for i, t in enumerate((30.0, 10.0, 20.0)):
        h.add(member(i, ready_at=t))
    h.order_by_ready_time()
    assert [m.id for m in h.members()] == ["m1", "m2", "m0"]


async def test_handout_waiters_are_first_come_first_served_and_skip_the_gone() -> None:
    h = Handout()
    a, b, c = h.wait(None), h.wait("k"), h.wait(None)
    b.fut.cancel()  # gave up
    assert h.waiting() == 2
    assert h.next_waiter() is a and h.next_waiter() is c and h.next_waiter() is None
    d = h.wait(None)
    h.forget_waiter(d)
    assert h.next_waiter() is None
    e = h.wait(None)
    h.fail_waiters(RuntimeError("stopping"))
    assert isinstance(e.fut.exception(), RuntimeError) and h.waiting() == 0


def test_handout_claim_keys_hold_only_their_own_member() -> None:
    h = Handout()
    m, other = member(1, claim_key="k"), member(2, claim_key="k")
    h.hold("k", m)
    h.unhold(other)  # not the one the key holds: nothing happens
    assert h.held("k") is m
    h.unhold(m)
    assert h.held("k") is None and h.held(None) is None


# ---------------------------------------------------------------- eligibility


@pytest.mark.parametrize(("changes", "ttl_left", "alive", "kind"), [
    ({}, 60.0, True, None),
    ({"revision": "old"}, 60.0, True, STALE),
    ({}, 9.0, True, EXPIRING),
    ({"health_ok": False, "health_detail": "HTTP 500"}, 60.0, True, UNHEALTHY),
    ({}, 60.0, False, EXITED),
    ({}, 60.0, None, None),  # not asked: the deadline scan leaves the provider out
])
def test_eligibility(changes: dict[str, Any], ttl_left: float, alive: bool | None, kind: str | None) -> None:
    v = verdict(member(1, **changes), CFG, ttl_left, alive)
    assert (v.kind if v else None) == kind


# ---------------------------------------------------------------- the adoption plan


def row(i: int, state: str, expires_at: float = 1000.0, revision: str = CFG.revision) -> StoredMember:
    return StoredMember(f"m{i}", "p", state, revision, 0.0, 1.0, None, expires_at, "", {}, None)


def test_adoption_keeps_good_ready_and_claimed_kills_the_rest_and_notes_the_lost() -> None:
    rows = [row(1, "ready"), row(2, "claimed"), row(3, "ready", revision="old"), row(4, "ready", expires_at=105.0),
            row(5, "creating"), row(6, "ready"), row(7, "claimed", expires_at=99.0)]
    live = [Sandbox(f"m{i}", expires_at=0.0) for i in (1, 2, 3, 4, 5, 7)] + [Sandbox("stray")]
    plan = plan_adoption(rows, live, now=100.0, cfg=CFG)
    assert [k.row.id for k in plan.keep] == ["m1", "m2"]
    assert [sb.member_id for sb in plan.kill] == ["m3", "m4", "m5", "m7", "stray"]
    assert [r.id for r in plan.lost] == ["m6"]
    m = adopted_member(plan.keep[1], "p", now_wall=100.0, now_mono=5.0)
    assert (m.state, m.holders, m.adopted, m.expires_mono) == (MemberState.CLAIMED, 1, True, 905.0)


# ---------------------------------------------------------------- the store, metrics, events


def test_store_keeps_members_and_a_bounded_event_log(tmp_path: Path) -> None:
    store = Store(tmp_path, max_events=10)
    m = member(1)
    store.put(m)
    m.state = MemberState.CLAIMED
    m.claim_key = "job"
    store.set_state(m)
    bus = EventBus(sink=store.add_event)
    for i in range(600):
        bus.emit(float(i), "p", "tick", None, None, str(i))
    store.close()
    db = sqlite3.connect(tmp_path / "poolui.sqlite3")
    assert db.execute("SELECT state, claim_key FROM members").fetchall() == [("claimed", "job")]
    assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] <= 600 - 500 + 10  # pruned every 500
    details = [int(r[0]) for r in db.execute("SELECT detail FROM events ORDER BY seq")]
    assert details == list(range(600 - len(details), 600))  # the newest are the ones kept
    db.close()
    again = Store(tmp_path)
    assert [r.state for r in again.members("p")] == ["claimed"] and again.events("p", limit=1)[0].detail == "599"
    again.close()
    # Opened again, the store knows how many rows it holds: 500 more and it is back to the newest 10.
    store = Store(tmp_path, max_events=10)
    bus = EventBus(sink=store.add_event, seq=store.next_seq())
    for i in range(600, 1100):
        bus.emit(float(i), "p", "tick", None, None, str(i))
    store.close()
    db = sqlite3.connect(tmp_path / "poolui.sqlite3")
    assert [int(r[0]) for r in db.execute("SELECT detail FROM events ORDER BY seq")] == list(range(1090, 1100))
    db.close()


def test_metrics_percentiles_and_outcomes() -> None:
    h = Histogram(window=100)
    assert h.percentile(50) is None
    for i in range(1, 101):
        h.observe(i / 1000)
    assert (h.percentile(50), h.percentile(99)) == (0.051, 0.099)  # nearest rank over the window
    assert h.summary()["buckets"][-1] == ("+Inf", 100)
    m = PoolMetrics()
    m.claim("warm", 0.001)
    m.claim("cold", 0.2, "pool empty")
    m.claim("timed_out", None, "pool empty")
    d = m.to_dict()
    assert d["claims"] == {"warm": 1, "cold": 1, "failed": 0, "timed_out": 1} and d["hit_rate"] == pytest.approx(1 / 3)


async def test_event_subscribers_see_only_their_pool_and_a_slow_one_loses_the_oldest() -> None:
    bus = EventBus(recent=5)
    mine, everything = bus.subscribe(2, pool="p"), bus.subscribe(10)
    for i in range(4):
        bus.emit(float(i), "p" if i % 2 == 0 else "q", "tick")
    bus.emit(9.0, "p", "last")
    assert [e.kind for e in (await mine.__anext__(), await mine.__anext__())] == ["tick", "last"]
    assert mine.dropped == 1 and everything.queue.qsize() == 5 and everything.dropped == 0
    await mine.aclose()
    bus.emit(10.0, "p", "after")
    assert mine.queue.empty() and len(bus.recent) == 5


# ---------------------------------------------------------------- small shared helpers


def test_backoff_doubles_up_to_its_cap_and_never_overflows() -> None:
    b = backoff.Backoff(0.5, 15.0)
    assert [b.failed() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    b.reset()
    assert b.failed() == 0.5 and backoff.delay(0, 1, 9) == 0 and backoff.delay(10_000, 1, 9) == 9


@pytest.mark.parametrize(("text", "parsed", "url"), [
    ("127.0.0.1:8765", ("127.0.0.1", 8765), "http://127.0.0.1:8765"),
    ("[::1]:80", ("::1", 80), "http://[::1]:80"),
    ("0.0.0.0:9", ("0.0.0.0", 9), "http://127.0.0.1:9"),
])
def test_host_port(text: str, parsed: tuple[str, int], url: str) -> None:
    assert split_host_port(text) == parsed and url_of(*parsed) == url


@pytest.mark.parametrize("bad", ["8765", ":80", "host:", "host:99999", "h:-1"])
def test_host_port_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        split_host_port(bad)


def test_token_file_missing_or_empty_means_no_token(tmp_path: Path) -> None:
    assert read_token(tmp_path / "none") is None
    (tmp_path / "empty").write_text("\n")
    assert read_token(tmp_path / "empty") is None
    (tmp_path / "t").write_text(" abc \n")
    assert read_token(tmp_path / "t") == "abc"
    with pytest.raises(ConfigError, match="cannot read the token file"):
        read_token(tmp_path)  # a directory


def test_provider_helpers() -> None:
    assert fill(["x", "{port}", "{url}/a"], port=8, url="http://h") == ["x", "8", "http://h/a"]
    ended = Ended(keep=2)
    for k in "abc":
        ended.note(k, k.upper())
    assert "a" not in ended and ended.get("c") == "C" and len(ended) == 2
    picker = PortPicker()
    assert len({picker.pick() for _ in range(20)}) == 20  # a port handed out is not handed out again


def test_virtual_time_jumps_to_the_next_timer() -> None:
    async def main() -> tuple[float, list[int]]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        order: list[int] = []

        async def after(d: int) -> None:
            await asyncio.sleep(d)
            order.append(d)

        await asyncio.gather(*(after(d) for d in (3600, 60, 1)))
        return loop.time() - start, order

    assert virtual_time.run(main()) == (3600.0, [1, 60, 3600])
