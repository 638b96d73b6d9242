"""The Modal provider with the real `modal` SDK against a fake Modal API server on 127.0.0.1.

The fake (tests/fake_modal) implements the handful of gRPC calls the provider makes, on the SDK's own
generated service bases, and answers UNIMPLEMENTED to everything else; every test fails if the SDK made
such a call. Sandboxes in the fake serve HTTPS on loopback, so tunnel URLs and health checks are real.
Each test gets its own fake and namespace; the fixtures check that no fake server, thread or port and
no provider task is left behind.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for

from poolui.errors import ConfigError, ProviderError, ProviderUnavailable, ReadinessTimeout, SandboxDied
from poolui.pool_file import load_config, parse_config
from poolui.providers.base import ProviderContext, Sandbox
from poolui.providers.modal import ModalOptions, make, parse_options
from poolui.providers.modal.provider import ModalProvider
from poolui.providers.modal.tags import decode_member, encode_member

modal = pytest.importorskip("modal", reason="the modal extra is not installed (pip install -e '.[modal]')")

from fake_modal import Behaviour, FakeModal  # noqa: E402
from modal_support import APP, get, pool_table, refused  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- fixtures


class Made:
    """Providers made by a test, with the sandbox exits each one reported."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.providers: list[ModalProvider] = []
        self.exits: dict[str, list[str]] = {}

    def __call__(self, name: str = "web", namespace: str = "ns-a", pool: dict[str, Any] | None = None,
                 **modal_keys: Any) -> ModalProvider:
        cfg = parse_config({"pools": {name: pool_table(pool, **modal_keys)}}, "test.toml").pools[name]
        exits = self.exits.setdefault(namespace + "/" + name, [])
        def on_exit(member_id: str, how: str = "") -> None:
            exits.append(member_id)

        p = make(cfg, ProviderContext(namespace, self.tmp, on_exit=on_exit))
        assert isinstance(p, ModalProvider)
        self.providers.append(p)
        return p


@pytest.fixture
async def made(fake: FakeModal, tmp_path: Path) -> AsyncIterator[Made]:
    m = Made(tmp_path)
    yield m
    for p in m.providers:
        await p.close()
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert not leftover, f"provider tasks still running after close(): {leftover}"


# ---------------------------------------------------------------- config (no SDK calls)


def test_shipped_modal_toml_loads_without_importing_the_sdk() -> None:
    code = (
        "import sys; from poolui.pool_file import load_config; from poolui.providers.base import ProviderContext;"
        "from poolui.providers.modal import make; from pathlib import Path;"
        f"c = load_config({str(ROOT / 'config' / 'modal.toml')!r}).pools['modal-web'];"
        "p = make(c, ProviderContext('x', Path('/tmp')));"
        "assert 'modal' not in sys.modules and 'grpclib' not in sys.modules, 'the SDK was imported';"
        "print(c.options.app, c.options.port, c.options.image.debian_slim, c.options.image.apt)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["poolui-sandbox-pool", "8080", "3.12", "('curl',)"]
    assert isinstance(load_config(ROOT / "config" / "modal.toml").pools["modal-web"].options, ModalOptions)


@pytest.mark.parametrize(
    ("raw", "key", "allowed"),
    [
        ({"app": "no spaces"}, "app", "Modal app name"),
        ({"port": 0}, "port", "from 1 to 65535"),
        ({"port": 70000}, "port", "1 to 65535"),
        ({"command": []}, "command", "argv"),
        ({"image": 3}, "image", "registry image"),
        ({"image": {"debian_slim": "python3"}}, "debian_slim", "Python version"),
        ({"image": {"debian_slim": "3.12", "apt": "curl"}}, "apt", "list of apt package names"),
        ({"cpu": 0}, "cpu", "0.125 to 64"),
        ({"memory": "lots"}, "memory", "512MiB"),
        ({"env": {"A B": "x"}}, "env", 'NAME = "value"'),
        ({"env": {"A": 1}}, "env", 'NAME = "value"'),
        ({"secrets": ["ok", "not ok"]}, "secrets", "secret names"),
        ({"region": 5}, "region", "list of regions"),
        ({"idle_timeout": "0.5s"}, "idle_timeout", "from 1s to 168h"),
        ({"api_timeout": "soon"}, "api_timeout", "duration"),
        ({"watch_interval": "1ms"}, "watch_interval", "from 50ms to 24h"),
    ],
)
def test_bad_options_name_where_key_value_and_allowed(raw: dict[str, Any], key: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_options(raw, "f.toml: pool 'p'.modal")
    msg = str(e.value)
    assert msg.startswith("f.toml: pool 'p'.modal") and f"'{key}'" in msg and allowed in msg, msg


def test_unknown_keys_and_image_shapes() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'prot' = .*; allowed keys: .*port"):
        parse_options({"prot": 1}, "w")
    with pytest.raises(ConfigError, match=r"w.image: unknown key 'conda'"):
        parse_options({"image": {"debian_slim": "3.12", "conda": ["x"]}}, "w")
    with pytest.raises(ConfigError, match=r"w.image: give exactly one of 'registry'"):
        parse_options({"image": {"registry": "python:3.12", "debian_slim": "3.12"}}, "w")
    o = parse_options({"image": "python:3.12-slim", "memory": 512, "region": "us-east", "cpu": 0.5}, "w")
    assert (o.image.registry, o.memory, o.region, o.cpu) == ("python:3.12-slim", 512, ("us-east",), 0.5)
    assert parse_options({"memory": "1GiB"}, "w").memory == 1024
    assert parse_options({"image": {"debian_slim": True, "pip": ["fastapi"]}}, "w").image.pip == ("fastapi",)


@pytest.mark.parametrize(
    ("pool", "modal_keys", "match"),
    [
        ({"ttl": "25h"}, {}, "Modal sandboxes live at most 24h"),
        ({"limits": {"pids": 10}}, {}, "limits.pids is not allowed"),
        ({"limits": {"memory": "256MiB"}}, {"memory": 512}, "more than limits.memory"),
        ({}, {"idle_timeout": "1s"}, "idle_timeout = 1s would end warm sandboxes"),
        ({"health": {"enabled": False}}, {"idle_timeout": "5m"}, "idle_timeout"),
        ({"command": ["a"]}, {"command": ["b"]}, "command is set both"),
    ],
)
def test_impossible_combinations_fail_in_make(pool: dict[str, Any], modal_keys: dict[str, Any], match: str) -> None:
    table = pool_table(pool, **modal_keys)
    cfg = parse_config({"pools": {"web": table}}, "x.toml").pools["web"]
    with pytest.raises(ConfigError, match=match):
        make(cfg, ProviderContext("t", Path("/tmp")))


def test_a_command_is_needed_somewhere() -> None:
    table = pool_table()
    del table["modal"]["command"]
    cfg = parse_config({"pools": {"web": table}}, "x.toml").pools["web"]
    with pytest.raises(ConfigError, match=r"pool 'web': the modal provider needs a command"):
        make(cfg, ProviderContext("t", Path("/tmp")))
    table["command"] = ["python3", "-m", "http.server", "8080"]
    make(parse_config({"pools": {"web": table}}, "x.toml").pools["web"], ProviderContext("t", Path("/tmp")))


@pytest.mark.parametrize("member", ["pu-0123456789", "a b/c", "b32.looks-encoded", "é" * 10])
def test_member_ids_survive_the_tag(member: str) -> None:
    tag = encode_member(member)
    assert decode_member(tag) == member and len(tag) <= 63


# ---------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("exc", "readiness", "expected", "text"),
    [
        ("NotFoundError", False, ProviderError, "not found on Modal"),
        ("AlreadyExistsError", False, ProviderError, "already exists"),
        ("SandboxTimeoutError", False, SandboxDied, "exit 124"),
        ("TimeoutError", False, ProviderError, "boom"),
        ("TimeoutError", True, ReadinessTimeout, "boom"),
        ("AuthError", False, ProviderUnavailable, "modal token new"),
        ("ConnectionError", False, ProviderError, "cannot reach the Modal API"),
        ("ClientClosed", False, ProviderError, "cannot reach the Modal API (the call's client was closed"),
    ],
)
def test_modal_exceptions_map_onto_poolui_errors(exc: str, readiness: bool, expected: type, text: str) -> None:
    from poolui.providers.modal.errors import translate

    err = translate(getattr(modal.exception, exc)("boom"), "pool 'p': create", readiness=readiness)
    assert type(err) is expected and text in str(err) and str(err).startswith("pool 'p': create")


async def test_missing_sdk_is_a_clear_unavailable(made: Made, monkeypatch: pytest.MonkeyPatch) -> None:
    p = made()
    monkeypatch.setitem(sys.modules, "modal", None)
    with pytest.raises(ProviderUnavailable, match=r"pip install 'poolui\[modal\]'"):
        await p.check()


# ---------------------------------------------------------------- credentials


async def test_missing_credentials_fail_check_before_anything_starts(
    fake: FakeModal, made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODAL_TOKEN_ID")
    monkeypatch.delenv("MODAL_TOKEN_SECRET")
    p = made()
    with pytest.raises(ProviderUnavailable) as e:
        await p.check()
    msg = str(e.value)
    assert "MODAL_TOKEN_ID" in msg and "MODAL_TOKEN_SECRET" in msg and "modal token new" in msg
    with pytest.raises(ProviderUnavailable):
        await p.create("pu-1", 60)
    assert fake.calls.seen == [], "nothing may reach Modal without credentials"
    monkeypatch.setenv("MODAL_TOKEN_ID", fake.token[0])
    with pytest.raises(ProviderUnavailable, match=r"\(MODAL_TOKEN_SECRET not set"):
        await p.check()


async def test_rejected_credentials_are_unavailable_too(fake: FakeModal, made: Made,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-wrong")
    p = made()
    with pytest.raises(ProviderUnavailable, match=r"Modal refused the credentials .*Token ID or secret is invalid"):
        await p.check()


# ---------------------------------------------------------------- sandboxes


async def test_create_ready_url_is_the_tunnel_and_answers(fake: FakeModal, made: Made) -> None:
    fake.add_secret("api-keys")
    p = made(image={"debian_slim": "3.12", "apt": ["curl"], "pip": ["fastapi"]}, cpu=0.5, memory="1GiB",
             env={"GREETING": "hi"}, secrets=["api-keys"], region="us-east")
    await p.check()
    sb = await p.create("pu-0001", 90)
    assert sb.member_id == "pu-0001" and sb.ref["sandbox_id"].startswith("sb-") and sb.ref["app"] == APP
    assert time.time() + 85 < sb.expires_at <= time.time() + 90
    await p.wait_ready(sb, 5)
    [view] = fake.sandboxes()
    assert sb.url == f"https://127.0.0.1:{view.web_port}"
    r = await get(sb.url)
    assert r.status_code == 200 and sb.ref["sandbox_id"] in r.text
    assert (await p.health(sb)).ok and p.alive(sb)

    d = view.definition
    assert list(d.entrypoint_args) == ["python3", "-m", "http.server", "8080"]
    assert d.timeout_secs == 90 and d.readiness_probe.tcp_port == 8080
    assert [(o.port, o.unencrypted) for o in d.open_ports.ports] == [(8080, False)]
    assert d.resources.milli_cpu == 500 and d.resources.memory_mb == 1024
    assert list(d.scheduler_placement.regions) == ["us-east"]
    assert view.env == {"GREETING": "hi"} and len(view.secret_ids) == 1
    assert view.tags == {"poolui.pool": "web", "poolui.namespace": "ns-a", "poolui.member": "pu-0001",
                         "poolui.expires_at": str(int(sb.expires_at)), "poolui.revision": sb.ref["revision"]}
    layers = " | ".join(view.image_commands)
    assert "python3.12" in layers.lower() or "3.12" in layers, layers
    assert "apt-get install" in layers and "curl" in layers and "pip install fastapi" in layers, layers
    # The V2 calls only: a V1-looking id would have sent the SDK to the old ones.
    assert "SandboxCreateV2" in fake.calls.seen and "SandboxCreate" not in fake.calls.seen
    assert "SandboxWaitUntilReady" in fake.calls.seen


async def test_second_create_reuses_client_app_and_image(fake: FakeModal, made: Made) -> None:
    p = made()
    await asyncio.gather(p.create("pu-a", 60), p.create("pu-b", 60), p.create("pu-c", 60))
    seen = fake.calls.seen
    assert seen.count("AppGetOrCreate") == 1 and seen.count("ImageGetOrCreate") == 1
    assert seen.count("SandboxCreateV2") == 3


async def test_tunnel_in_the_create_answer_is_used(fake: FakeModal, made: Made) -> None:
    fake.behaviour = Behaviour(tunnels_at_create=True)
    p = made()
    sb = await p.create("pu-1", 60)
    await p.wait_ready(sb, 5)
    assert sb.url.startswith("https://127.0.0.1:") and "SandboxGetTunnelsV2" not in fake.calls.seen


async def test_http_readiness_waits_for_a_2xx_through_the_tunnel(fake: FakeModal, made: Made) -> None:
    fake.behaviour = Behaviour(http_status=503)
    # Probes 300 ms apart, each allowed that long: a busy machine still gets the fake's 503 back in time.
    p = made(pool={"readiness": {"http": "/healthz", "timeout": "2s", "interval": "300ms"}})
    sb = await p.create("pu-1", 60)
    with pytest.raises(ReadinessTimeout, match=r"GET /healthz not ready after .*HTTP 503"):
        await p.wait_ready(sb, 2.0)
    assert fake.sandboxes()[0].definition.readiness_probe.tcp_port == 8080

    fake.behaviour = Behaviour(http_status=200)
    sb2 = await p.create("pu-2", 60)
    await p.wait_ready(sb2, 5)
    assert (await get(sb2.url + "/healthz")).status_code == 200


async def test_exec_readiness_maps_onto_a_modal_exec_probe(fake: FakeModal, made: Made) -> None:
    p = made(pool={"readiness": {"exec": ["curl", "-sf", "localhost:8080"], "interval": "200ms"}})
    sb = await p.create("pu-1", 60)
    await p.wait_ready(sb, 5)
    probe = fake.sandboxes()[0].definition.readiness_probe
    assert list(probe.exec_command.argv) == ["curl", "-sf", "localhost:8080"] and probe.interval_ms == 200


async def test_late_readiness_is_waited_for(fake: FakeModal, made: Made) -> None:
    fake.behaviour = Behaviour(ready_after=0.5)
    p = made()
    sb = await p.create("pu-1", 60)
    assert not fake.sandboxes()[0].ready
    await p.wait_ready(sb, 5)
    assert fake.sandboxes()[0].ready, "wait_ready returned before the sandbox was ready"


async def test_readiness_timeout(fake: FakeModal, made: Made) -> None:
    fake.behaviour = Behaviour(ready_after=None)
    p = made()
    sb = await p.create("pu-1", 60)
    with pytest.raises(ReadinessTimeout) as e:
        await p.wait_ready(sb, 1.0)
    assert "not ready after 1s" in str(e.value) and isinstance(e.value, ProviderError)
    assert p.alive(sb)
    await p.terminate(sb)
    assert fake.sandboxes()[0].returncode == 137 and not p.alive(sb)


async def test_dying_before_ready_fails_fast(fake: FakeModal, made: Made) -> None:
    fake.behaviour = Behaviour(ready_after=None, exit_after=0.2, exit_code=3)
    p = made()
    sb = await p.create("pu-1", 60)
    # SandboxDied, not a ReadinessTimeout after the 300 s: the death ends the wait
    with pytest.raises(SandboxDied, match="exited with code 3 before it was ready"):
        await p.wait_ready(sb, 300)
    assert not p.alive(sb)
    assert made.exits["ns-a/web"] == [], "a bring-up failure is reported by wait_ready, not on_exit"


async def test_a_sandbox_that_dies_is_seen_dead(fake: FakeModal, made: Made) -> None:
    p = made()
    sb = await p.create("pu-1", 60)
    await p.wait_ready(sb, 5)
    fake.kill(sb.ref["sandbox_id"], exit_code=2)
    await wait_for(lambda: made.exits["ns-a/web"] == ["pu-1"], 5, what="on_exit for the dead sandbox")
    assert not p.alive(sb)
    h = await p.health(sb)
    assert not h.ok and "exited with code 2" in h.detail


async def test_health_without_http_polls_the_sandbox(fake: FakeModal, made: Made) -> None:
    p = made(pool={"health": {"tcp": True, "timeout": "2s", "interval": "1s"}}, watch_interval="1h")
    sb = await p.create("pu-1", 60)
    await p.wait_ready(sb, 5)
    assert (await p.health(sb)).detail == "running"
    fake.kill(sb.ref["sandbox_id"], exit_code=0)
    h = await p.health(sb)
    assert not h.ok and h.detail == "exited with code 0" and not p.alive(sb)
    assert made.exits["ns-a/web"] == ["pu-1"]


async def test_ttl_expiry_is_modal_timeout(fake: FakeModal, made: Made) -> None:
    p = made(pool={"ttl": "1s", "min_remaining_ttl": "0s"})
    sb = await p.create("pu-1", 1)
    await p.wait_ready(sb, 5)
    assert fake.sandboxes()[0].definition.timeout_secs == 1
    await wait_for(lambda: made.exits["ns-a/web"] == ["pu-1"], 5, what="the TTL expiry")
    assert fake.sandboxes()[0].returncode == 124 and not p.alive(sb)
    assert "exit 124" in (await p.health(sb)).detail


async def test_terminate_is_idempotent_and_tolerates_gone_sandboxes(fake: FakeModal, made: Made) -> None:
    p = made()
    sb = await p.create("pu-1", 60)
    await p.wait_ready(sb, 5)
    await p.terminate(sb)
    await p.terminate(sb)
    [view] = fake.sandboxes()
    assert view.returncode == 137 and not view.running and not p.alive(sb)
    assert fake.calls.seen.count("SandboxTerminateV2") == 1
    # the fake closes a dead sandbox's port off its loop, a moment after the sandbox ends
    await wait_for(lambda: not _answers(view.web_port), 5, what="the terminated sandbox's port closed")
    await p.terminate(Sandbox("pu-x", ref={"sandbox_id": "sb-doesnotexist"}))
    await p.terminate(Sandbox("pu-y"))  # its create never returned: nothing to kill
    assert made.exits["ns-a/web"] == []


def _answers(port: int) -> bool:
    return not refused(port)


async def test_list_ours_finds_only_this_pool_and_namespace(fake: FakeModal, made: Made) -> None:
    mine, other_pool, other_ns = made("web", "ns-a"), made("api", "ns-a"), made("web", "ns-b")
    a1, a2 = await mine.create("pu-a1", 60), await mine.create("pu-a2", 60)
    await mine.wait_ready(a1, 5)
    await other_pool.create("pu-b1", 60)
    await other_ns.create("pu-c1", 60)
    gone = await mine.create("pu-a3", 60)
    await mine.terminate(gone)

    # A new manager with its state file lost: only the tags say what is ours.
    again = made("web", "ns-a")
    found = {sb.member_id: sb for sb in await again.list_ours()}
    assert set(found) == {"pu-a1", "pu-a2"}
    for old in (a1, a2):
        new = found[old.member_id]
        assert new.ref["sandbox_id"] == old.ref["sandbox_id"] and new.ref["revision"] == old.ref["revision"]
        assert new.expires_at == int(old.expires_at) and new.url.startswith("https://127.0.0.1:")
    assert (await get(found["pu-a1"].url)).status_code == 200
    # Adopt one, kill the other as a stray: both through handles the new provider looked up itself.
    assert (await again.health(found["pu-a1"])).ok
    await again.wait_ready(found["pu-a1"], 5)
    await again.terminate(found["pu-a2"])
    states = {v.tags["poolui.member"]: v.returncode for v in fake.sandboxes()}
    assert states == {"pu-a1": None, "pu-a2": 137, "pu-b1": None, "pu-c1": None, "pu-a3": 137}


async def test_unreachable_api_fails_within_api_timeout_then_recovers(fake: FakeModal, made: Made) -> None:
    p = made(api_timeout="1s")
    fake.go_down("refuse")
    # The SDK alone would retry for about a minute; the deadline only bounds how long that would take to show.
    async with asyncio.timeout(20):
        with pytest.raises(ProviderError) as e:
            await p.create("pu-1", 60)
    msg = str(e.value)
    assert fake.url in msg and "within 1s" in msg and "refused" in msg.lower(), msg
    with pytest.raises(ProviderUnavailable):
        await p.check()

    fake.come_back()
    sb = await p.create("pu-1", 60)
    await p.wait_ready(sb, 5)

    # With the connection up and the API then silent (a black hole), every call still ends on time.
    fake.go_down("hang")
    async with asyncio.timeout(20):
        with pytest.raises(ProviderError, match=r"no answer from the Modal API .* within 1s"):
            await p.terminate(sb)
        h = await p.health(Sandbox("pu-z", ref={"sandbox_id": sb.ref["sandbox_id"]}))
        with pytest.raises(ProviderError, match=r"within 1s"):
            await p.list_ours()
    assert not h.ok

    fake.come_back()
    await p.terminate(sb)
    assert fake.sandboxes()[0].returncode == 137


async def test_sdk_errors_surface_with_the_sdk_message(fake: FakeModal, made: Made) -> None:
    p = made(secrets=["not-there"])
    with pytest.raises(ProviderError, match=r"create a sandbox for pu-1: not found on Modal .*Secret 'not-there'"):
        await p.create("pu-1", 60)
    with pytest.raises(ProviderError, match=r"no Modal sandbox id"):
        await p.wait_ready(Sandbox("pu-2"), 1)
    with pytest.raises(SandboxDied, match=r"gone from Modal"):
        await p.wait_ready(Sandbox("pu-3", ref={"sandbox_id": "sb-nosuchsandbox"}), 1)


async def test_cancelled_calls_return_at_once(fake: FakeModal, made: Made) -> None:
    """The engine cancels bring-ups on shutdown; no SDK call may hold it (some SDK generators eat a cancel)."""
    fake.behaviour = Behaviour(ready_after=None)
    p = made(api_timeout="30s")
    sb = await p.create("pu-1", 60)
    waiting = asyncio.ensure_future(p.wait_ready(sb, 30))
    await wait_for(lambda: "SandboxWaitUntilReady" in fake.calls.seen, 5, what="the readiness wait to start")
    fake.go_down("hang")
    listing = asyncio.ensure_future(p.list_ours())
    done, _ = await asyncio.wait({waiting, listing}, timeout=0.3)
    assert not done, "both are stuck on Modal"
    async with asyncio.timeout(10):  # the calls' own budget is 30 s: a held cancel would hit this deadline
        for task in (waiting, listing):
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    fake.come_back()


async def test_refused_connection_fails_with_the_sdk_message(fake: FakeModal, made: Made) -> None:
    """With a connection already open, the SDK itself gives up on a refusing API within a second."""
    p = made(api_timeout="5s")
    sb = await p.create("pu-1", 60)
    fake.go_down("refuse")
    with pytest.raises(ProviderError) as e:  # the SDK's refusal, not our 5 s budget ("no answer within 5s")
        await p.terminate(sb)
    err = e.value
    assert "cannot reach the Modal API" in str(err) and "Connect call failed" in str(err), err
    assert isinstance(err.__cause__, modal.exception.ConnectionError)
    fake.come_back()
    await p.terminate(sb)
    assert fake.sandboxes()[0].returncode == 137
