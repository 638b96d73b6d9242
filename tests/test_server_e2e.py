"""`poolui serve` as a real subprocess with real local sandboxes, driven over HTTP and by the headless CLI."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import wait_for
from prometheus_client.parser import text_string_to_metric_families
from server_fixtures import PYTHON, Served, pool_table, port_closed, sandbox_processes, served, until

from poolui.errors import PoolNotFound, SandboxNotFound


@pytest.fixture(scope="module")
def web() -> Iterator[Served]:
    with served({"web": pool_table(target_ready=2, min_ready=1)}, on_shutdown="terminate") as s:
        yield s


def get(s: Served, pool: str = "web") -> dict[str, Any]:
    return dict(httpx.get(f"{s.url}/pools/{pool}", headers={"authorization": f"Bearer {s.token}"}).json())


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def raw_claim(url: str, token: str, body: bytes = b'{"timeout": 30}') -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.sendall(b"POST /pools/web/claim HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + token.encode()
              + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
              + b"\r\n\r\n" + body)
    return s


async def test_claim_over_http_returns_a_url_that_answers(web: Served) -> None:
    async with web.client() as c:
        claim = await c.claim("web", timeout=20)
        assert claim.url.startswith("http://127.0.0.1:") and claim.pool == "web"
        assert answers(claim.url)
        snap = await c.snapshot("web")
        assert [m.state for m in snap.members if m.id == claim.id] == ["claimed"]
        assert await c.release("web", claim.id) is True
        assert await c.release("web", claim.id) is False  # a repeated release is a no-op
        until(lambda: not answers(claim.url), 10, "the released sandbox to stop")
        with pytest.raises(SandboxNotFound):
            await c.release("web", "pu-nosuchthing")
        with pytest.raises(PoolNotFound):
            await c.claim("nope")


async def test_claim_key_returns_the_same_claim(web: Served) -> None:
    async with web.client() as c:
        first = await c.claim("web", timeout=20, claim_key="job-42")
        again = await c.claim("web", timeout=20, claim_key="job-42")
        assert again.id == first.id and again.url == first.url
        assert await c.release("web", first.id)
        other = await c.claim("web", timeout=20, claim_key="job-42")  # released: the key is free again
        assert other.id != first.id
        await c.release("web", other.id)


def test_headless_verbs(web: Served) -> None:
    until(lambda: web.headless("check").returncode == 0, 20, "the pool to be warm")
    r = web.headless("check")
    assert r.stdout.startswith("POOLUI OK - web: healthy ready=2/2") and "| ready=2;2:;1:;0;6" in r.stdout
    data = json.loads(web.headless("check", "--json").stdout)
    assert data["status"] == "OK" and data["pools"][0]["snapshot"]["name"] == "web"
    assert data["pools"][0]["snapshot"]["members"]

    r = web.headless("list")
    assert r.returncode == 0 and r.stdout.startswith("web: healthy target=2")
    assert json.loads(web.headless("list", "--json").stdout)["pools"][0]["name"] == "web"

    r = web.headless("claim", "--wait", "20")
    assert r.returncode == 0, r.stderr
    sid, url = r.stdout.split()
    assert answers(url) and "claimed from pool 'web'" in r.stderr  # data on stdout, the rest on stderr
    assert web.headless("release", sid).stdout == f"released {sid}\n"
    r = web.headless("release", sid)
    assert r.returncode == 0 and r.stdout == "" and "released already" in r.stderr

    claim = json.loads(web.headless("claim", "--json", "--wait", "20").stdout)
    assert claim["url"].startswith("http://") and {"id", "expires_at", "latency_ms", "claim_key"} <= set(claim)
    assert claim["warm"] is True or claim["reason"]  # a cold claim says why it was cold
    r = web.headless("terminate", claim["id"])
    assert r.returncode == 0 and r.stdout.split() == [claim["id"]]

    assert "paused" in web.headless("pause").stdout
    assert json.loads(web.headless("resume", "--json").stdout)["state"] in ("healthy", "warming")
    r = web.headless("maintain")
    assert r.returncode == 0 and r.stdout.startswith("web: probed ")
    assert json.loads(web.headless("maintain", "--json").stdout)["pool"] == "web"

    # refusals: exit 1 with the error on stderr; usage: 2
    r = web.headless("release", "pu-nosuch")
    assert r.returncode == 1 and "sandbox_not_found" in r.stderr and r.stdout == ""
    r = web.headless("list", "--pool", "nope")
    assert r.returncode == 1 and "no pool named 'nope'" in r.stderr
    assert web.headless("resize").returncode == 2
    assert web.headless("resize", "1", "--min", "5").returncode == 1  # min above target: refused, unchanged
    assert web.headless("check", "--pool", "nope").returncode == 3


def test_no_server_or_bad_token_is_unknown(web: Served, tmp_path: object) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there now
    r = web.headless("check", "--server", url, server=False, env={"POOLUI_TOKEN": "x"})
    assert r.returncode == 3 and r.stdout.startswith("POOLUI UNKNOWN - no poolui server at")
    r = web.headless("list", "--server", url, server=False, env={"POOLUI_TOKEN": "x"})
    assert r.returncode == 3 and "is `poolui serve` running?" in r.stderr
    r = web.headless("check", env={"POOLUI_TOKEN": "wrong"})  # the error names where the token came from
    assert r.returncode == 3 and "refused the token from $POOLUI_TOKEN" in r.stdout and "Bearer" not in r.stdout
    r = web.headless("claim", env={"POOLUI_TOKEN": "wrong"})
    assert r.returncode == 3 and "refused the token from $POOLUI_TOKEN" in r.stderr and "Bearer" not in r.stderr


def test_auth_is_required_everywhere_but_healthz(web: Served) -> None:
    token = web.token
    mode = (web.state_dir / "token").stat().st_mode & 0o777
    assert mode == 0o600
    good = {"authorization": f"Bearer {token}"}
    spec = httpx.get(web.url + "/openapi.json", headers=good).json()
    assert httpx.get(web.url + "/openapi.json").status_code == 401
    assert httpx.get(web.url + "/healthz").json()["ok"] is True
    for path, ops in spec["paths"].items():
        concrete = path.replace("{pool}", "web").replace("{sandbox_id}", "pu-x")
        for method in ops:
            for headers, query in (({}, ""), ({"authorization": "Bearer wrong"}, ""),
                                   ({"authorization": token}, ""), ({}, f"?token={token}"),
                                   (good, f"?access_token={token}")):
                if path == "/healthz":
                    continue
                r = httpx.request(method, web.url + concrete + query, headers=headers, json={}, timeout=5)
                assert r.status_code == 401, (method, path, headers, query, r.status_code)
                assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"].startswith("Bearer")
    assert token not in web.log_text()


def test_metrics_are_prometheus_text(web: Served) -> None:
    r = httpx.get(web.url + "/metrics", headers={"authorization": f"Bearer {web.token}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    families: dict[str, str] = {}
    samples: dict[str, float] = {}
    for line in r.text.splitlines():
        if line.startswith("# TYPE"):
            _, _, name, kind = line.split()
            assert name not in families, f"{name} declared twice"
            families[name] = kind
        elif line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    for name, kind in (("poolui_members", "gauge"), ("poolui_claims_total", "counter"),
                       ("poolui_claim_latency_seconds", "histogram"), ("poolui_pool_state", "gauge"),
                       ("poolui_create_to_ready_seconds", "histogram"), ("poolui_event_clients", "gauge")):
        assert families.get(name) == kind, name
    buckets = [v for k, v in samples.items()
               if k.startswith("poolui_claim_latency_seconds_bucket{") and 'pool="web"' in k]
    assert buckets == sorted(buckets) and buckets[-1] == samples['poolui_claim_latency_seconds_count{pool="web"}']
    assert samples['poolui_pool_state{pool="web",state="healthy"}'] + samples[
        'poolui_pool_state{pool="web",state="warming"}'] == 1
    assert 'poolui_claims_total{outcome="warm",pool="web",reason=""}' in samples  # a counter's samples: _total
    # The text parses as Prometheus would read it (prometheus-client's own parser).
    parsed = {f.name: f.type for f in text_string_to_metric_families(r.text)}
    assert parsed["poolui_claims"] == "counter" and parsed["poolui_claim_latency_seconds"] == "histogram"
    # The state files' work: journal writes go up with a claim and its release (each kept before its answer).
    assert parsed["poolui_store_commits"] == "counter" and parsed["poolui_store_wal_peak_bytes"] == "gauge"
    assert parsed["poolui_store_journal_writes"] == "counter" and parsed["poolui_store_journal_bytes"] == "gauge"
    before = samples["poolui_store_journal_writes_total"]
    claim = httpx.post(web.url + "/pools/web/claim", headers={"authorization": f"Bearer {web.token}"}, json={},
                       timeout=30).json()
    httpx.post(web.url + f"/pools/web/sandboxes/{claim['id']}/release",
               headers={"authorization": f"Bearer {web.token}"}, timeout=30)
    again = httpx.get(web.url + "/metrics", headers={"authorization": f"Bearer {web.token}"}).text
    after = next(float(line.split()[1]) for line in again.splitlines()
                 if line.startswith("poolui_store_journal_writes_total "))
    assert after >= before + 2 and samples["poolui_store_journal_bytes"] > 0
    assert samples["poolui_store_commits_total"] > 0  # the history's and the folds' transactions


def event_clients(s: Served) -> int:
    text = httpx.get(s.url + "/metrics", headers={"authorization": f"Bearer {s.token}"}).text
    return int(float(next(line.split()[1] for line in text.splitlines() if line.startswith("poolui_event_clients "))))


async def test_events_stream(web: Served) -> None:
    async with web.client() as c:
        stream = c.events("web")
        first = asyncio.ensure_future(stream.__anext__())
        await wait_for(lambda: event_clients(web) == 1, 10, what="the events client to be subscribed")
        claim = await c.claim("web", timeout=20)
        seen = [await asyncio.wait_for(first, 10)]
        while not any(e.kind == "claimed" and e.member_id == claim.id for e in seen):
            seen.append(await asyncio.wait_for(stream.__anext__(), 10))
        await c.release("web", claim.id)
        while not any(e.kind == "released" and e.member_id == claim.id for e in seen):
            seen.append(await asyncio.wait_for(stream.__anext__(), 10))
        await stream.aclose()
        recent = await c.recent_events("web", limit=50)
        assert any(e.kind == "released" and e.member_id == claim.id for e in recent)
        await wait_for(lambda: event_clients(web) == 0, 10, what="the events client to be gone")


async def test_client_disconnecting_mid_claim_loses_no_sandbox() -> None:
    with served({"web": pool_table(target_ready=1, min_ready=0, max_ready=3)}, on_shutdown="terminate") as s:
        async with s.client() as c:
            until(lambda: get(s)["counts"]["ready"] == 1, 20, "the pool warm")
            await c.pause("web")  # before the claim: nothing refills while the waiting claimer is cut off
            held = await c.claim("web", timeout=20)  # the only warm one
            sock = raw_claim(s.url, s.token)
            until(lambda: get(s)["waiting"] == 1, 10, "the raw claim to wait")
            sock.close()
            until(lambda: get(s)["waiting"] == 0, 10, "the server to see the disconnect")
            await c.resume("web")
            until(lambda: get(s)["counts"]["ready"] == 1, 20, "the refill")
            snap = await c.snapshot("web")
            assert snap.counts["claimed"] == 1 and [m.id for m in snap.members if m.state == "claimed"] == [held.id]

            # Ten claimers at once that vanish while waiting; then sandboxes arrive: none goes to the vanished.
            await c.pause("web")
            await c.resize("web", target=3, max_ready=3)
            gone_ready = [m.id for m in (await c.snapshot("web")).members if m.state == "ready"]
            if gone_ready:
                await c.terminate("web", gone_ready)
            socks = [raw_claim(s.url, s.token) for _ in range(10)]
            until(lambda: get(s)["waiting"] == 10, 10, "ten claims waiting")
            for sock in socks:
                sock.close()
            until(lambda: get(s)["waiting"] == 0, 10, "the server to see them leave")
            await c.resume("web")
            until(lambda: get(s)["counts"]["ready"] == 3, 30, "three ready")
            snap = await c.snapshot("web")
            assert [m.id for m in snap.members if m.state == "claimed"] == [held.id]
            await c.release("web", held.id)


def test_check_critical_below_min_ready_and_drain() -> None:
    with served({"web": pool_table(target_ready=2, min_ready=2, max_ready=4)}, on_shutdown="terminate") as s:
        until(lambda: s.headless("check").returncode == 0, 30, "warm")
        assert s.headless("pause").returncode == 0
        sid = s.headless("claim", "--wait", "20").stdout.split()[0]
        r = s.headless("check")
        assert r.returncode == 2 and r.stdout.startswith("POOLUI CRITICAL - web: paused ready=1/2")
        assert "ready 1 below min_ready 2" in r.stdout
        assert s.headless("resume").returncode == 0
        until(lambda: s.headless("check").returncode == 0, 30, "refilled")
        r = s.headless("drain")
        assert r.returncode == 0 and "drain" in r.stdout
        r = s.headless("check")
        assert r.returncode == 2 and "pool is draining" in r.stdout
        r = s.headless("claim", "--wait", "1")
        assert r.returncode == 1 and "draining" in r.stderr
        assert s.headless("release", sid).returncode == 0
        r = s.headless("drain", "--wait", "--drain-timeout", "20", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["state"] == "drained"
        assert "pool is drained" in s.headless("check").stdout
        assert s.stop() == 0
        assert not sandbox_processes(s.state_dir)


def test_sigterm_keeps_sandboxes_and_restart_adopts_them() -> None:
    with served({"web": pool_table(target_ready=2, min_ready=1)}) as s:  # on_shutdown: keep (default)
        sid, url = s.headless("claim", "--wait", "20").stdout.split()
        assert answers(url)
        first_url = s.url
        host, port = s.url.removeprefix("http://").rsplit(":", 1)
        events = socket.create_connection((host, int(port)))
        events.sendall(f"GET /events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {s.token}\r\n\r\n".encode())
        until(lambda: event_clients(s) == 1, 10, "an events stream to be open")
        assert s.stop(signal.SIGTERM) == 0  # an open stream ends with the server, it does not hold it up
        events.close()
        assert port_closed(first_url)
        assert answers(url), "a claimed sandbox must survive the server's graceful stop"
        s.start("--on-shutdown", "terminate")
        r = json.loads(s.headless("list", "--json").stdout)["pools"][0]
        mine = [m for m in r["members"] if m["id"] == sid]
        assert mine and mine[0]["state"] == "claimed" and mine[0]["adopted"] is True and mine[0]["url"] == url
        assert s.headless("release", sid).returncode == 0
        until(lambda: not answers(url), 10, "the adopted sandbox to stop after release")
        until(lambda: s.headless("check").returncode == 0, 30, "the pool to refill")
        assert s.stop(signal.SIGINT) == 0
        until(lambda: not sandbox_processes(s.state_dir), 10, "on_shutdown=terminate to leave nothing")


def test_resize_persist_then_restart_uses_the_new_size() -> None:
    with served({"web": pool_table(target_ready=1, min_ready=1, max_ready=4)}, on_shutdown="terminate") as s:
        r = s.headless("resize", "3", "--max", "5", "--persist")
        assert r.returncode == 0 and "target=3" in r.stdout and "max=5" in r.stdout, r.stderr
        saved = tomllib.loads(s.config.read_text())["pools"]["web"]
        assert saved["target_ready"] == 3 and saved["max_ready"] == 5 and saved["command"][0] == "python3"
        assert s.stop() == 0
        s.start()
        snap = json.loads(s.headless("check", "--json").stdout)["pools"][0]["snapshot"]
        assert (snap["target_ready"], snap["max_ready"]) == (3, 5)
        until(lambda: "ready=3/3" in s.headless("check").stdout, 30, "three ready after restart")


def test_second_signal_exits_at_once() -> None:
    pools = {"p": pool_table("instant", target_ready=0, min_ready=0, max_ready=2, claim_timeout="60s")}
    with served(pools, "--grace", "60") as s:
        waiter = subprocess.Popen([PYTHON, "-m", "poolui.cli", "--headless", "claim", "--wait", "60"],
                                  env={**s.env, "POOLUI_SERVER": s.url, "POOLUI_TOKEN": s.token},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            until(lambda: httpx.get(s.url + "/pools/p", headers={"authorization": f"Bearer {s.token}"})
                  .json()["waiting"] == 1, 10, "the claim to wait")
            s.send_signal(signal.SIGTERM)
            until(lambda: "SIGTERM: finishing requests" in s.log_text(), 10, "the first signal to be taken")
            assert s.proc is not None and s.proc.poll() is None  # still finishing the waiting claim
            s.send_signal(signal.SIGTERM)
            assert s.wait(5) == 128 + signal.SIGTERM
            assert waiter.wait(15) == 3  # the claimer learns the server is gone
        finally:
            waiter.kill()
            waiter.wait()
            for f in (waiter.stdout, waiter.stderr):
                if f:
                    f.close()


async def test_open_control_connects_to_a_running_server(web: Served) -> None:
    from poolui.client import PoolClient
    from poolui.connect import open_control

    async with open_control(server=web.url, token_file=web.state_dir / "token") as opened:
        assert isinstance(opened.control, PoolClient) and opened.control.embedded is False
        assert [s.name for s in await opened.control.list_pools()] == ["web"]


def test_serve_refuses_a_port_in_use(web: Served) -> None:
    host_port = web.url.removeprefix("http://")
    r = subprocess.run([PYTHON, "-m", "poolui.cli", "serve", "--config", str(web.config), "--listen", host_port,
                        "--state-dir", str(web.workdir / "other-state")], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1 and f"cannot listen on {host_port}" in r.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
