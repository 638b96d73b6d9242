"""The Docker event watcher's reading of deaths, whatever order the engine sends "oom" and "die" in.

The engine does not promise that its "oom" comes before the "die" of the container the OOM killer ended;
under load it comes after (tests/test_docker_pool.py sees the real engine's order, whichever it is). These
feed the two orders, and a plain SIGKILL, to the watcher's own reading on a real event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import wait_for

from poolui.providers.common import MEMBER
from poolui.providers.docker import events
from poolui.providers.docker.events import EventWatcher


def event(action: str, cid: str, code: int | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {MEMBER: f"m-{cid}"}
    if code is not None:
        attrs["exitCode"] = str(code)
    return {"id": cid, "Action": action, "Actor": {"Attributes": attrs}}


async def test_an_oom_after_its_die_still_marks_the_death_and_a_plain_kill_is_told_after_the_grace(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "OOM_GRACE", 60.0)  # longer than the test: the grace's end is fired below
    deaths: dict[str, str] = {}
    w = EventWatcher("p", lambda: None, {}, dict, lambda cid, member, how: deaths.__setitem__(cid, how))
    w._loop = asyncio.get_running_loop()
    w._event(event("oom", "before"))  # the usual order
    w._event(event("die", "before", 137))
    w._event(event("die", "after", 137))  # the order under load: held for its "oom"
    w._event(event("die", "normal", 0))  # not a SIGKILL: told at once
    w._event(event("die", "killed", 137))  # a SIGKILL with no "oom": told once the grace is over
    await wait_for(lambda: {"before", "normal"} <= set(deaths), 5, what="the deaths told at once")
    assert "after" not in deaths and "killed" not in deaths
    w._event(event("oom", "after"))
    w._settle("killed")  # what the timer set at its "die" does once the grace is over
    w._settle("after")  # told already, with its "oom": nothing more
    await wait_for(lambda: {"after", "killed"} <= set(deaths), 5, what="the held deaths told")
    assert deaths == {"before": "exited with code 137 (OOM-killed)", "after": "exited with code 137 (OOM-killed)",
                      "normal": "exited with code 0", "killed": "exited with code 137"}
    assert not w._held and not w._oom
