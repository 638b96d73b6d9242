"""The console's state without Textual: snapshots, marks, events and pool switching as plain data."""

from __future__ import annotations

from test_tui_snapshots import T0, snapshot, web_members

from poolui.clock import FrozenClock
from poolui.core.model import Event
from poolui.tui.state import ConsoleState


def state_with_web() -> ConsoleState:
    s = ConsoleState(pool_names=["web", "gpu"], pool="web")
    s.take(snapshot("web", FrozenClock(wall=T0), web_members()), skew=0.0, at=1.0)
    return s


def test_a_snapshot_fills_the_tabs_and_says_when_keys_change() -> None:
    s = ConsoleState(pool_names=["web"], pool="web")
    assert s.empty_text("ready") == "waiting for the first snapshot…"
    clock = FrozenClock(wall=T0)
    assert s.take(snapshot("web", clock, web_members()), 0.0, 1.0) is True  # the first: keys change
    assert s.take(snapshot("web", clock, web_members()), 0.0, 2.0) is False  # same state: no change
    assert s.take(snapshot("web", clock, web_members(), state="paused"), 0.0, 3.0) is True
    assert s.busy() and s.received_at == 3.0
    assert {len(s.groups["ready"]), len(s.groups["in-use"])} == {len(s.rows("ready")), len(s.rows("in-use"))}


def test_marks_of_vanished_sandboxes_go_and_targets_prefer_marks() -> None:
    s = state_with_web()
    ready = [m.id for m in s.groups["ready"]]
    assert s.targets(ready[0]) == [ready[0]]  # nothing marked: the cursor's
    s.toggle_mark(ready[1])
    s.toggle_mark("pu-gone")
    assert s.targets(ready[0]) == [ready[1]]  # marked ones that still exist, not the cursor's
    s.take(snapshot("web", FrozenClock(wall=T0), [m for m in web_members() if m.id != ready[1]]), 0.0, 2.0)
    assert s.marks == set() and s.targets(None) == []


def test_a_backlog_repeating_the_stream_is_kept_once() -> None:
    s = state_with_web()
    e1 = Event(1, T0, "web", "created", "pu-1", "creating", "")
    e2 = Event(2, T0 + 1, "gpu", "created", "pu-2", "creating", "")
    assert s.add_events([e1, e2], replace=False) == [e1]  # only the pool on screen goes to the log
    restarted = Event(1, T0 + 5, "web", "created", "pu-3", "creating", "")  # a new server numbers from 1
    assert s.add_events([e1, restarted], replace=True) == [restarted]
    assert [e.member_id for e in s.events_by_pool["web"]] == ["pu-1", "pu-3"]
    assert s.member_events("pu-3") == [restarted]


def test_switching_pools_wraps_and_forgets_rows_and_marks() -> None:
    s = state_with_web()
    s.toggle_mark(s.groups["ready"][0].id)
    assert s.step_pool(1) == "gpu" and s.step_pool(-1) == "gpu"
    assert s.switch("gpu") is None  # never fetched: nothing cached
    assert s.marks == set() and s.by_id == {} and s.current is None
    assert s.switch("web") is not None and s.step_pool(1) == "gpu"


def test_sort_cycles_and_the_status_line_says_so() -> None:
    s = state_with_web()
    first = s.sort_key
    seen = [first]
    while (nxt := s.next_sort()) != first:
        s.sort_key = nxt
        seen.append(nxt)
    assert len(seen) == len(set(seen)) >= 5
    s.filter_text = "c0ffee"
    s.toggle_mark("x")
    assert "filter: [b]c0ffee[/]" in s.status_line() and "marked: [b]1[/]" in s.status_line()
