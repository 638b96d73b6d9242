"""The fast path (server/fast.py) and the FastAPI routes it stands in front of give the same answers.

Every request is sent twice, once to the whole app (the fast path answers claim, release and renew) and
once to the FastAPI app behind it, against the same pools; status, error code and the named field must
agree, and a refused request must change nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from server_fixtures import pool_table

from poolui.core.manager import PoolManager
from poolui.pool_file import load_config
from poolui.server.app import create_app
from poolui.server.fast import FastPath
from poolui.server.middleware import MAX_CLAIM_BODY

TOKEN = "test-token"
JSON = {"content-type": "application/json"}


@pytest.fixture
async def mgr(tmp_path: Path) -> AsyncIterator[PoolManager]:
    path = tmp_path / "pools.toml"
    path.write_bytes(tomli_w.dumps({"pools": {"p": pool_table("instant", target_ready=2, max_ready=5)}}).encode())
    async with PoolManager(load_config(path), state_dir=tmp_path / "state") as m:
        await m.warm_up(5)
        yield m


def clients(mgr: PoolManager) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    whole = create_app(mgr, TOKEN)
    assert isinstance(whole, FastPath)
    auth = {"authorization": f"Bearer {TOKEN}"}
    return (httpx.AsyncClient(transport=httpx.ASGITransport(app=whole), base_url="http://t", headers=auth),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=whole.app), base_url="http://t", headers=auth))


REFUSED: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("/pools/p/claim", b"{", JSON, 422, "JSON"),
    ("/pools/p/claim", b'{"timeout": -1}', JSON, 422, "timeout"),
    ("/pools/p/claim", b'{"timeout": true}', JSON, 422, "timeout"),
    ("/pools/p/claim", b'{"timeout": "5"}', JSON, 422, "timeout"),
    ("/pools/p/claim", b'{"timeout": 1e9}', JSON, 422, "timeout"),
    ("/pools/p/claim", b'{"lease": Infinity}', JSON, 422, "lease"),
    ("/pools/p/claim", b'{"check_health": "yes"}', JSON, 422, "check_health"),
    ("/pools/p/claim", b'{"claim_key": ""}', JSON, 422, "claim_key"),
    ("/pools/p/claim", b'{"bogus": 1}', JSON, 422, "bogus"),
    ("/pools/p/claim", b"[]", JSON, 422, "body"),
    ("/pools/p/claim", b'{"timeout": 1}', {"content-type": "application/x-www-form-urlencoded"}, 422,
     "Content-Type: application/json"),
    ("/pools/p/claim", b"x" * (MAX_CLAIM_BODY + 1), JSON, 413, "body_too_large"),  # a claim may carry files
    ("/pools/p/sandboxes/s/renew", b"x" * 70_000, JSON, 413, "body_too_large"),
    ("/pools/p/claim", b'{"timeout": 1}', {"content-type": "text/json"}, 422, "Content-Type: application/json"),
    ("/pools/p/claim", b"   ", JSON, 422, "JSON"),
    ("/pools/p/claim", b'{"timeout": 1}', {}, 422, "Content-Type: application/json"),
    ("/pools/p/claim?token=abc", b"{}", JSON, 401, "query string"),
    ("/pools/p/claim?wait=1", b"{}", JSON, 422, "wait"),
    ("/pools/nope/claim", b"{}", JSON, 404, "pool_not_found"),
    ("/pools/p/sandboxes/pu-nope/release", b"", {}, 404, "sandbox_not_found"),
    ("/pools/p/sandboxes/pu-nope/renew", b'{"lease": "60"}', JSON, 422, "lease"),
    ("/pools/p/sandboxes/pu-nope/renew", b'{"lease": 60}', JSON, 404, "sandbox_not_found"),
]


@pytest.mark.parametrize(("path", "body", "headers", "status", "says"), REFUSED)
async def test_refusals_agree_and_change_nothing(mgr: PoolManager, path: str, body: bytes,
                                                 headers: dict[str, str], status: int, says: str) -> None:
    fast, slow = clients(mgr)
    async with fast, slow:
        answers = [await c.post(path, content=body, headers=headers) for c in (fast, slow)]
    for r in answers:
        assert r.status_code == status, (r.request.url, r.text)
        assert says in r.text, r.text
    assert answers[0].json()["error"] == answers[1].json()["error"]
    assert (await mgr.snapshot("p")).counts["claimed"] == 0


@pytest.mark.parametrize("auth", [{}, {"authorization": "Bearer wrong"}])
async def test_no_token_no_claim(mgr: PoolManager, auth: dict[str, str]) -> None:
    app = create_app(mgr, TOKEN)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/pools/p/claim", json={}, headers=auth)
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="poolui"'
    assert (await mgr.snapshot("p")).counts["claimed"] == 0


async def test_claim_renew_release_answer_alike(mgr: PoolManager) -> None:
    fast, slow = clients(mgr)
    async with fast, slow:
        shapes: list[dict[str, Any]] = []
        for c in (fast, slow):
            r = await c.post("/pools/p/claim", json={"timeout": 5, "claim_key": f"k-{id(c)}", "lease": 30})
            assert r.status_code == 200, r.text
            claim = r.json()
            renewed = await c.post(f"/pools/p/sandboxes/{claim['id']}/renew", json={"lease": 60})
            assert renewed.status_code == 200 and renewed.json()["lease_expires_at"] > claim["lease_expires_at"]
            released = await c.post(f"/pools/p/sandboxes/{claim['id']}/release")
            assert released.json() == {"id": claim["id"], "released": True}
            again = await c.post(f"/pools/p/sandboxes/{claim['id']}/release")
            assert again.json() == {"id": claim["id"], "released": False}
            shapes.append({k: type(v) for k, v in claim.items()})
    assert shapes[0] == shapes[1]
    assert (await mgr.snapshot("p")).counts["claimed"] == 0


@pytest.mark.parametrize(("body", "headers"), [
    (b"null", JSON),  # JSON null: every default
    (b"", {}),
    (b'{"timeout": 5}', {"content-type": "application/vnd.poolui+json; charset=utf-8"}),
])
async def test_bodies_both_paths_accept(mgr: PoolManager, body: bytes, headers: dict[str, str]) -> None:
    fast, slow = clients(mgr)
    async with fast, slow:
        for c in (fast, slow):
            r = await c.post("/pools/p/claim", content=body, headers=headers)
            assert r.status_code == 200, (c is fast, r.text)
            assert (await c.post(f"/pools/p/sandboxes/{r.json()['id']}/release")).json()["released"] is True
