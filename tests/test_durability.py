"""A claim is durable before its answer leaves: kill -9 the server right after a 200, and the state file
still says the sandbox is claimed (so a restart can never hand it out again)."""

from __future__ import annotations

import signal

import httpx
from helpers import wait_for
from server_fixtures import Served, pool_table, served

from poolui.core.store import Store


async def _ready(s: Served, n: int) -> bool:
    async with s.client() as c:
        return (await c.snapshot("p", members=False)).counts["ready"] >= n


async def test_a_claim_answered_is_claimed_in_the_state_file_after_kill_9() -> None:
    with served({"p": pool_table("instant", target_ready=4, max_ready=8)}) as s:
        for _ in range(3):
            await wait_for(lambda: _ready(s, 4), 20, what="the pool warm")
            async with httpx.AsyncClient(base_url=s.url, headers={"authorization": f"Bearer {s.token}"}) as http:
                r = await http.post("/pools/p/claim", json={"timeout": 5})
                assert r.status_code == 200
                s.send_signal(signal.SIGKILL)  # before the server can do anything more
            assert s.wait() == -signal.SIGKILL
            store = Store(s.state_dir)
            try:
                rows = {m.id: m.state for m in store.members("p")}
            finally:
                store.close()
            assert rows[r.json()["id"]] == "claimed", rows
            s.start()
