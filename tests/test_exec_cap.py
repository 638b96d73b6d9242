"""Execs bounded per sandbox, on a real bubblewrap sandbox under a real `poolui serve`: a flood of 100
concurrent execs on one sandbox gets its pool's max_execs running and a 429 naming the cap for the rest,
refused by the controller before the sandbox is asked; the sandbox answers an exec afterwards."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import httpx
import pytest
from helpers import wait_for
from server_fixtures import Served, pool_table, served

from poolui.errors import ConfigError, TooManyExecs
from poolui.pool_file import parse_config
from poolui.sandbox_io import ExecResult, collect

POOL = "web"
FLOOD = 100
CAP = 16  # the default max_execs
WAIT_FOR_GO = ["sh", "-c", "while [ ! -e go ]; do sleep 0.02; done; echo done"]
pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed")


@pytest.fixture(scope="module")
def web() -> Iterator[Served]:
    with served({POOL: pool_table(target_ready=1)}, on_shutdown="terminate") as s:
        yield s


async def test_an_exec_flood_gets_429_past_the_cap_and_the_sandbox_lives_on(web: Served) -> None:
    async with web.client(timeout=60) as c:
        cl = await c.claim(POOL, timeout=30)
        refused: list[TooManyExecs] = []

        async def one() -> ExecResult | None:
            try:
                return await collect(c.exec(POOL, cl.id, WAIT_FOR_GO, timeout=60))
            except TooManyExecs as e:
                refused.append(e)
                return None

        flood = [asyncio.ensure_future(one()) for _ in range(FLOOD)]
        try:
            # None of the first CAP can end before `go` exists, so every other one must be refused.
            await wait_for(lambda: len(refused) == FLOOD - CAP, 60, interval=0.02,
                           what="the execs past the cap refused")
            async with httpx.AsyncClient(headers={"authorization": f"Bearer {cl.token}"}, timeout=30) as h:
                r = await h.post(f"{web.url}/pools/{POOL}/sandboxes/{cl.id}/exec", json={"argv": ["true"]})
            assert (r.status_code, r.json()["error"]) == (429, "too_many_execs"), r.text
            assert f"max_execs = {CAP}" in r.json()["detail"]
            await c.put_file(POOL, cl.id, "go", b"")
            ran = [r for r in await asyncio.gather(*flood) if r is not None]
        finally:
            for task in flood:
                task.cancel()
        assert len(ran) == CAP and all(r.ok and r.stdout == b"done\n" for r in ran)
        assert all(f"max_execs = {CAP}" in str(e) for e in refused)
        after = await collect(c.exec(POOL, cl.id, ["echo", "still here"]))
        assert after.ok and after.stdout == b"still here\n"
        snap = await c.snapshot(POOL)
        assert snap.config["max_execs"] == CAP
        await c.release(POOL, cl.id)


def test_max_execs_is_checked_in_the_pool_file() -> None:
    table = {"provider": "instant"}
    assert parse_config({"pools": {"p": table}}, "f.toml").pools["p"].max_execs == CAP
    assert parse_config({"pools": {"p": {**table, "max_execs": 1}}}, "f.toml").pools["p"].max_execs == 1
    for bad in (0, 1025, True, "16"):
        with pytest.raises(ConfigError, match=r"pool 'p': key 'max_execs' = .* expected a whole number from 1 to 1024"):
            parse_config({"pools": {"p": {**table, "max_execs": bad}}}, "f.toml")
