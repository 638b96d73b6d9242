"""PoolClient against the app in-process (httpx's ASGI transport): same methods and the same error types
as PoolManager, for every error the server can answer."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from server_fixtures import pool_table

from poolui.client import PoolClient
from poolui.core.manager import PoolManager
from poolui.errors import (
    ClaimTimeout,
    InvalidRequest,
    PoolDraining,
    PoolExhausted,
    PoolNotFound,
    SandboxNotFound,
    ServerUnreachable,
    Unauthorized,
)
from poolui.pool_file import load_config
from poolui.server.app import create_app

TOKEN = "test-token"


def pool_file(tmp_path: Path, **pools: dict[str, Any]) -> Path:
    path = tmp_path / "pools.toml"
    path.write_bytes(tomli_w.dumps({"pools": pools}).encode())
    return path


@pytest.fixture
async def mgr(tmp_path: Path) -> AsyncIterator[PoolManager]:
    path = pool_file(tmp_path, p=pool_table("instant", target_ready=2, min_ready=1, max_ready=5),
                     f=pool_table("instant", target_ready=0, min_ready=0, max_ready=2, on_empty="fail"))
    async with PoolManager(load_config(path), state_dir=tmp_path / "state") as m:
        await m.warm_up(5)
        yield m


def client_for(mgr: PoolManager, token: str = TOKEN) -> PoolClient:
    transport = httpx.ASGITransport(app=create_app(mgr, TOKEN))
    return PoolClient("http://poolui.test", token, timeout=5, transport=transport)


async def test_same_methods_as_the_manager(mgr: PoolManager) -> None:
    async with client_for(mgr) as c:
        assert c.embedded is False and mgr.embedded is True
        assert [s.name for s in await c.list_pools()] == ["p", "f"] == (await mgr.names())
        assert await c.names() == (await mgr.names())
        snap = await c.snapshot("p")
        assert snap.counts == (await mgr.snapshot("p")).counts and len(snap.members) == 2
        assert (await c.snapshot("p", members=False)).members == []
        claim = await c.claim("p", timeout=1)
        assert claim.warm and claim.url.startswith("instant://p/") and claim.reason == ""
        # no key given: the client made one (its rollback handle), and it is unique per claim
        second = await c.claim("p", timeout=1)
        assert claim.claim_key and second.claim_key and claim.claim_key != second.claim_key
        assert await c.release_claim("p", second.claim_key) is True  # the key gives it back
        assert (await c.snapshot("p")).counts["claimed"] == 1
        assert await c.release("p", claim.id) is True
        assert await c.release("p", claim.id) is False
        assert [e.kind for e in await c.recent_events("p", limit=500)].count("released") == 2  # both claims
        await mgr.warm_up(5)  # both released sandboxes went: maintain finds the refilled ones to probe
        report = await c.maintain("p")
        assert report.pool == "p" and report.probed >= 1
        assert (await c.pause("p")).state == "paused"
        assert (await c.resume("p")).state in ("healthy", "warming")
        resized = await c.resize("p", target=3, max_ready=4)
        assert (resized.target_ready, resized.max_ready) == (3, 4) == ((await mgr.snapshot("p")).target_ready,
                                                                        (await mgr.snapshot("p")).max_ready)
        ready = [m for m in (await c.snapshot("p")).members if m.state == "ready"]
        assert await c.terminate("p", [ready[0].id]) == [ready[0].id]
        drained = await c.drain("p", wait=True, timeout=5)
        assert drained.state == "drained"


async def test_claim_key_is_idempotent(mgr: PoolManager) -> None:
    async with client_for(mgr) as c:
        a = await c.claim("p", claim_key="k1")
        b = await c.claim("p", claim_key="k1")
        assert a.id == b.id and b.reason == "repeated claim_key"
        assert (await mgr.snapshot("p")).counts["claimed"] == 1


async def test_errors_come_back_as_the_same_types(mgr: PoolManager) -> None:
    async with client_for(mgr) as c:
        with pytest.raises(PoolNotFound, match="no pool named 'nope'"):
            await c.snapshot("nope")
        with pytest.raises(SandboxNotFound):
            await c.release("p", "pu-nothing")
        with pytest.raises(SandboxNotFound):
            await c.terminate("p", ["pu-nothing"])
        with pytest.raises(InvalidRequest, match="min_ready <= target_ready"):
            await c.resize("p", target=1, min_ready=2)
        with pytest.raises(InvalidRequest, match="at least one of"):
            await c.resize("p")
        with pytest.raises(PoolExhausted) as exhausted:
            await c.claim("f")
        assert exhausted.value.reason == "pool empty"
        await c.pause("p")
        while (await c.snapshot("p")).counts["ready"]:
            await c.claim("p")
        with pytest.raises(ClaimTimeout):
            await c.claim("p", timeout=0.05)
        await c.drain("p")
        with pytest.raises(PoolDraining):
            await c.claim("p")
    async with client_for(mgr, token="wrong") as c:
        with pytest.raises(Unauthorized, match="wrong bearer token"):
            await c.list_pools()


async def test_bad_bodies_are_422_with_a_clear_detail(mgr: PoolManager) -> None:
    transport = httpx.ASGITransport(app=create_app(mgr, TOKEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                 headers={"authorization": f"Bearer {TOKEN}"}) as http:
        for body, needle in ((b"{", "JSON"), (b'{"timeout": -1}', "timeout"), (b'{"bogus": 1}', "bogus"),
                             (b'{"timeout": "soon"}', "timeout"), (b"[]", "body"), (b"\xff\xfe", "body")):
            r = await http.post("/pools/p/claim", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 422, (body, r.text)
            assert r.json()["error"] == "invalid_request" and needle in r.json()["detail"], r.text
        r = await http.post("/pools/p/terminate", json={"ids": []})
        assert r.status_code == 422 and "ids" in r.json()["detail"]
        r = await http.post("/pools/p/claim", content=b'{"timeout": 1}',  # curl -d without -H
                            headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 422 and "Content-Type: application/json" in r.json()["detail"], r.text
        r = await http.post("/pools/p/terminate", content=b"x" * 70_000)
        assert r.status_code == 413 and r.json()["error"] == "body_too_large"
        r = await http.get("/nowhere")
        assert r.status_code == 404 and r.json() == {"error": "not_found", "detail": "Not Found"}
        r = await http.delete("/pools/p")
        assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    assert (await mgr.snapshot("p")).counts["claimed"] == 0  # none of it claimed anything


async def test_resize_persist_writes_the_pool_file(mgr: PoolManager) -> None:
    assert mgr.config.path is not None
    async with client_for(mgr) as c:
        await c.resize("p", target=4, max_ready=5, persist=True)
    saved = tomllib.loads(mgr.config.path.read_text())["pools"]
    assert (saved["p"]["target_ready"], saved["p"]["max_ready"]) == (4, 5)
    assert saved["f"]["on_empty"] == "fail"  # the rest of the file is kept


async def test_unreachable_server() -> None:
    async with PoolClient("http://127.0.0.1:9", "t", timeout=2) as c:
        with pytest.raises(ServerUnreachable, match="no poolui server at http://127.0.0.1:9"):
            await c.list_pools()
        with pytest.raises(ServerUnreachable):
            await c.claim("p")
