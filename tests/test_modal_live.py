"""One real Modal sandbox through the provider: create, ready, claim URL answers, found by tag, terminated.

Runs only with real credentials in MODAL_TOKEN_ID / MODAL_TOKEN_SECRET (it costs a few sandbox-seconds);
everywhere else it skips and says why. The sandbox lives at most 5 minutes even if this test dies.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import pytest

from poolui.pool_file import parse_config
from poolui.providers.base import ProviderContext, Sandbox
from poolui.providers.modal import make

pytestmark = pytest.mark.skipif(
    not (os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET")),
    reason="live Modal test: set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET to run it (it starts one real sandbox)",
)


@pytest.mark.timeout(600)
async def test_claim_one_real_sandbox(tmp_path: Path) -> None:
    pytest.importorskip("modal", reason="the modal extra is not installed (pip install -e '.[modal]')")
    if os.environ.get("MODAL_SERVER_URL", "").startswith("http://127.0.0.1"):
        pytest.skip("MODAL_SERVER_URL points at a local fake, not at Modal")
    table = {
        "provider": "modal", "ttl": "5m", "target_ready": 1, "min_ready": 0, "max_ready": 1, "max_total": 1,
        "readiness": {"http": "/", "timeout": "4m", "interval": "500ms"},
        "health": {"http": "/", "timeout": "20s", "interval": "30s"},
        "modal": {
            "app": "poolui-live-test", "command": ["python", "-m", "http.server", "{port}"], "port": 8080,
            "image": {"debian_slim": "3.12"}, "api_timeout": "60s", "watch_interval": "10s",
        },
    }
    pool = parse_config({"pools": {"live": table}}, "live.toml").pools["live"]
    namespace = "live-" + uuid.uuid4().hex[:8]
    provider = make(pool, ProviderContext(namespace, tmp_path))
    sb: Sandbox | None = None
    try:
        await provider.check()
        sb = await provider.create("pu-live-1", pool.ttl)
        await provider.wait_ready(sb, pool.readiness.timeout)
        assert sb.url.startswith("https://")
        async with httpx.AsyncClient() as http:
            r = await http.get(sb.url, timeout=30)
        assert r.status_code == 200
        assert (await provider.health(sb)).ok and provider.alive(sb)
        found = await provider.list_ours()
        assert [s.member_id for s in found] == ["pu-live-1"] and found[0].url == sb.url
    finally:
        if sb is not None:
            await provider.terminate(sb)
        await provider.close()
    assert sb is not None and not provider.alive(sb)
