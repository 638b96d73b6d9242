"""The control contract (poolui.control.Control), one suite run against both sides: the pools embedded in
this process (PoolManager) and a real `poolui serve` reached through PoolClient. The two can never drift:
a verb added to the contract fails `test_every_verb_is_tested_on_both_sides` until a test here covers it,
and `test_both_sides_have_the_contracts_shapes` until both implement it with the same arguments."""

from __future__ import annotations

import asyncio
import inspect
import io
import sys
import tarfile
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import wait_for
from server_fixtures import pool_table, served, write_pool_file

from poolui.client import PoolClient
from poolui.control import Control
from poolui.core.manager import PoolManager
from poolui.errors import (
    ClaimEnded,
    ClaimTimeout,
    FileNotFound,
    InvalidRequest,
    NotSupported,
    PoolDraining,
    PoolExhausted,
    PoolNotFound,
    SandboxNotFound,
    WarmUpTimeout,
)
from poolui.pool_file import load_config
from poolui.sandbox_io import ExecChunk, ExecResult, collect

POOLS = {
    "p": pool_table("instant", target_ready=2, min_ready=1, max_ready=5, max_total=10),
    "f": pool_table("instant", target_ready=0, min_ready=0, max_ready=2, on_empty="fail"),
}


@pytest.fixture(params=["embedded", "remote"])
async def side(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Control, Path]]:
    """(control, its pool file), warm."""
    if request.param == "embedded":
        path = write_pool_file(tmp_path / "pools.toml", POOLS)
        async with PoolManager(load_config(path), state_dir=tmp_path / "state") as mgr:
            await mgr.warm_up(10)
            yield mgr, path
        return
    with served(POOLS) as s:
        async with s.client() as c:
            await wait_for(lambda: _warm(c), 10, what="warm")
            yield c, s.config


async def _warm(c: Control) -> bool:
    return (await c.snapshot("p", members=False)).ready >= 2


# ---------------------------------------------------------------- reading


async def test_embedded(side: tuple[Control, Path]) -> None:
    c, _ = side
    assert c.embedded is isinstance(c, PoolManager)


async def test_names(side: tuple[Control, Path]) -> None:
    c, _ = side
    assert await c.names() == ["p", "f"]


async def test_snapshot(side: tuple[Control, Path]) -> None:
    c, _ = side
    snap = await c.snapshot("p")
    assert (snap.name, snap.state, snap.target_ready, snap.ready) == ("p", "healthy", 2, 2)
    assert len(snap.members) == 2 and {m.state for m in snap.members} == {"ready"}
    assert (await c.snapshot("p", members=False)).members == []
    with pytest.raises(PoolNotFound, match="no pool named 'nope'"):
        await c.snapshot("nope")


async def test_snapshot_carries_the_cost_and_the_setpoint(side: tuple[Control, Path]) -> None:
    """A pool's sandbox-seconds and their price (core/cost.py) and its setpoint, the same on both sides."""
    c, _ = side
    snap = await c.snapshot("p", members=False)
    cost = snap.metrics["cost"]
    assert list(cost["sandbox_seconds"]) == ["warming", "idle", "claimed", "ending"]
    assert sum(cost["sandbox_seconds"].values()) > 0 and 0 <= cost["waste_ratio"] <= 1
    assert cost["price_per_hour"] is cost["cost"] is cost["cost_per_claim"] is None and cost["claims"] == 0
    assert (snap.setpoint, snap.sizing) == (2, "static")


async def test_list_pools(side: tuple[Control, Path]) -> None:
    c, _ = side
    snaps = await c.list_pools()
    assert [s.name for s in snaps] == ["p", "f"] and all(s.members == [] for s in snaps)
    assert len((await c.list_pools(members=True))[0].members) == 2


async def test_config_path(side: tuple[Control, Path]) -> None:
    c, path = side
    assert await c.config_path() == str(path.resolve())


async def test_recent_events(side: tuple[Control, Path]) -> None:
    c, _ = side
    claim = await c.claim("p")
    await c.release("p", claim.id)
    kinds = [(e.kind, e.member_id) for e in await c.recent_events("p", limit=500)]
    assert ("claimed", claim.id) in kinds and ("released", claim.id) in kinds
    assert len(await c.recent_events(None, limit=3)) == 3
    with pytest.raises(PoolNotFound):
        await c.recent_events("nope")


async def test_events(side: tuple[Control, Path]) -> None:
    c, _ = side
    feed = c.events("p")
    try:
        async def first_claim_seen() -> str | None:
            async for e in feed:
                assert e.pool == "p"
                if e.kind == "claimed":
                    return e.member_id
            return None

        follower = asyncio.ensure_future(first_claim_seen())
        claimed: list[str] = []
        while not follower.done():  # the remote feed subscribes on its first read: claim until one is seen
            claimed.append((await c.claim("p", timeout=5)).id)
            await asyncio.wait({follower}, timeout=0.2)
        assert follower.result() in claimed
        assert feed.dropped == 0
    finally:
        await feed.aclose()
    with pytest.raises(PoolNotFound):
        bad = c.events("nope")  # the manager refuses at once, the client at the first read
        try:
            await bad.__anext__()
        finally:
            await bad.aclose()


# ---------------------------------------------------------------- claims


async def test_claim(side: tuple[Control, Path]) -> None:
    c, _ = side
    claim = await c.claim("p", timeout=1)
    assert claim.warm and claim.pool == "p" and claim.url == f"instant://p/{claim.id}" and claim.reason == ""
    assert (await c.snapshot("p")).counts["claimed"] == 1
    again = await c.claim("p", claim_key="job-1")
    assert (await c.claim("p", claim_key="job-1")).id == again.id  # the same key, the same sandbox
    with pytest.raises(PoolExhausted) as exhausted:
        await c.claim("f")
    assert exhausted.value.reason == "pool empty"
    with pytest.raises(InvalidRequest):
        await c.claim("p", timeout=-1)


async def test_claim_times_out_and_stops_at_a_drain(side: tuple[Control, Path]) -> None:
    c, _ = side
    await c.pause("p")
    while (await c.snapshot("p")).ready:
        await c.claim("p")
    with pytest.raises(ClaimTimeout):
        await c.claim("p", timeout=0.05)
    await c.drain("p")
    with pytest.raises(PoolDraining):
        await c.claim("p")


async def test_release(side: tuple[Control, Path]) -> None:
    c, _ = side
    claim = await c.claim("p")
    assert await c.release("p", claim.id) is True
    assert await c.release("p", claim.id) is False  # a repeated release is a no-op
    with pytest.raises(SandboxNotFound):
        await c.release("p", "pu-nothing")


async def test_renew(side: tuple[Control, Path]) -> None:
    c, _ = side
    claim = await c.claim("p", lease=30)
    assert claim.lease_expires_at is not None and claim.lease_expires_at <= claim.expires_at
    lease = await c.renew("p", claim.id, 120)
    assert (lease.id, lease.pool) == (claim.id, "p") and lease.lease_expires_at > claim.lease_expires_at
    assert lease.lease_expires_at <= lease.expires_at  # never past the sandbox's own TTL
    plain = await c.claim("p")
    assert plain.lease_expires_at is None  # the pool has no claim_lease: no lease unless asked
    with pytest.raises(InvalidRequest, match="has no lease"):
        await c.renew("p", plain.id)
    with pytest.raises(InvalidRequest, match="lease"):
        await c.renew("p", claim.id, float("inf") if c.embedded else -1)
    await c.release("p", claim.id)
    with pytest.raises(ClaimEnded):
        await c.renew("p", claim.id, 30)
    with pytest.raises(SandboxNotFound):
        await c.renew("p", "pu-nothing", 30)


async def test_release_claim(side: tuple[Control, Path]) -> None:
    c, _ = side
    claim = await c.claim("p", claim_key="job-9")
    assert await c.release_claim("p", "job-9") is True
    assert claim.id not in {m.id for m in (await c.snapshot("p")).members if m.state == "claimed"}
    assert await c.release_claim("p", "job-9") is False  # already given back: a no-op
    assert await c.release_claim("p", "never-seen") is False  # a key the pool never saw: nothing held
    for key in ("never-seen", "job-9"):  # given back: a claim request still on its way is refused
        with pytest.raises(ClaimEnded, match=f"claim key '{key}' was given back"):
            await c.claim("p", claim_key=key)
    await c.release("p", (await c.claim("p", claim_key="job-10")).id)  # a new key claims as ever
    with pytest.raises(PoolNotFound):
        await c.release_claim("nope", "job-9")


async def test_claimed(side: tuple[Control, Path]) -> None:
    c, _ = side
    async with c.claimed("p", lease=30) as claim:
        snap = await c.snapshot("p")
        assert {m.id: m.state for m in snap.members}[claim.id] == "claimed"
    gone = {m.id for m in (await c.snapshot("p")).members if m.state == "claimed"}
    assert claim.id not in gone  # released at the end of the block
    with pytest.raises(RuntimeError, match="boom"):
        async with c.claimed("p") as other:
            raise RuntimeError("boom")
    assert other.id not in {m.id for m in (await c.snapshot("p")).members if m.state == "claimed"}


# ---------------------------------------------------------------- operations


async def test_terminate(side: tuple[Control, Path]) -> None:
    c, _ = side
    ready = [m.id for m in (await c.snapshot("p")).members]
    with pytest.raises(SandboxNotFound, match="'pu-nothing'"):
        await c.terminate("p", [ready[0], "pu-nothing"])
    assert {m.id for m in (await c.snapshot("p")).members} >= set(ready)  # the bad id changed nothing
    assert await c.terminate("p", [ready[0]]) == [ready[0]]


async def test_resize(side: tuple[Control, Path]) -> None:
    c, path = side
    snap = await c.resize("p", target=3, max_ready=4)
    assert (snap.target_ready, snap.max_ready) == (3, 4)
    with pytest.raises(InvalidRequest, match="min_ready <= target_ready"):
        await c.resize("p", target=1, min_ready=2)
    with pytest.raises(InvalidRequest, match="at least one of"):
        await c.resize("p")
    assert (await c.snapshot("p")).target_ready == 3  # refused resizes changed nothing
    await c.resize("p", target=4, max_ready=5, persist=True)
    saved = tomllib.loads(path.read_text())["pools"]
    assert (saved["p"]["target_ready"], saved["p"]["max_ready"]) == (4, 5) and saved["f"]["on_empty"] == "fail"


async def test_drain(side: tuple[Control, Path]) -> None:
    c, _ = side
    held = await c.claim("p")
    with pytest.raises(WarmUpTimeout):
        await c.drain("p", wait=True, timeout=0.2)  # the claimed one is left to finish
    assert (await c.snapshot("p")).state == "draining"
    await c.release("p", held.id)
    assert (await c.drain("p", wait=True, timeout=5)).state == "drained"


async def test_pause(side: tuple[Control, Path]) -> None:
    c, _ = side
    assert (await c.pause("p")).state == "paused"
    await c.claim("p")
    assert (await c.snapshot("p")).ready == 1  # claims served, nothing refilled


async def test_resume(side: tuple[Control, Path]) -> None:
    c, _ = side
    await c.drain("p")
    await wait_for(lambda: _state_is(c, "drained"), 5)
    assert (await c.resume("p")).state in ("warming", "healthy")
    await wait_for(lambda: _state_is(c, "healthy"), 5)


async def _state_is(c: Control, state: str) -> bool:
    return (await c.snapshot("p", members=False)).state == state


async def test_maintain(side: tuple[Control, Path]) -> None:
    c, _ = side
    report = await c.maintain("p")
    assert report.pool == "p" and report.probed == 2 and report.removed() == 0
    with pytest.raises(PoolNotFound):
        await c.maintain("nope")


# ---------------------------------------------------------------- using a claimed sandbox

USE_POOLS = {"l": pool_table("local", target_ready=1, min_ready=0, max_ready=2, max_total=4)}


@pytest.fixture(params=["embedded", "remote"])
async def use_side(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Control]:
    """A control over one pool of real local sandboxes, which can exec."""
    if request.param == "embedded":
        path = write_pool_file(tmp_path / "pools.toml", USE_POOLS)
        async with PoolManager(load_config(path), state_dir=tmp_path / "state") as mgr:
            yield mgr
        return
    with served(USE_POOLS) as s:
        async with s.client(timeout=30) as c:
            yield c


async def test_exec_and_files(use_side: Control) -> None:
    c = use_side
    cl = await c.claim("l", timeout=30, env={"FROM_CLAIM": "yes"}, files={"a.txt": "A"})
    assert await c.put_file("l", cl.id, "d/b.bin", b"\x00\xff") == 2
    assert await c.get_file("l", cl.id, "d/b.bin") == b"\x00\xff"
    items = [i async for i in c.exec("l", cl.id, ["sh", "-c", "cat a.txt; printenv FROM_CLAIM; exit 5"])]
    result = items[-1]
    assert isinstance(result, ExecResult) and result.exit_code == 5
    assert b"".join(i.data for i in items if isinstance(i, ExecChunk)) == b"Ayes\n"
    with pytest.raises(FileNotFound):
        await c.get_file("l", cl.id, "missing")
    with pytest.raises(InvalidRequest, match="'..'"):
        await c.put_file("l", cl.id, "../x", b"")
    await c.release("l", cl.id)
    with pytest.raises(ClaimEnded):
        await collect(c.exec("l", cl.id, ["true"]))


async def test_put_file_refuses_an_unknown_sandbox(use_side: Control) -> None:
    with pytest.raises(SandboxNotFound):
        await use_side.put_file("l", "pu-nope", "x", b"")


async def test_get_file_refuses_an_unknown_sandbox(use_side: Control) -> None:
    with pytest.raises(SandboxNotFound):
        await use_side.get_file("l", "pu-nope", "x")


def _tar(entries: dict[str, bytes], link: str | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc"
            t.addfile(info)
    return out.getvalue()


async def test_put_tar_and_get_tar_move_a_directory(use_side: Control) -> None:
    c = use_side
    cl = await c.claim("l", timeout=30)
    assert await c.put_tar("l", cl.id, "proj", _tar({"a.py": b"A", "pkg/b.py": b"B"})) == 2
    assert await c.get_file("l", cl.id, "proj/pkg/b.py") == b"B"
    with tarfile.open(fileobj=io.BytesIO(await c.get_tar("l", cl.id, "proj"))) as t:
        got = {m.name: t.extractfile(m).read() for m in t.getmembers()}  # type: ignore[union-attr]
    assert got == {"a.py": b"A", "pkg/b.py": b"B"}
    with pytest.raises(InvalidRequest, match="link or a device"):  # refused whole: nothing of it is written
        await c.put_tar("l", cl.id, "", _tar({"fine.txt": b"x"}, link="escape"))
    with pytest.raises(InvalidRequest, match="'..'"):
        await c.put_tar("l", cl.id, "", _tar({"../up.txt": b"x"}))
    with pytest.raises(FileNotFound):
        await c.get_file("l", cl.id, "fine.txt")
    with pytest.raises(InvalidRequest, match="not a tar"):
        await c.put_tar("l", cl.id, "", b"not a tar at all")
    await c.release("l", cl.id)


async def test_get_tar_of_a_missing_directory(use_side: Control) -> None:
    cl = await use_side.claim("l", timeout=30)
    with pytest.raises(InvalidRequest, match="no such directory"):
        await use_side.get_tar("l", cl.id, "nowhere")
    await use_side.release("l", cl.id)


async def test_run_claims_runs_and_releases(use_side: Control) -> None:
    r = await collect(use_side.run("l", ["cat", "in"], files={"in": "one-shot"}, claim_timeout=30))
    assert r.ok and r.stdout == b"one-shot"
    with pytest.raises(PoolNotFound):
        await collect(use_side.run("nope", ["true"]))


async def test_exec_is_not_supported_by_the_instant_provider(side: tuple[Control, Path]) -> None:
    c, _ = side
    cl = await c.claim("p", timeout=5)
    with pytest.raises(NotSupported):
        await collect(c.exec("p", cl.id, ["true"]))
    with pytest.raises(NotSupported):  # refused before a sandbox is claimed for nothing
        await collect(c.run("p", ["true"]))
    assert (await c.snapshot("p", members=False)).counts["claimed"] == 1
    await c.release("p", cl.id)


# ---------------------------------------------------------------- the contract itself


def _verbs() -> list[str]:
    return [n for n, v in vars(Control).items()
            if not n.startswith("_") and (callable(v) or isinstance(v, property))]


def test_every_verb_is_tested_on_both_sides() -> None:
    here = vars(sys.modules[__name__])
    untested = [v for v in _verbs() if not any(n == f"test_{v}" or n.startswith(f"test_{v}_") for n in here)]
    assert not untested, f"verbs of the contract with no test here: {untested}"


@pytest.mark.parametrize("verb", _verbs())
def test_both_sides_have_the_contracts_shapes(verb: str) -> None:
    want = getattr(Control, verb)
    for impl in (PoolManager, PoolClient):
        got = getattr(impl, verb)
        if isinstance(want, property):
            assert isinstance(got, property), f"{impl.__name__}.{verb} is not a property"
            continue
        assert inspect.iscoroutinefunction(got) == inspect.iscoroutinefunction(want), f"{impl.__name__}.{verb}"
        params = [(p.name, p.kind, p.default) for p in inspect.signature(want).parameters.values()]
        assert [(p.name, p.kind, p.default) for p in inspect.signature(got).parameters.values()] == params
        assert (got.__doc__ or "").strip(), f"{impl.__name__}.{verb} has no docstring"
