"""Modal pools through the engine: `PoolManager` over the real `modal` SDK and the fake Modal API.

test_modal_provider.py drives the provider alone; here the same fake (tests/modal_support.py's fixtures)
sits under a whole PoolManager, so what is checked is the engine's reaction: warm-up, claims, replacement
of sandboxes that die or time out, adoption by tags after a restart (also with the state file lost),
strays, an API outage mid-run and at start, and missing credentials. Each test gets its own fake, state
directory and namespace; the fixture below stops every manager, checks that no sandbox of the fake is
left running and that no task is left on the loop (the fake's fixture checks its threads and ports).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for

from poolui.config import Config
from poolui.core.manager import PoolManager
from poolui.core.model import Event
from poolui.core.store import namespace_of
from poolui.errors import ClaimTimeout, ProviderUnavailable
from poolui.pool_file import parse_config

pytest.importorskip("modal", reason="the modal extra is not installed (pip install -e '.[modal]')")

from fake_modal import FakeModal, SandboxView  # noqa: E402
from modal_support import get, pool_table  # noqa: E402

POOL = "web"


def config(pool: dict[str, Any] | None = None, **modal_keys: Any) -> Config:
    table = pool_table({"target_ready": 2, "max_ready": 4, "max_total": 6, "min_remaining_ttl": "0s",
                        "maintenance_interval": "1h", "create_retries": 2, **(pool or {})}, **modal_keys)
    return parse_config({"pools": {POOL: table}}, "test.toml")


class Managers:
    """Every PoolManager a test makes; all are stopped (terminating their sandboxes) at the end."""

    def __init__(self) -> None:
        self.made: list[PoolManager] = []

    def __call__(self, state_dir: Path, cfg: Config | None = None) -> PoolManager:
        mgr = PoolManager(cfg or config(), state_dir=state_dir)
        self.made.append(mgr)
        return mgr

    async def start(self, state_dir: Path, cfg: Config | None = None) -> PoolManager:
        mgr = self(state_dir, cfg)
        await mgr.start()
        return mgr


@pytest.fixture
async def managers(fake: FakeModal, request: pytest.FixtureRequest) -> AsyncIterator[Managers]:
    ms = Managers()
    failed_before = request.session.testsfailed
    try:
        yield ms
    finally:
        fake.come_back()
        for mgr in reversed(ms.made):
            await mgr.stop()
        running = [(s.tags.get("poolui.member"), s.sandbox_id) for s in fake.sandboxes() if s.running]
        if running:  # a test that failed midway: a manager on each state directory adopts and ends them
            for state_dir in dict.fromkeys(m.state_dir for m in ms.made):
                async with PoolManager(config({"target_ready": 0, "min_ready": 0}), state_dir=state_dir):
                    pass
        leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        assert not leftover, f"tasks still running after every manager stopped: {leftover}"
    if request.session.testsfailed == failed_before:  # a failed test has said enough; its leftovers are gone
        assert not running, f"sandboxes left running on the fake Modal (now terminated): {running}"


# ---------------------------------------------------------------- helpers


def by_member(fake: FakeModal) -> dict[str, SandboxView]:
    return {s.tags["poolui.member"]: s for s in fake.sandboxes() if "poolui.member" in s.tags}


def running_members(fake: FakeModal, namespace: str | None = None) -> set[str]:
    return {
        s.tags["poolui.member"] for s in fake.sandboxes()
        if s.running and (namespace is None or s.tags.get("poolui.namespace") == namespace)
    }


def ready_ids(mgr: PoolManager) -> set[str]:
    return set(mgr.pools[POOL].handout)


def events(mgr: PoolManager, kind: str, member: str | None = None) -> list[Event]:
    return [e for e in mgr.bus.recent
            if e.pool == POOL and e.kind == kind and (member is None or e.member_id == member)]


def conserved(mgr: PoolManager, fake: FakeModal) -> None:
    """The engine's ready and claimed members are exactly the running sandboxes of its namespace."""
    pool = mgr.pools[POOL]
    live = {m.id for m in pool.members.values() if m.state.value in ("ready", "claimed")}
    in_flight = {m.id for m in pool.members.values() if m.state.value not in ("ready", "claimed")}
    running = running_members(fake, namespace_of(mgr.state_dir))
    assert live <= running and running <= live | in_flight, (live, in_flight, running)
    assert all(m.holders == (1 if m.state.value == "claimed" else 0) for m in pool.members.values())


async def warm(mgr: PoolManager, timeout: float = 15) -> None:
    """Ready at target with nothing in flight (warm_up alone returns while a surplus may still be starting)."""
    await mgr.warm_up(timeout)
    want = mgr.pools[POOL].cfg.target_ready
    await wait_for(lambda: len(ready_ids(mgr)) == want and not _in_flight(mgr), timeout, what="settled warm")


def _in_flight(mgr: PoolManager) -> bool:
    return any(m.state.value in ("creating", "starting", "terminating") for m in mgr.pools[POOL].members.values())


def drop_state_file(state_dir: Path) -> None:
    """Lose the SQLite state (with its WAL) but keep the directory, so the namespace stays the same."""
    names = [p.name for p in state_dir.iterdir() if p.name.startswith("poolui.sqlite3")]
    assert "poolui.sqlite3" in names, names
    for name in names:
        (state_dir / name).unlink()


# ---------------------------------------------------------------- warm-up and claims


async def test_warm_up_claim_returns_the_tunnel_url_and_it_answers(
    fake: FakeModal, managers: Managers, tmp_path: Path
) -> None:
    mgr = await managers.start(tmp_path)
    await warm(mgr)
    snap = await mgr.snapshot(POOL)
    assert (snap.state, snap.provider, snap.isolation, snap.counts["ready"]) == ("healthy", "modal", "modal", 2)
    sandboxes = by_member(fake)
    assert set(sandboxes) == ready_ids(mgr) == running_members(fake)
    ns = namespace_of(tmp_path)
    assert {(s.tags["poolui.pool"], s.tags["poolui.namespace"]) for s in sandboxes.values()} == {(POOL, ns)}

    claim = await mgr.claim(POOL, timeout=5)
    sb = sandboxes[claim.id]
    assert claim.warm and claim.url == f"https://127.0.0.1:{sb.web_port}"
    r = await get(claim.url)
    assert r.status_code == 200 and sb.sandbox_id in r.text
    assert claim.expires_at <= time.time() + 60
    assert (await mgr.snapshot(POOL)).counts["claimed"] == 1
    await warm(mgr)  # the claim is replaced, the claimed sandbox keeps running
    assert by_member(fake)[claim.id].running and len(running_members(fake)) == 3
    conserved(mgr, fake)

    assert await mgr.release(POOL, claim.id)
    await wait_for(lambda: by_member(fake)[claim.id].returncode == 137, 5, what="the released sandbox terminated")
    await mgr.stop()
    assert running_members(fake) == set()
    assert fake.calls.seen.count("AppGetOrCreate") == 1, "one SDK session for the whole pool"


async def test_claim_never_promises_more_time_than_modal_grants(
    fake: FakeModal, managers: Managers, tmp_path: Path
) -> None:
    """Modal's `timeout` is whole seconds (the provider rounds the member's ttl down): a claim's expires_at
    and a member's ttl_left must not be later than the end Modal enforces, or min_remaining_ttl means nothing."""
    mgr = await managers.start(tmp_path, config({"ttl": "30900ms", "ttl_jitter": 0.0, "target_ready": 1}))
    await warm(mgr)
    claim = await mgr.claim(POOL, timeout=5)
    assert by_member(fake)[claim.id].definition.timeout_secs == 30
    sandbox = mgr.pools[POOL].members[claim.id].sandbox
    assert sandbox is not None
    hard_end = sandbox.expires_at  # the provider's own end: taken before the create call, so never late
    assert claim.expires_at <= hard_end, f"the claim promises {claim.expires_at - hard_end:.2f}s Modal will not give"
    view = next(m for m in (await mgr.snapshot(POOL)).members if m.id == claim.id)
    assert view.expires_at <= hard_end and view.ttl_left <= hard_end - time.time() + 0.05


# ---------------------------------------------------------------- deaths and TTL


async def test_a_sandbox_that_dies_is_replaced(fake: FakeModal, managers: Managers, tmp_path: Path) -> None:
    mgr = await managers.start(tmp_path)
    await warm(mgr)
    claim = await mgr.claim(POOL, timeout=5)
    await warm(mgr)
    ready_victim = sorted(ready_ids(mgr))[0]
    sandboxes = by_member(fake)
    fake.kill(sandboxes[ready_victim].sandbox_id, exit_code=2)
    fake.kill(sandboxes[claim.id].sandbox_id, exit_code=3)

    await wait_for(lambda: ready_victim not in mgr.pools[POOL].members and claim.id not in mgr.pools[POOL].members,
                   10, what="both dead sandboxes removed")
    await warm(mgr)
    assert ready_victim not in ready_ids(mgr)
    [gone_ready] = events(mgr, "terminating", ready_victim)
    [gone_claimed] = events(mgr, "terminating", claim.id)
    assert gone_ready.detail.startswith("exited on its own: ") and gone_claimed.detail.startswith(
        "exited while claimed: "), (gone_ready.detail, gone_claimed.detail)
    assert (await mgr.snapshot(POOL)).state == "healthy" and mgr.pools[POOL].failures == 0
    # Dead ones are not terminated again: they keep the exit code they died with.
    assert (by_member(fake)[ready_victim].returncode, by_member(fake)[claim.id].returncode) == (2, 3)
    assert len(running_members(fake)) == 2
    conserved(mgr, fake)
    with pytest.raises(Exception, match="no sandbox"):
        await mgr.release(POOL, "pu-nope")
    assert await mgr.release(POOL, claim.id) is False  # already gone: a friendly no-op


async def test_ttl_expiry_ends_members_and_replaces_them(fake: FakeModal, managers: Managers, tmp_path: Path) -> None:
    """At the TTL the engine's own deadline and Modal's timeout coincide: whichever is seen first ends the
    sandbox (Modal's exit 124 or poolui's terminate, 137), and the pool refills."""
    mgr = await managers.start(tmp_path, config({"ttl": "2s", "ttl_jitter": 0.0, "target_ready": 1}))
    await warm(mgr, timeout=5)
    claim = await mgr.claim(POOL, timeout=5)
    await wait_for(lambda: len(ready_ids(mgr)) == 1, 5, what="the claim replaced")
    (ready_first,) = ready_ids(mgr)
    first = {claim.id, ready_first}
    assert {by_member(fake)[m].definition.timeout_secs for m in first} == {2}

    await wait_for(lambda: {by_member(fake)[m].returncode for m in first} <= {124, 137}, 5, what="both ended")
    await wait_for(lambda: not first & set(mgr.pools[POOL].members), 5, what="the engine dropped both")
    await wait_for(lambda: len(ready_ids(mgr)) == 1 and not first & ready_ids(mgr), 5, what="a replacement")
    # why, without how it ended (what Modal said, added after a colon)
    details = {e.member_id: e.detail.split(":")[0] for e in events(mgr, "terminating") if e.member_id in first}
    assert details[claim.id] in ("hard TTL reached while claimed", "exited while claimed"), details
    assert details[ready_first] in ("less than min_remaining_ttl left", "exited on its own",
                                    "its sandbox has exited"), details
    assert mgr.pools[POOL].failures == 0


async def test_ttl_expiry_by_modal_while_no_controller_runs(
    fake: FakeModal, managers: Managers, tmp_path: Path
) -> None:
    """Modal's own timeout ends what a stopped manager left; the next one finds them gone and refills."""
    first = await managers.start(tmp_path, config({"ttl": "2s", "ttl_jitter": 0.0}))
    await warm(first, timeout=5)
    claim = await first.claim(POOL, timeout=5)
    await warm(first, timeout=5)
    left = {m.id for m in (await first.snapshot(POOL)).members}
    await first.stop(keep=True)
    assert running_members(fake) == left and claim.id in left

    await wait_for(lambda: {by_member(fake)[m].returncode for m in left} == {124}, 5, what="Modal timed all out")
    second = await managers.start(tmp_path)
    assert {e.member_id for e in events(second, "lost")} == left
    assert not events(second, "restarted")  # nothing adopted, nothing killed
    await warm(second)
    assert not left & set(second.pools[POOL].members)
    conserved(second, fake)


# ---------------------------------------------------------------- restarts


async def test_restart_adopts_claimed_and_ready_sandboxes_by_tag(
    fake: FakeModal, managers: Managers, tmp_path: Path
) -> None:
    first = await managers.start(tmp_path)
    await warm(first)
    claim = await first.claim(POOL, timeout=5, claim_key="job-1")
    await warm(first)
    left = ready_ids(first) | {claim.id}
    await first.stop(keep=True)
    assert running_members(fake) == left
    created_before = fake.calls.seen.count("SandboxCreateV2")

    second = await managers.start(tmp_path)
    pool = second.pools[POOL]
    snap = await second.snapshot(POOL)
    states = {m.id: (m.state, m.adopted, m.claim_key) for m in snap.members}
    assert states == {
        **{m: ("ready", True, None) for m in left - {claim.id}},
        claim.id: ("claimed", True, "job-1"),
    }
    assert snap.state == "healthy" and "SandboxListV2" in fake.calls.seen
    [restarted] = [e for e in (await second.recent_events(POOL)) if e.kind == "restarted"]
    assert restarted.detail == "adopted 3, killed 0 left over"
    # The claimed one is still held: the same key gets it back, nobody else can.
    again = await second.claim(POOL, timeout=5, claim_key="job-1")
    assert (again.id, again.url) == (claim.id, claim.url)
    r = await get(claim.url)
    assert r.status_code == 200

    got = await second.claim(POOL, timeout=5)
    assert got.warm and got.id in left - {claim.id} and (await get(got.url)).status_code == 200
    assert pool.members[got.id].holders == 1
    await warm(second)
    assert fake.calls.seen.count("SandboxCreateV2") == created_before + 1  # only the claim's replacement
    conserved(second, fake)

    assert await second.release(POOL, claim.id)
    await wait_for(lambda: by_member(fake)[claim.id].returncode == 137, 5, what="the adopted claim terminated")


async def test_lost_state_file_kills_tagged_strays_and_spares_other_namespaces(
    fake: FakeModal, managers: Managers, tmp_path: Path
) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    first = await managers.start(here)
    other = await managers.start(elsewhere, config({"target_ready": 1}))
    await warm(first)
    await first.claim(POOL, timeout=5)
    await warm(first)
    await warm(other)
    ours = {m.id for m in (await first.snapshot(POOL)).members}
    theirs = ready_ids(other)
    await first.stop(keep=True)
    assert running_members(fake, namespace_of(here)) == ours and len(ours) == 3
    drop_state_file(here)

    second = await managers.start(here)
    assert namespace_of(second.state_dir) == namespace_of(here)
    [restarted] = [e for e in (await second.recent_events(POOL)) if e.kind == "restarted"]
    assert restarted.detail == "adopted 0, killed 3 left over"
    assert {e.member_id for e in events(second, "terminated")} >= ours
    assert all(by_member(fake)[m].returncode == 137 for m in ours), "strays are terminated, not left to time out"
    await warm(second)
    assert not ours & ready_ids(second)
    conserved(second, fake)
    # The other namespace's sandboxes (same app, same pool name) were not touched.
    assert running_members(fake, namespace_of(elsewhere)) == theirs == ready_ids(other)
    assert (await other.snapshot(POOL)).state == "healthy" and not events(other, "terminating")


# ---------------------------------------------------------------- Modal unreachable


async def test_modal_unreachable_mid_run_degrades_then_recovers_by_itself(
    fake: FakeModal, managers: Managers, tmp_path: Path
) -> None:
    mgr = await managers.start(tmp_path, config({"target_ready": 1}))
    await warm(mgr)
    fake.go_down("refuse")
    claim = await mgr.claim(POOL, timeout=5)  # the refill must now go to a Modal that refuses
    snap = await wait_for(lambda: (s := mgr.pool(POOL).snapshot()).state == "degraded" and s, 10, what="degraded")
    assert re.match(r"\d+ creates failed in a row; last: create failed: pool 'web': ", snap.reason), snap.reason
    [degraded] = events(mgr, "degraded")
    failed = [e.detail for e in events(mgr, "failed")]
    assert len(failed) >= 2 and all("Modal API" in d for d in failed), failed
    # The SDK's own words (an open client) or what a fresh connection attempt found, never a bare timeout.
    assert any("Connect call failed" in d or "refused" in d.lower() for d in failed), failed
    assert degraded.detail.startswith("2 creates failed in a row")
    with pytest.raises(ClaimTimeout, match="degraded: .*creates failed in a row"):
        await mgr.claim(POOL, timeout=0.1)
    # The claimed sandbox lives on meanwhile (its tunnel is not the API).
    assert (await get(claim.url)).status_code == 200

    fake.come_back()
    await wait_for(lambda: mgr.pool(POOL).snapshot().state == "healthy", 15, what="healthy again")
    assert events(mgr, "recovered") and mgr.pools[POOL].failures == 0
    got = await mgr.claim(POOL, timeout=5)
    assert (await get(got.url)).status_code == 200
    conserved(mgr, fake)


async def test_modal_unreachable_at_start_starts_degraded_then_adopts_and_refills(
    fake: FakeModal, managers: Managers, tmp_path: Path
) -> None:
    """Fails today (an engine/provider contract bug): ModalProvider.check() reports an unreachable API as
    ProviderUnavailable, the error for misconfiguration, and Pool.open re-raises every ProviderUnavailable,
    so start() fails instead of leaving the pool degraded until Modal answers."""
    first = await managers.start(tmp_path)
    await warm(first)
    claim = await first.claim(POOL, timeout=5)
    await warm(first)
    left = ready_ids(first) | {claim.id}
    await first.stop(keep=True)
    created = fake.calls.seen.count("SandboxCreateV2")

    fake.go_down("refuse")
    second = managers(tmp_path)
    async with asyncio.timeout(30):  # bounds a start that waits on Modal instead of going degraded
        await second.start()  # must not fail: Modal being away is not a misconfiguration
    snap = await second.snapshot(POOL)
    assert snap.state == "degraded" and snap.reason.startswith("provider unreachable: "), snap.reason
    assert "Modal API" in snap.reason
    with pytest.raises(ClaimTimeout, match="degraded: provider unreachable"):
        await second.claim(POOL, timeout=0.1)
    assert fake.calls.seen.count("SandboxCreateV2") == created, "nothing is made before leftovers are known"

    fake.come_back()
    await wait_for(lambda: second.pool(POOL).snapshot().state == "healthy", 15, what="healthy after Modal came back")
    snap = await second.snapshot(POOL)
    states = {m.id: m.state for m in snap.members if m.adopted}
    assert states == {**{m: "ready" for m in left - {claim.id}}, claim.id: "claimed"}
    assert [e.detail for e in events(second, "recovered")] == ["provider reachable again; adopted 3, killed 0"]
    conserved(second, fake)


async def test_missing_credentials_fail_start_naming_the_variables(
    fake: FakeModal, managers: Managers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODAL_TOKEN_ID")
    monkeypatch.delenv("MODAL_TOKEN_SECRET")
    mgr = managers(tmp_path)
    with pytest.raises(ProviderUnavailable) as e:
        await mgr.start()
    msg = str(e.value)
    assert msg.startswith("pool 'web': ") and "MODAL_TOKEN_ID" in msg and "MODAL_TOKEN_SECRET" in msg, msg
    assert "modal token new" in msg
    assert fake.calls.seen == [], "nothing may reach Modal without credentials"
    assert mgr.pools == {}

    # Nothing was held: with the credentials back, a manager on the same state directory starts and warms.
    monkeypatch.setenv("MODAL_TOKEN_ID", fake.token[0])
    monkeypatch.setenv("MODAL_TOKEN_SECRET", fake.token[1])
    again = await managers.start(tmp_path)
    await warm(again)
