"""Every provider that can run here, held to one contract through `Provider` alone.

Parametrised over tests/provider_support.py's KINDS: instant, local with and without bubblewrap, Docker on
the real engine (tests/docker_support.py) and Modal on the fake API (tests/modal_support.py). What the pool
core relies on is checked the same way for each: a created sandbox becomes ready and healthy and is listed;
terminate is idempotent and leaves nothing listed, alive or healthy; another namespace never sees it; a
second provider on the same namespace adopts it; a death from outside is reported once with how it ended,
a terminate is not; the provider's own hard TTL ends a sandbox whatever the engine does.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import wait_for
from provider_support import KINDS, Harness

from poolui.providers.base import Provider, Sandbox
from poolui.providers.registry import SPECS

KIND_PARAMS = [
    pytest.param(name, id=name, marks=[pytest.mark.skipif(shutil.which("bwrap") is None,
                                                          reason="bwrap is not installed: apt-get install -y "
                                                                 "bubblewrap")] if "bubblewrap" in name else [])
    for name in KINDS
]
DEADLINE = 30.0  # bounds how long a failure takes; the tests never wait on time itself


@pytest.fixture(params=KIND_PARAMS)
async def h(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    kind = KINDS[request.param]
    for name in kind.fixtures:
        request.getfixturevalue(name)
    harness = Harness(kind, request, tmp_path / "state")
    if "ns" in kind.fixtures:
        harness.namespace = request.getfixturevalue("ns")  # its teardown removes what carries the label
    try:
        yield harness
    finally:
        await harness.close()


async def ready(p: Provider, member_id: str, ttl: float = 120) -> Sandbox:
    sb = await p.create(member_id, ttl=ttl)
    await p.wait_ready(sb, timeout=DEADLINE)
    return sb


async def listed(p: Provider) -> dict[str, Sandbox]:
    return {sb.member_id: sb for sb in await p.list_ours()}


def test_every_registered_provider_has_a_harness() -> None:
    assert {k.provider for k in KINDS.values()} == set(SPECS)


async def test_create_becomes_ready_healthy_and_listed(h: Harness) -> None:
    p = await h.make()
    before = time.time()
    sb = await ready(p, "pu-c1", ttl=120)
    assert sb.member_id == "pu-c1" and sb.url
    assert before + 119 <= sb.expires_at <= time.time() + 121  # the hard TTL is the one asked for
    json.dumps(sb.ref)  # refs are persisted in the state file: plain JSON only
    assert p.alive(sb)
    probe = await p.health(sb)
    assert probe.ok, probe.detail
    found = await listed(p)
    assert list(found) == ["pu-c1"] and found["pu-c1"].url == sb.url


async def test_terminate_is_idempotent_and_leaves_nothing(h: Harness) -> None:
    p = await h.make()
    sb = await ready(p, "pu-t1")
    await p.terminate(sb)
    await p.terminate(sb)
    assert not p.alive(sb)
    assert "pu-t1" not in await listed(p)
    assert not (await p.health(sb)).ok  # never raises, never ok for a terminated sandbox


async def test_another_namespace_never_sees_it(h: Harness) -> None:
    p = await h.make()
    other = await h.make(namespace=h.namespace + "-other")
    await ready(p, "pu-n1")
    assert await listed(other) == {}
    mine = await ready(other, "pu-n1")  # the same member id in another namespace is another sandbox
    await other.terminate(mine)
    assert list(await listed(p)) == ["pu-n1"] and p.alive((await listed(p))["pu-n1"])


async def test_a_second_instance_adopts_and_can_terminate(h: Harness) -> None:
    if not h.kind.shared_state:
        pytest.skip(f"{h.kind.provider}: sandboxes live in the provider object; there is nothing to adopt")
    first = await h.make()
    sb = await ready(first, "pu-a1")
    again = await h.make()
    found = await listed(again)
    assert list(found) == ["pu-a1"] and found["pu-a1"].url == sb.url
    assert again.alive(found["pu-a1"]) and (await again.health(found["pu-a1"])).ok
    await again.terminate(found["pu-a1"])
    assert await listed(again) == {} and await listed(first) == {}
    await wait_for(lambda: not first.alive(sb), DEADLINE, what="the first instance sees it gone")


async def test_a_death_from_outside_is_reported_and_a_terminate_is_not(h: Harness) -> None:
    p = await h.make()
    asked, killed = await ready(p, "pu-e1"), await ready(p, "pu-e2")
    await p.terminate(asked)
    await h.kill_outside(p, killed)
    exits = h.exits[h.namespace]
    # The outside death is reported after the terminate happened, so the terminate had its chance to be
    # (wrongly) reported first.
    await exits.wait_for("pu-e2", timeout=DEADLINE)
    assert exits.members == ["pu-e2"] and exits.how["pu-e2"]
    await wait_for(lambda: not p.alive(killed), DEADLINE, what="seen dead")
    assert "pu-e2" not in await listed(p)


async def test_the_hard_ttl_ends_a_sandbox_without_the_engine(h: Harness) -> None:
    p = await h.make()
    sb = await ready(p, "pu-h1", ttl=2)
    keeps = await ready(p, "pu-h2", ttl=120)
    await h.exits[h.namespace].wait_for("pu-h1", timeout=DEADLINE)
    assert not p.alive(sb) and p.alive(keeps)
    assert list(await listed(p)) == ["pu-h2"]
